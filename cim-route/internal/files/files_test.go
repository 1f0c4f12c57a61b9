package files

import (
	"bytes"
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
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, 10, Limits{Total: 1000}, nil)
			tests := []struct {
				name    string
				body    io.Reader
				wantErr error
			}{
				{"empty", strings.NewReader(""), nil},
				{"one piece", strings.NewReader("012"), nil},
				{"exactly the limit", strings.NewReader("0123456789"), nil},
				{"one byte too many", strings.NewReader("0123456789x"), errs.ErrTooLarge},
				{"broken body", iotest.ErrReader(errors.New("reset")), errs.ErrBadArgument},
				{"broken after a piece", io.MultiReader(strings.NewReader("01234"), iotest.ErrReader(errors.New("reset"))), errs.ErrBadArgument},
			}
			var want int64
			for _, tt := range tests {
				info, err := s.PutFor("1", 0, "a.txt", "text/plain", tt.body)
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Fatalf("%s: %v, want %v", tt.name, err, tt.wantErr)
				}
				if err != nil {
					continue
				}
				want += info.Size
				if !ValidRef(info.Ref) || info.Name != "a.txt" || info.ContentType != "text/plain" || info.Owner != "1" {
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
			// Refused uploads give their claim back.
			if got := s.Used(); got != want {
				t.Fatalf("used %d after the refused uploads, want %d", got, want)
			}
			if res, err := s.Sweep(); err != nil || res.Kept != 3 || res.Used != want {
				t.Fatalf("sweep: %+v %v; want 3 kept of %d bytes", res, err, want)
			}
			if d, ok := s.(*Disk); ok { // nothing of the refused uploads is left behind
				var left []string
				filepath.Walk(d.dir, func(p string, fi os.FileInfo, err error) error {
					if err == nil && !fi.IsDir() && strings.HasPrefix(fi.Name(), ".") {
						left = append(left, p)
					}
					return nil
				})
				if len(left) != 0 {
					t.Fatalf("temporary files left: %v", left)
				}
			}
			for _, ref := range []string{"", "../../etc/passwd", "0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcdef"} {
				if _, _, _, err := s.Open(ref); !errors.Is(err, errs.ErrNotFound) {
					t.Errorf("Open(%q): %v, want ErrNotFound", ref, err)
				}
			}
		})
	}
}

// TestSeekRead: a file reads back byte for byte through small reads and
// seeks across pieces (what http.ServeContent does for a range).
func TestSeekRead(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, 100, Limits{}, nil)
			body := []byte("the quick brown fox jumps over the lazy dog")
			info, err := s.PutFor("1", int64(len(body)), "f", "text/plain", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			f, _, _, err := s.Open(info.Ref)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := iotest.TestReader(f, body); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(10, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 9)
			if _, err := io.ReadFull(f, b); err != nil || string(b) != "brown fox" {
				t.Fatalf("range 10-18: %q %v", b, err)
			}
			if end, err := f.Seek(-3, io.SeekEnd); err != nil || end != int64(len(body))-3 {
				t.Fatalf("seek from the end: %d %v", end, err)
			}
			if rest, err := io.ReadAll(f); err != nil || string(rest) != "dog" {
				t.Fatalf("tail: %q %v", rest, err)
			}
		})
	}
}
