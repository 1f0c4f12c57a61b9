package files

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

func newLimited(t *testing.T, l Limits) *Disk {
	t.Helper()
	s := New(filepath.Join(t.TempDir(), "up"), 100)
	s.SetLimits(l)
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	return s
}

func chtimes(path string, t time.Time) error { return os.Chtimes(path, t, t) }

// TestTotalCap: uploads are refused with ErrStorageFull once the stored
// bytes plus the announced size pass Total; a refused upload keeps nothing.
func TestTotalCap(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, 100, Limits{Total: 150}, nil)
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
		})
	}
}

// TestTotalCapShared: two Redis stores (two route replicas) share one cap.
func TestTotalCapShared(t *testing.T) {
	im := impls(t)[1]
	a := im.open(t, 100, Limits{Total: 150}, nil).(*Redis)
	b := NewRedis(a.rdb, a.prefix, 100)
	b.SetLimits(Limits{Total: 150})
	if _, err := a.PutFor("1", 80, "a", "text/plain", strings.NewReader(strings.Repeat("a", 80))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutFor("2", 80, "b", "text/plain", strings.NewReader(strings.Repeat("b", 80))); !errors.Is(err, errs.ErrStorageFull) {
		t.Fatalf("upload through the other replica over the cap: %v, want ErrStorageFull", err)
	}
	info, err := b.PutFor("2", 70, "c", "text/plain", strings.NewReader(strings.Repeat("c", 70)))
	if err != nil {
		t.Fatal(err)
	}
	if _, got, _, err := a.Open(info.Ref); err != nil || got != info {
		t.Fatalf("the other replica's upload: %+v %v", got, err)
	}
}

// TestMinFree: with a reserve larger than the room left, nothing is stored
// (disk: the file system's free space; Redis: maxmemory less used_memory).
func TestMinFree(t *testing.T) {
	s := newLimited(t, Limits{MinFree: math.MaxInt64 / 2})
	if _, err := s.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); !errors.Is(err, errs.ErrStorageFull) {
		t.Fatalf("upload below the free-space reserve: %v, want ErrStorageFull", err)
	}
	s = newLimited(t, Limits{MinFree: 1})
	if _, err := s.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); err != nil {
		t.Fatalf("upload with room: %v", err)
	}

	im := impls(t)[1]
	r := im.open(t, 100, Limits{MinFree: 1 << 30}, nil).(*Redis)
	if _, err := r.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); err != nil {
		t.Fatalf("Redis without maxmemory: %v (no reserve to keep)", err)
	}
	ctx := context.Background()
	if err := r.rdb.ConfigSet(ctx, "maxmemory", "512mb").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); !errors.Is(err, errs.ErrStorageFull) {
		t.Fatalf("upload below the maxmemory reserve: %v, want ErrStorageFull", err)
	}
	r.SetLimits(Limits{MinFree: 1 << 20})
	if _, err := r.PutFor("1", 1, "a", "text/plain", strings.NewReader("a")); err != nil {
		t.Fatalf("upload with room below maxmemory: %v", err)
	}
}

// TestSweep: an upload nobody else used expires after UnreferencedTTL; a
// referenced one and an owner-less (older version) one stay until MaxAge.
func TestSweep(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			now := time.Now()
			s := im.open(t, 100, Limits{UnreferencedTTL: time.Hour, MaxAge: 48 * time.Hour}, func() time.Time { return now })
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
			if s.Referenced("0123456789abcdef0123456789abcdef") || s.Referenced(unref.Ref) {
				t.Fatal("marking an unknown ref made it referenced, or an unmarked one is")
			}
			for _, i := range []Info{unref, ref, legacy} {
				im.age(t, s, i.Ref, 2*time.Hour)
			}
			res, err := s.Sweep()
			if err != nil || res.Deleted != 1 || res.Kept != 3 || res.Used != 15 || s.Used() != 15 {
				t.Fatalf("sweep: %+v %v, used %d; want 1 deleted, 3 kept of 15 bytes", res, err, s.Used())
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
			// Past MaxAge everything goes, referenced or not.
			for _, i := range []Info{ref, legacy} {
				im.age(t, s, i.Ref, 49*time.Hour)
			}
			if res, err := s.Sweep(); err != nil || res.Deleted != 2 || res.Kept != 1 || s.Used() != 5 {
				t.Fatalf("sweep past max age: %+v %v, used %d", res, err, s.Used())
			}
			if s.Referenced(ref.Ref) {
				t.Fatal("the marker outlived its upload")
			}
		})
	}
}

// TestMarkUnknownInAShard: marking an unknown ref whose shard directory
// holds another upload leaves no marker (it would be one file for nothing,
// and the ref would read as in use), and a marker whose upload is gone (a
// deletion between Open and MarkReferenced) goes at the next Sweep.
func TestMarkUnknownInAShard(t *testing.T) {
	s := newLimited(t, Limits{UnreferencedTTL: time.Hour})
	info, err := s.PutFor("1", 0, "f.txt", "text/plain", strings.NewReader("12345"))
	if err != nil {
		t.Fatal(err)
	}
	unknown := info.Ref[:2] + strings.Repeat("0", len(info.Ref)-2)
	if unknown == info.Ref {
		unknown = info.Ref[:2] + strings.Repeat("1", len(info.Ref)-2)
	}
	if err := s.MarkReferenced(unknown); err != nil {
		t.Fatal(err)
	}
	if s.Referenced(unknown) {
		t.Fatal("marking an unknown ref in an existing shard made it referenced")
	}
	orphan := s.path(unknown) + ".ref"
	if err := os.WriteFile(orphan, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sweep(); err != nil || res.Kept != 1 {
		t.Fatalf("sweep: %+v %v, want the upload kept", res, err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("the marker of no upload outlived a sweep: %v", err)
	}
}

// TestSweepStale: leftovers of interrupted uploads go once stale.
func TestSweepStale(t *testing.T) {
	s := newLimited(t, Limits{})
	now := time.Now()
	s.now = func() time.Time { return now }
	stale := filepath.Join(s.dir, "ab", ".upload-123")
	os.MkdirAll(filepath.Dir(stale), 0o700)
	os.WriteFile(stale, []byte("partial"), 0o600)
	chtimes(stale, now.Add(-2*staleTemp))
	if _, err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file: %v", err)
	}

	// Redis: an upload whose replica died mid-way expires by its TTL; Sweep
	// then gives its claim back.
	r := impls(t)[1].open(t, 100, Limits{Total: 150}, nil).(*Redis)
	ctx := context.Background()
	const ref = "0123456789abcdef0123456789abcdef"
	r.rdb.HSet(ctx, r.metaKey(ref), "ref", ref, "state", "partial")
	if err := r.claim(ctx, ref, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sweep(); err != nil || r.Used() != 100 {
		t.Fatalf("an upload under way lost its claim: used %d, %v", r.Used(), err)
	}
	r.rdb.Del(ctx, r.metaKey(ref)) // what its TTL does
	if _, err := r.Sweep(); err != nil || r.Used() != 0 {
		t.Fatalf("the claim of a dead upload was kept: used %d, %v", r.Used(), err)
	}
}
