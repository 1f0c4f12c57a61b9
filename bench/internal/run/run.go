// Package run lets a program use the test harness (e2e/harness,
// internal/testenv) outside `go test`: T implements their TB interface,
// turning Fatalf into a panic that Main recovers after running the cleanups.
package run

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// T is a harness.TB for a program.
type T struct {
	Log *slog.Logger

	mu       sync.Mutex
	cleanups []func()
	dirs     []string
	errors   int
}

type fatal string

// Helper implements TB.
func (t *T) Helper() {}

// Fatalf stops the run: Main recovers it, runs the cleanups and exits 1.
func (t *T) Fatalf(format string, args ...any) { panic(fatal(fmt.Sprintf(format, args...))) }

// Skipf is fatal too: a benchmark without its services measures nothing.
func (t *T) Skipf(format string, args ...any) { t.Fatalf(format, args...) }

// Errorf reports a failure and goes on.
func (t *T) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.errors++
	t.mu.Unlock()
	t.Log.Error(fmt.Sprintf(format, args...))
}

// Logf logs at info level.
func (t *T) Logf(format string, args ...any) { t.Log.Info(fmt.Sprintf(format, args...)) }

// Cleanup registers f to run, last first, when Main returns.
func (t *T) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// TempDir returns a new directory removed at the end.
func (t *T) TempDir() string {
	d, err := os.MkdirTemp("", "gocim-bench-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.mu.Lock()
	t.dirs = append(t.dirs, d)
	t.mu.Unlock()
	return d
}

func (t *T) finish() {
	t.mu.Lock()
	cs, ds := t.cleanups, t.dirs
	t.cleanups, t.dirs = nil, nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range ds {
		os.RemoveAll(d)
	}
}

// Main runs body with a T and returns the exit code: 0, or 1 after a Fatalf
// or an Errorf. Cleanups always run.
func Main(log *slog.Logger, body func(t *T)) (code int) {
	t := &T{Log: log}
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(fatal)
			if !ok {
				t.finish()
				panic(r)
			}
			log.Error(string(msg))
			code = 1
		}
		t.finish()
		if code == 0 && t.errors > 0 {
			code = 1
		}
	}()
	body(t)
	return 0
}
