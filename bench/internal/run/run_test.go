package run

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestMain_ runs cleanups last-first after a Fatalf and reports failure.
func TestMainRunsCleanupsAfterFatal(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var order []int
	var dir string
	code := Main(log, func(rt *T) {
		dir = rt.TempDir()
		rt.Cleanup(func() { order = append(order, 1) })
		rt.Cleanup(func() { order = append(order, 2) })
		rt.Fatalf("stop here")
		order = append(order, 99)
	})
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Fatalf("cleanups ran as %v, want [2 1]", order)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s left behind", dir)
	}
}

func TestMainErrorfFailsButGoesOn(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reached := false
	code := Main(log, func(rt *T) {
		rt.Errorf("one wrong number")
		reached = true
	})
	if code != 1 || !reached {
		t.Fatalf("code %d reached %v, want 1 true", code, reached)
	}
	if code := Main(log, func(*T) {}); code != 0 {
		t.Fatalf("clean run: code %d", code)
	}
}
