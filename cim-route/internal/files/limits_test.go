package files

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

func newLimited(t *testing.T, l Limits) *Store {
	t.Helper()
	s := New(filepath.Join(t.TempDir(), "up"), 100)
	s.SetLimits(l)
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTotalCap: uploads are refused with ErrStorageFull once the stored
// bytes plus the announced size pass Total; a refused upload keeps nothing.
func TestTotalCap(t *testing.T) {
	s := newLimited(t, Limits{Total: 150})
	if _, err := s.PutFor("1", 80, "a", "text/plain", strings.NewReader(strings.Repeat("a", 80))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutFor("1", 80, "b", "text/plain", strings.NewReader(strings.Repeat("b", 80))); !errors.Is(err, errs.ErrStorageFull) {
		t.Fatalf("second upload over the cap: %v, want ErrStorageFull", err)
	}
	// Unknown size: the most it can be (Max, 100) must fit.
	if _, err := s.PutFor("1", 0, "c", "text/plain", strings.NewReader("c")); !errors.Is(err, errs.ErrStorageFull) {
		t.Fatalf("upload of unknown size: %v, want ErrStorageFull", err)
	}
	if _, err := s.PutFor("1", 70, "d", "text/plain", strings.NewReader(strings.Repeat("d", 70))); err != nil {
		t.Fatalf("upload that fits: %v", err)
	}
	if got := s.Used(); got != 150 {
		t.Fatalf("used %d, want 150", got)
	}
	res, err := s.Sweep()
	if err != nil || res.Used != 150 || res.Kept != 2 {
		t.Fatalf("sweep recount: %+v %v", res, err)
	}
}

// TestMinFree: with a reserve larger than the disk, nothing is stored.
func TestMinFree(t *testing.T) {
	s := newLimited(t, Limits{MinFree: math.MaxInt64 / 2})
	if _, err := s.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); !errors.Is(err, errs.ErrStorageFull) {
		t.Fatalf("upload below the free-space reserve: %v, want ErrStorageFull", err)
	}
	s = newLimited(t, Limits{MinFree: 1})
	if _, err := s.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); err != nil {
		t.Fatalf("upload with room: %v", err)
	}
}

// TestSweep: an upload nobody else used expires after UnreferencedTTL; a
// referenced one and an owner-less (older version) one stay until MaxAge;
// leftovers of interrupted uploads go once stale.
func TestSweep(t *testing.T) {
	s := newLimited(t, Limits{UnreferencedTTL: time.Hour, MaxAge: 48 * time.Hour})
	now := time.Now()
	s.now = func() time.Time { return now }
	put := func(owner string) Info {
		info, err := s.PutFor(owner, 0, "f.txt", "text/plain", strings.NewReader("12345"))
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	unref, ref, legacy, fresh := put("1"), put("1"), put(""), put("1")
	if err := s.MarkReferenced(ref.Ref); err != nil || !s.Referenced(ref.Ref) {
		t.Fatalf("mark: %v", err)
	}
	if err := s.MarkReferenced(ref.Ref); err != nil {
		t.Fatalf("mark twice: %v", err)
	}
	if err := s.MarkReferenced("0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatalf("mark unknown: %v", err)
	}
	age := func(i Info, d time.Duration) {
		old := now.Add(-d)
		if err := os.Chtimes(s.path(i.Ref), old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []Info{unref, ref, legacy} {
		age(i, 2*time.Hour)
	}
	stale := filepath.Join(s.dir, "ab", ".upload-123")
	os.MkdirAll(filepath.Dir(stale), 0o700)
	os.WriteFile(stale, []byte("partial"), 0o600)
	old := now.Add(-2 * staleTemp)
	os.Chtimes(stale, old, old)

	res, err := s.Sweep()
	if err != nil || res.Deleted != 1 || res.Kept != 3 || res.Used != 15 {
		t.Fatalf("sweep: %+v %v; want 1 deleted, 3 kept of 5 bytes", res, err)
	}
	if _, _, _, err := s.Open(unref.Ref); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("the unreferenced upload: %v, want ErrNotFound", err)
	}
	for _, i := range []Info{ref, legacy, fresh} {
		f, _, _, err := s.Open(i.Ref)
		if err != nil {
			t.Fatalf("%s was deleted: %v", i.Ref, err)
		}
		f.Close()
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file: %v", err)
	}
	// Past MaxAge everything goes, referenced or not.
	for _, i := range []Info{ref, legacy} {
		age(i, 49*time.Hour)
	}
	if res, err := s.Sweep(); err != nil || res.Deleted != 2 || res.Kept != 1 {
		t.Fatalf("sweep past max age: %+v %v", res, err)
	}
	if s.Referenced(ref.Ref) {
		t.Fatal("the marker outlived its upload")
	}
}
