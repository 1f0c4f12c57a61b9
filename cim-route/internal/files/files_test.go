package files

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

func TestPutOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "up")
	s := New(dir, 10)
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		body    io.Reader
		wantErr error
	}{
		{"empty", strings.NewReader(""), nil},
		{"exactly the limit", strings.NewReader("0123456789"), nil},
		{"one byte too many", strings.NewReader("0123456789x"), errs.ErrTooLarge},
		{"broken body", iotest.ErrReader(errors.New("reset")), errs.ErrBadArgument},
	}
	for _, tt := range tests {
		info, err := s.Put("a.txt", "text/plain", tt.body)
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Fatalf("%s: %v, want %v", tt.name, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		if !ValidRef(info.Ref) || info.Name != "a.txt" || info.ContentType != "text/plain" {
			t.Fatalf("%s: info %+v", tt.name, info)
		}
		f, got, mod, err := s.Open(info.Ref)
		if err != nil || got != info || mod.IsZero() {
			t.Fatalf("%s: open %+v %v", tt.name, got, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if int64(len(b)) != info.Size {
			t.Fatalf("%s: read %d bytes, size %d", tt.name, len(b), info.Size)
		}
	}
	// Nothing of the refused uploads is left behind.
	var left []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasPrefix(fi.Name(), ".") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	for _, ref := range []string{"", "../../etc/passwd", "0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcdef"} {
		if _, _, _, err := s.Open(ref); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Open(%q): %v, want ErrNotFound", ref, err)
		}
	}
}
