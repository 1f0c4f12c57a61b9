// Package internalauth holds the shared secret that gateways and the route
// present to each other on every internal HTTP call, in the X-CIM-Internal
// header. Secrets are configured as a list with the current one first: the
// current one is sent, every one is accepted, so the secret can be rotated
// one process at a time.
//
// A Secrets is immutable and safe for concurrent use.
package internalauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// Header carries the secret on internal calls.
const Header = "X-CIM-Internal"

// MinLen is the shortest secret accepted.
const MinLen = 16

// ErrMissing means no secret was configured.
var ErrMissing = errors.New("internal secret is required")

// Secrets is the configured secret list.
type Secrets struct {
	current string
	// Digests instead of the secrets themselves: comparing two SHA-256 sums
	// takes the same time whatever the lengths, so a caller learns nothing
	// about a secret's length either.
	digests [][sha256.Size]byte
}

// New checks list (current first; each at least MinLen bytes) and returns
// the Secrets for it.
func New(list []string) (*Secrets, error) {
	if len(list) == 0 {
		return nil, ErrMissing
	}
	s := &Secrets{current: list[0]}
	var errs []error
	for i, v := range list {
		if len(v) < MinLen {
			errs = append(errs, fmt.Errorf("secret #%d is %d bytes, want at least %d", i+1, len(v), MinLen))
			continue
		}
		s.digests = append(s.digests, sha256.Sum256([]byte(v)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Current returns the secret to send.
func (s *Secrets) Current() string { return s.current }

// Valid reports, in constant time, whether got is one of the secrets. A nil
// Secrets accepts nothing.
func (s *Secrets) Valid(got string) bool {
	if s == nil || got == "" {
		return false
	}
	d := sha256.Sum256([]byte(got))
	ok := 0
	for i := range s.digests {
		// No early exit: the time does not tell which secret matched.
		ok |= subtle.ConstantTimeCompare(d[:], s.digests[i][:])
	}
	return ok == 1
}
