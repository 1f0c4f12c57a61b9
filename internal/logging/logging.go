// Package logging builds a process's logger from its --log-level and
// --log-format flags, the same way for the route and the gateway: log/slog,
// text or JSON lines, to the writer given (stderr: stdout carries only the
// ready line).
//
// The functions are safe for concurrent use.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// Formats of --log-format.
const (
	Text = "text"
	JSON = "json"
)

// ParseLevel reads a --log-level: debug, info, warn or error, in any case
// (slog's offsets such as "debug-4" are accepted too).
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" || l.UnmarshalText([]byte(s)) != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// CheckFormat checks a --log-format: text or json.
func CheckFormat(s string) error {
	if s != Text && s != JSON {
		return fmt.Errorf("%q: want text or json", s)
	}
	return nil
}

// New returns a logger writing to w at level in format (see ParseLevel and
// CheckFormat); a bad level or format is an error naming the flag.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %w", err)
	}
	if err := CheckFormat(format); err != nil {
		return nil, fmt.Errorf("--log-format %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == JSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
