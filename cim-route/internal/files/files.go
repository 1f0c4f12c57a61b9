// Package files keeps uploaded files for file messages too large to inline:
// POST /upload stores one under a random 128-bit ref, GET /files/<ref>
// serves it. A Store is where they live: Disk (a directory, the default)
// or Redis (chunks in Redis, so route replicas share uploads without a
// shared file system; redis.go).
//
// Disk keeps each upload as <dir>/<ref[:2]>/<ref> (the bytes) plus
// <ref>.json (name, content type, size), both written to a temporary file
// and renamed into place; the metadata goes last, so a ref is either
// complete or unknown. Files are never modified after that. Several route
// replicas must share dir (a network file system) for a download to find
// an upload made through another replica.
//
// Space is bounded (limits.go): a global cap on the bytes stored and a
// reserve of free space (on the file system; in Redis, below maxmemory),
// both checked before an upload is written. Uploads expire: one that nobody
// but its uploader fetched and no message named (on disk an empty <ref>.ref
// marker says it is in use) is deleted by Sweep after
// Limits.UnreferencedTTL, every upload after Limits.MaxAge when set.
//
// Stores are safe for concurrent use.
package files

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// Info describes a stored file.
type Info struct {
	Ref         string `json:"ref"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	// Owner is the uploader's user id; empty for uploads of versions that
	// did not record it, which count as in use.
	Owner string `json:"owner,omitempty"`
}

// Store keeps uploads; Disk and Redis implement it, and the package's tests
// run against both.
type Store interface {
	// Max is the largest accepted file in bytes.
	Max() int64
	// SetLimits sets the limits; call it before the Store is used.
	SetLimits(l Limits)
	// Init prepares the store (creates the directory, checks Redis), so a
	// bad configuration fails at start.
	Init() error
	// PutFor stores body, uploaded by owner, with its metadata and returns
	// its info. expect is the announced size (0: unknown, Max is assumed):
	// the space for it is claimed before anything is written, and
	// errs.ErrStorageFull says it is not there. More than Max bytes →
	// errs.ErrTooLarge and nothing is kept; a body that cannot be read (the
	// client went away) → errs.ErrBadArgument.
	PutFor(owner string, expect int64, name, contentType string, body io.Reader) (Info, error)
	// Open returns a stored file for reading, its info and the time it was
	// stored; errs.ErrNotFound for an unknown or malformed ref. The caller
	// closes the file.
	Open(ref string) (File, Info, time.Time, error)
	// MarkReferenced records that the upload ref is in use: it no longer
	// expires unreferenced. Marking twice, or an unknown ref, is fine.
	MarkReferenced(ref string) error
	// Referenced reports whether ref is marked in use.
	Referenced(ref string) bool
	// Sweep deletes expired uploads and recounts the bytes stored; the
	// route runs it every --upload-sweep.
	Sweep() (SweepResult, error)
	// Used is the bytes stored as the Store counts them.
	Used() int64
}

// File is an open upload: http.ServeContent reads and seeks it (ranges).
type File interface {
	io.ReadSeeker
	io.Closer
}

var (
	_ Store = (*Disk)(nil)
	_ Store = (*Redis)(nil)
)

// Disk keeps files under one directory.
type Disk struct {
	dir    string
	max    int64
	limits Limits
	space  space
	now    func() time.Time
}

// New returns a Disk store under dir accepting files of at most max bytes.
// It touches nothing on disk until used; see Init.
func New(dir string, max int64) *Disk {
	return &Disk{dir: dir, max: max, now: time.Now}
}

// Max is the largest accepted file in bytes.
func (s *Disk) Max() int64 { return s.max }

// Init creates the directory, so a bad --upload-dir fails at start.
func (s *Disk) Init() error {
	return os.MkdirAll(s.dir, 0o700)
}

// Put stores body with its metadata and returns its info, with no owner
// (see PutFor).
func (s *Disk) Put(name, contentType string, body io.Reader) (Info, error) {
	return s.PutFor("", 0, name, contentType, body)
}

// PutFor stores body, uploaded by owner, with its metadata and returns its
// info. expect is the announced size (0: unknown, Max is assumed): the space
// for it is claimed before anything is written, and errs.ErrStorageFull
// says it is not there (the global cap, or the file system's free-space
// reserve). More than Max bytes → errs.ErrTooLarge and nothing is kept; a
// body that cannot be read (the client went away) → errs.ErrBadArgument.
func (s *Disk) PutFor(owner string, expect int64, name, contentType string, body io.Reader) (Info, error) {
	if expect <= 0 || expect > s.max {
		expect = s.max
	}
	release, err := s.claim(expect)
	if err != nil {
		return Info{}, err
	}
	info, err := s.put(owner, name, contentType, body)
	release(info.Size)
	return info, err
}

func (s *Disk) put(owner, name, contentType string, body io.Reader) (Info, error) {
	info := Info{Ref: newRef(), Name: name, ContentType: contentType, Owner: owner}
	dir := filepath.Join(s.dir, info.Ref[:2])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return Info{}, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, io.LimitReader(body, s.max+1))
	if cerr := tmp.Close(); err == nil && cerr != nil {
		return Info{}, cerr
	}
	switch {
	case err != nil:
		return Info{}, fmt.Errorf("%w: reading the upload: %v", errs.ErrBadArgument, err)
	case n > s.max:
		return Info{}, fmt.Errorf("%w: uploads are limited to %d bytes", errs.ErrTooLarge, s.max)
	}
	if err := os.Rename(tmp.Name(), s.path(info.Ref)); err != nil {
		return Info{}, err
	}
	info.Size = n
	meta, _ := json.Marshal(info)
	if err := writeFile(dir, s.path(info.Ref)+".json", meta); err != nil {
		os.Remove(s.path(info.Ref))
		return Info{}, err
	}
	return info, nil
}

// Open returns a stored file for reading, its info and its modification
// time; errs.ErrNotFound for an unknown or malformed ref. The caller closes
// the file.
func (s *Disk) Open(ref string) (File, Info, time.Time, error) {
	notFound := fmt.Errorf("%w: no file %q", errs.ErrNotFound, ref)
	if !ValidRef(ref) {
		return nil, Info{}, time.Time{}, notFound
	}
	meta, err := os.ReadFile(s.path(ref) + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, time.Time{}, notFound
	}
	if err != nil {
		return nil, Info{}, time.Time{}, err
	}
	var info Info
	if err := json.Unmarshal(meta, &info); err != nil || info.Ref != ref {
		return nil, Info{}, time.Time{}, fmt.Errorf("file %s: bad metadata: %v", ref, err)
	}
	f, err := os.Open(s.path(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, time.Time{}, notFound
	}
	if err != nil {
		return nil, Info{}, time.Time{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, time.Time{}, err
	}
	return f, info, st.ModTime(), nil
}

// ValidRef reports whether ref has the form of a ref: 32 lowercase hex digits.
func ValidRef(ref string) bool {
	if len(ref) != 32 {
		return false
	}
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *Disk) path(ref string) string { return filepath.Join(s.dir, ref[:2], ref) }

// newRef returns 128 random bits as hex: a ref is a capability (whoever
// knows it can download the file), so it comes from crypto/rand.
func newRef() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeFile writes data to path through a temporary file and a rename.
func writeFile(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".meta-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
