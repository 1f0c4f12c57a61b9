package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// Limits bound the upload directory. Zero values turn each off, except
// UnreferencedTTL (default 24h).
type Limits struct {
	// Total is the most bytes all stored uploads may take together.
	Total int64
	// MinFree is the free space kept on the file system (Redis: below
	// maxmemory, when one is set): an upload that could take it below is
	// refused.
	MinFree int64
	// UnreferencedTTL: an upload not in use (see MarkReferenced) is
	// deleted by Sweep once this old.
	UnreferencedTTL time.Duration
	// MaxAge: every upload is deleted by Sweep once this old.
	MaxAge time.Duration
}

// staleTemp is the age after which Sweep deletes what an interrupted upload
// left behind (temporary files, bytes without metadata).
const staleTemp = time.Hour

// SetLimits sets the limits; call it before the Store is used.
func (s *Disk) SetLimits(l Limits) {
	if l.UnreferencedTTL <= 0 {
		l.UnreferencedTTL = 24 * time.Hour
	}
	s.limits = l
}

// space counts the bytes stored (as of the last Sweep, plus uploads since)
// and the bytes claimed by uploads under way.
type space struct {
	mu       sync.Mutex
	stored   int64
	inflight int64
}

// claim reserves n bytes for an upload, or says there is no room. The
// returned release takes the size actually stored (0 when nothing was).
func (s *Disk) claim(n int64) (func(stored int64), error) {
	if s.limits.MinFree > 0 {
		free, err := freeBytes(s.dir)
		if err != nil {
			return nil, err
		}
		sp := &s.space
		sp.mu.Lock()
		inflight := sp.inflight
		sp.mu.Unlock()
		if free-inflight-n < s.limits.MinFree {
			return nil, fmt.Errorf("%w: the upload file system keeps %d bytes free", errs.ErrStorageFull, s.limits.MinFree)
		}
	}
	sp := &s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if t := s.limits.Total; t > 0 && sp.stored+sp.inflight+n > t {
		return nil, fmt.Errorf("%w: uploads may take %d bytes in all", errs.ErrStorageFull, t)
	}
	sp.inflight += n
	var once sync.Once
	return func(stored int64) {
		once.Do(func() {
			sp.mu.Lock()
			sp.inflight -= n
			sp.stored += stored
			sp.mu.Unlock()
		})
	}, nil
}

// Used is the bytes stored as the Store counts them.
func (s *Disk) Used() int64 {
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	return s.space.stored
}

// MarkReferenced records that the upload ref is in use (a message named it,
// or someone other than its uploader fetched it): it no longer expires
// unreferenced. Marking twice, or an unknown ref, is fine.
func (s *Disk) MarkReferenced(ref string) error {
	if !ValidRef(ref) {
		return nil
	}
	if _, err := os.Stat(s.path(ref) + ".json"); err != nil {
		return nil // no such upload (its shard may hold others)
	}
	f, err := os.OpenFile(s.path(ref)+".ref", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist) {
		return nil // already marked, or deleted meanwhile
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Referenced reports whether ref is marked in use.
func (s *Disk) Referenced(ref string) bool {
	if !ValidRef(ref) {
		return false
	}
	_, err := os.Stat(s.path(ref) + ".ref")
	return err == nil
}

// SweepResult says what a Sweep did.
type SweepResult struct {
	Deleted int   // uploads deleted
	Freed   int64 // their bytes
	Kept    int   // uploads kept
	Used    int64 // their bytes: the new count of bytes stored
}

// Sweep deletes expired uploads and the leftovers of interrupted ones, and
// recounts the bytes stored. It walks the whole directory; run it now and
// then (the route does, every --upload-sweep).
func (s *Disk) Sweep() (SweepResult, error) {
	var res SweepResult
	now := s.now()
	shards, err := os.ReadDir(s.dir)
	if err != nil {
		return res, err
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		dir := filepath.Join(s.dir, sh.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return res, err
		}
		names := make(map[string]bool, len(entries))
		for _, e := range entries {
			names[e.Name()] = true
		}
		for _, e := range entries {
			s.sweepEntry(dir, e, names, now, &res)
		}
	}
	s.space.mu.Lock()
	s.space.stored = res.Used
	s.space.mu.Unlock()
	return res, nil
}

// sweepEntry handles one directory entry: an upload's bytes (named by its
// ref) decide its fate; metadata and markers follow it; temporary files and
// bytes without metadata are removed once stale.
func (s *Disk) sweepEntry(dir string, e fs.DirEntry, names map[string]bool, now time.Time, res *SweepResult) {
	name := e.Name()
	fi, err := e.Info()
	if err != nil {
		return // removed meanwhile
	}
	age := now.Sub(fi.ModTime())
	switch {
	case strings.HasPrefix(name, ".upload-") || strings.HasPrefix(name, ".meta-"):
		if age > staleTemp {
			os.Remove(filepath.Join(dir, name))
		}
		return
	case !ValidRef(name):
		ref, ok := strings.CutSuffix(name, ".json")
		if !ok {
			ref, ok = strings.CutSuffix(name, ".ref")
		}
		if ok && ValidRef(ref) && !names[ref] {
			os.Remove(filepath.Join(dir, name)) // metadata or marker of deleted bytes
		}
		return
	}
	ref, path := name, filepath.Join(dir, name)
	if !names[ref+".json"] {
		if age > staleTemp { // renamed into place, metadata never written
			os.Remove(path)
		}
		return
	}
	expired := s.limits.MaxAge > 0 && age > s.limits.MaxAge
	if !expired && age > s.limits.UnreferencedTTL && !names[ref+".ref"] {
		expired = !s.legacy(path)
	}
	if !expired {
		res.Kept++
		res.Used += fi.Size()
		return
	}
	// The metadata goes first: without it the ref is unknown at once.
	if err := os.Remove(path + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		res.Kept++
		res.Used += fi.Size()
		return
	}
	os.Remove(path)
	os.Remove(path + ".ref")
	res.Deleted++
	res.Freed += fi.Size()
}

// legacy reports whether an upload's metadata names no owner: it was made
// by a version that did not record owners and counts as in use.
func (s *Disk) legacy(path string) bool {
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		return false
	}
	var info Info
	return json.Unmarshal(b, &info) == nil && info.Owner == ""
}
