package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	digest  atomic.Pointer[string]
	content []byte
}

// documentDigest names a flag file's contents: the first 16 hex digits of their sha256. A
// rollout writes a document and waits until every instance reports its digest, as
// canaryflow_flag_document_info{digest=...}, before judging the exposure it sets.
func documentDigest(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])[:16]
}

// appliedDigest is the digest of the document in force; "" without a flag file.
func (s *flagSource) appliedDigest() string {
	if s == nil {
		return ""
	}
	if d := s.digest.Load(); d != nil {
		return *d
	}
	return ""
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
	digest := documentDigest(data)
	s.digest.Store(&digest) // after the document: the digest reported is never ahead of it
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

// documentInfo is canaryflow_flag_document_info{flag, digest}: which flag document this
// instance has in force.
func (s *flagSource) documentInfo() collector {
	return &infoFunc{
		desc: desc{fqName: "canaryflow_flag_document_info", typ: "gauge",
			labels: []string{"flag", "digest"},
			help:   "The flag document in force: its flag key and the sha256 prefix of the file."},
		read: func() []string {
			if digest := s.appliedDigest(); digest != "" {
				return []string{s.flagKey, digest}
			}
			return nil
		},
	}
}
