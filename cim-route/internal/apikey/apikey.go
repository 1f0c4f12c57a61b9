// Package apikey holds the route's API keys, the credentials of application
// back-ends: --api-keys "name:secret:scope[+scope],..." is parsed once into a
// Ring, which then finds the key a caller presents in constant time.
//
// A Ring is immutable and safe for concurrent use.
package apikey

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/envflag"
)

// Scope is what a key may do; a key holds one or more.
type Scope uint8

// Scopes.
const (
	// Push: send messages as anyone, to anyone (/p2pRoute, /groupRoute,
	// /api/push).
	Push Scope = 1 << iota
	// Admin: list online users, log anyone off.
	Admin
)

var scopeNames = map[string]Scope{"push": Push, "admin": Admin}

// String is the scope list as configured: "push+admin".
func (s Scope) String() string {
	var parts []string
	if s&Push != 0 {
		parts = append(parts, "push")
	}
	if s&Admin != 0 {
		parts = append(parts, "admin")
	}
	return strings.Join(parts, "+")
}

// Key is a configured key, without its secret.
type Key struct {
	Name   string
	Scopes Scope
}

// Has reports whether the key holds scope s.
func (k Key) Has(s Scope) bool { return k.Scopes&s == s }

// Ring is the set of configured keys.
type Ring struct {
	keys    []Key
	secrets *contract.Secrets // aligned with keys
}

// Parse reads a comma-separated list of name:secret:scopes; scopes are
// push and admin joined by '+'; every secret has at least minLen bytes.
// The secret is everything between the first and the last colon. An empty
// spec is an empty Ring (no key is accepted).
func Parse(spec string, minLen int) (*Ring, error) {
	r := &Ring{}
	var secrets []string
	names := map[string]bool{}
	seen := map[string]bool{}
	var errs []error
	for i, item := range envflag.List(spec) {
		name, rest, ok1 := strings.Cut(item, ":")
		sec, scopes, ok2 := cutLast(rest, ":")
		if !ok1 || !ok2 || name == "" {
			errs = append(errs, fmt.Errorf("key #%d: want name:secret:scope[+scope]", i+1))
			continue
		}
		var k Key
		k.Name = name
		for _, s := range strings.Split(scopes, "+") {
			sc, ok := scopeNames[s]
			if !ok {
				errs = append(errs, fmt.Errorf("key %q: unknown scope %q (want push or admin)", name, s))
				continue
			}
			k.Scopes |= sc
		}
		switch {
		case len(sec) < minLen:
			errs = append(errs, fmt.Errorf("key %q: secret is shorter than %d bytes", name, minLen))
		case seen[sec]:
			errs = append(errs, fmt.Errorf("key %q: same secret as an earlier key", name))
		}
		if names[name] {
			errs = append(errs, fmt.Errorf("key %q: name used twice", name))
		}
		names[name], seen[sec] = true, true
		r.keys = append(r.keys, k)
		secrets = append(secrets, sec)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.secrets = contract.NewSecrets(secrets)
	return r, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// Match returns the key whose secret is presented.
func (r *Ring) Match(presented string) (Key, bool) {
	if r == nil {
		return Key{}, false
	}
	if i := r.secrets.Match(presented); i >= 0 {
		return r.keys[i], true
	}
	return Key{}, false
}

// Keys lists the configured keys (without secrets).
func (r *Ring) Keys() []Key {
	if r == nil {
		return nil
	}
	return append([]Key(nil), r.keys...)
}
