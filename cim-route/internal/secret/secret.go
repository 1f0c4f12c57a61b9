// Package secret compares a secret a caller presents (the internal secret of
// gateways and route, an API key) with the configured ones without leaking,
// through timing, which one matched or how much of it did.
//
// A Set is immutable and safe for concurrent use.
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Set is a list of accepted secrets, current one first.
type Set struct {
	sums [][sha256.Size]byte
}

// NewSet returns the set of values. Empty values are never matched.
func NewSet(values []string) Set {
	s := Set{sums: make([][sha256.Size]byte, 0, len(values))}
	for _, v := range values {
		if v != "" {
			s.sums = append(s.sums, sha256.Sum256([]byte(v)))
		}
	}
	return s
}

// Len is the number of secrets in the set.
func (s Set) Len() int { return len(s.sums) }

// Match returns the index of the secret equal to presented (in the order
// given to NewSet, empty values skipped), or -1. Every secret is compared,
// in constant time, on digests of the same length: neither the position of
// the match nor the length of a secret shows in the time taken.
func (s Set) Match(presented string) int {
	if presented == "" {
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
