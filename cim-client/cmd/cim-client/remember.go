package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// remembered is what --remember keeps: the latest resume token of a login
// at one route as one user. It is a credential (it logs in without the
// password, once, until the route's --resume-ttl after the last password
// login), so the file is the user's alone (mode 0600).
type remembered struct {
	Route     string `json:"route"`
	User      string `json:"user"`
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expiresAt,omitempty"` // unix seconds; 0: not said
}

// maxRemembered bounds the file read: a token is a few hundred bytes.
const maxRemembered = 64 << 10

// loadRemembered returns the token path keeps for user at route: "" when
// there is no file, or it is another user's or route's, or expired.
func loadRemembered(path, route, user string, now time.Time) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Size() > maxRemembered {
		return "", fmt.Errorf("%s: %d bytes, not a remembered login", path, st.Size())
	}
	var r remembered
	if err := json.NewDecoder(f).Decode(&r); err != nil {
		return "", fmt.Errorf("%s: not a remembered login: %w", path, err)
	}
	if r.Route != route || r.User != user || (r.ExpiresAt > 0 && now.Unix() >= r.ExpiresAt) {
		return "", nil
	}
	return r.Token, nil
}

// keeper writes each new resume token to its file, and removes the file
// once there is none to keep (logged off, refused, kicked).
type keeper struct {
	path, route, user string
	log               *slog.Logger
}

// save is the client's Config.OnResumeToken.
func (k keeper) save(token string, expiresAt time.Time) {
	if token == "" {
		if err := os.Remove(k.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			k.log.Warn("--remember: removing the login", "err", err)
		}
		return
	}
	r := remembered{Route: k.route, User: k.user, Token: token}
	if !expiresAt.IsZero() {
		r.ExpiresAt = expiresAt.Unix()
	}
	if err := writeFileAtomic(k.path, r); err != nil {
		k.log.Warn("--remember: the next start will ask for the password", "err", err)
	}
}

// writeFileAtomic replaces path with v as JSON, mode 0600: a crash leaves
// the old file or the new one, never half of one.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
