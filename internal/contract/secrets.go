package contract

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest internal secret accepted.
const MinSecretLen = 16

// ErrNoSecret means no internal secret was configured.
var ErrNoSecret = errors.New("internal secret is required")

// Secrets is a list of accepted secrets with the current one first: the
// current one is sent, every one is accepted, so a secret can be rotated one
// process at a time. Comparisons take the same time whichever secret
// matched, and however long the secrets are. The route also checks its
// applications' API keys with it.
//
// A Secrets is immutable; a nil one accepts nothing.
type Secrets struct {
	current string
	// Digests instead of the secrets themselves: comparing two SHA-256 sums
	// takes the same time whatever the lengths.
	sums [][sha256.Size]byte
}

// CheckSecrets applies the rules of --internal-secret to list: at least one
// secret, each at least MinSecretLen bytes.
func CheckSecrets(list []string) error {
	if len(list) == 0 {
		return ErrNoSecret
	}
	var errs []error
	for i, v := range list {
		if len(v) < MinSecretLen {
			errs = append(errs, fmt.Errorf("secret #%d is %d bytes, want at least %d", i+1, len(v), MinSecretLen))
		}
	}
	return errors.Join(errs...)
}

// ParseSecrets checks list with CheckSecrets and returns its Secrets.
func ParseSecrets(list []string) (*Secrets, error) {
	if err := CheckSecrets(list); err != nil {
		return nil, err
	}
	return NewSecrets(list), nil
}

// NewSecrets returns the set of values, current first, without checking
// them; empty values are skipped and never matched.
func NewSecrets(values []string) *Secrets {
	s := &Secrets{sums: make([][sha256.Size]byte, 0, len(values))}
	for _, v := range values {
		if v == "" {
			continue
		}
		if len(s.sums) == 0 {
			s.current = v
		}
		s.sums = append(s.sums, sha256.Sum256([]byte(v)))
	}
	return s
}

// Current returns the secret to send ("" for an empty set).
func (s *Secrets) Current() string {
	if s == nil {
		return ""
	}
	return s.current
}

// Len is the number of secrets in the set.
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	return len(s.sums)
}

// Match returns the index of the secret equal to presented (in the order
// given, empty values skipped), or -1. Every secret is compared, in
// constant time, so the time taken tells neither which one matched nor how
// long any is.
func (s *Secrets) Match(presented string) int {
	if s == nil || presented == "" {
		return -1
	}
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range s.sums {
		if subtle.ConstantTimeCompare(sum[:], s.sums[i][:]) == 1 && found < 0 {
			found = i
		}
	}
	return found
}

// Valid reports whether presented is one of the secrets.
func (s *Secrets) Valid(presented string) bool { return s.Match(presented) >= 0 }
