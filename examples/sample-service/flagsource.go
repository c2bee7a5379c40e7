package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// flagPollInterval is how often the flag file is re-read.
const flagPollInterval = 500 * time.Millisecond

// flagSource serves the variant of one flag from a flagd file that it re-reads while running.
// A document that fails to parse is logged and the previous one stays in force.
type flagSource struct {
	path    string
	flagKey string
	log     *logger
	doc     atomic.Pointer[flagDocument]
	content []byte
}

// newFlagSource reads the file once; a missing or bad file at start is an error.
func newFlagSource(path, flagKey string, log *logger) (*flagSource, error) {
	s := &flagSource{path: path, flagKey: flagKey, log: log}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// variant is the variant served to `userID`; "" without a flag file.
func (s *flagSource) variant(userID string) string {
	if s == nil {
		return ""
	}
	return s.doc.Load().variant(s.flagKey, userID, time.Now())
}

// reload re-reads the file; unchanged contents are not parsed again.
func (s *flagSource) reload() error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("flags file: %v", err)
	}
	if s.doc.Load() != nil && bytes.Equal(data, s.content) {
		return nil
	}
	doc, err := parseFlagDocument(data)
	if err != nil {
		return fmt.Errorf("flags file %s: %v", s.path, err)
	}
	s.doc.Store(doc)
	s.content = data
	return nil
}

func (s *flagSource) run(ctx context.Context) {
	ticker := time.NewTicker(flagPollInterval)
	defer ticker.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			before := s.doc.Load()
			err := s.reload()
			switch {
			case err != nil && err.Error() != lastErr:
				s.log.Error("flag reload failed, keeping the previous flags", "error", err)
			case err == nil && s.doc.Load() != before:
				s.log.Info("flags reloaded", "file", s.path, "flag", s.flagKey)
			}
			lastErr = ""
			if err != nil {
				lastErr = err.Error()
			}
		}
	}
}
