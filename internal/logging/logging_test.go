package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warn": slog.LevelWarn, "error": slog.LevelError,
		"debug-4": slog.LevelDebug - 4,
	} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "loud", "info+", "warning!"} {
		if _, err := ParseLevel(bad); err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
			t.Errorf("ParseLevel(%q) err = %v", bad, err)
		}
	}
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "warn", JSON)
	if err != nil {
		t.Fatal(err)
	}
	if l.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("info enabled at warn")
	}
	l.Warn("hello", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "hello" || line["level"] != "WARN" {
		t.Fatalf("JSON line %q: %v", buf.String(), err)
	}

	buf.Reset()
	l, err = New(&buf, "DEBUG", Text)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hello", "k", 1)
	if s := buf.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, "msg=hello k=1") {
		t.Fatalf("text line %q", s)
	}

	if _, err := New(&buf, "loud", Text); err == nil || !strings.HasPrefix(err.Error(), "--log-level ") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := New(&buf, "info", "xml"); err == nil || !strings.HasPrefix(err.Error(), "--log-format ") {
		t.Errorf("bad format: %v", err)
	}
}
