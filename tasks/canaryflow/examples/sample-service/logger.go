package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// logger writes one plain line per event: an RFC3339 UTC timestamp, the level, the message,
// then key=value pairs. Plain enough to grep, structured enough to parse.
type logger struct {
	mu  sync.Mutex
	out io.Writer
	now func() time.Time
}

const logTimeFormat = "2006-01-02T15:04:05.000Z07:00" // RFC3339 with milliseconds

func newLogger(out io.Writer) *logger { return &logger{out: out, now: time.Now} }

func (l *logger) Info(msg string, kv ...any)  { l.write("INFO", msg, kv) }
func (l *logger) Error(msg string, kv ...any) { l.write("ERROR", msg, kv) }

func (l *logger) write(level, msg string, kv []any) {
	var b strings.Builder
	b.WriteString(l.now().UTC().Format(logTimeFormat))
	b.WriteByte(' ')
	b.WriteString(level)
	b.WriteByte(' ')
	b.WriteString(msg)
	for i := 0; i+1 < len(kv); i += 2 {
		value := fmt.Sprint(kv[i+1])
		if value == "" || strings.ContainsAny(value, " \"=") {
			value = fmt.Sprintf("%q", value)
		}
		fmt.Fprintf(&b, " %v=%s", kv[i], value)
	}
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.out, b.String())
}
