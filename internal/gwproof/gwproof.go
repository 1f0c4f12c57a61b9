// Package gwproof is how a gateway proves to the route that it holds the
// internal secret, without sending the secret: the route sends a random
// challenge with its /healthz probe, the gateway answers
// HMAC-SHA256(secret, label || challenge || gateway id), and the route
// checks the answer against each of its secrets for the id it probed.
//
// Binding the gateway's own id into the proof is what makes relaying
// useless: a rogue node that forwards the route's challenge to a real
// gateway gets back a proof for the real gateway's id, not its own.
//
// All functions are safe for concurrent use.
package gwproof

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Param is the /healthz query parameter that carries the challenge.
const Param = "challenge"

// Challenge lengths in hex characters: NewChallenge makes 64 (32 random
// bytes); a gateway answers challenges of MinLen..MaxLen hex characters.
const (
	MinLen = 32
	MaxLen = 128
)

// label separates these proofs from any other use of the secret.
const label = "gocim gateway proof v1\x00"

// ErrBadChallenge means a challenge is not MinLen..MaxLen hex characters.
var ErrBadChallenge = errors.New("gwproof: challenge must be 32 to 128 hex characters")

// NewChallenge returns a fresh random challenge (64 hex characters).
func NewChallenge() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// CheckChallenge reports whether c is a well-formed challenge.
func CheckChallenge(c string) error {
	if len(c) < MinLen || len(c) > MaxLen {
		return ErrBadChallenge
	}
	if _, err := hex.DecodeString(c); err != nil {
		return ErrBadChallenge
	}
	return nil
}

// Sign returns the proof, in hex, that the holder of secret is the gateway
// id answering challenge.
func Sign(secret, challenge, id string) string {
	return hex.EncodeToString(mac(secret, challenge, id))
}

// Verify reports whether proof was made by Sign with one of secrets for
// challenge and id. Every secret is tried (no early exit), each compared in
// constant time.
func Verify(secrets []string, challenge, id, proof string) bool {
	got, err := hex.DecodeString(proof)
	if err != nil || len(got) != sha256.Size || len(secrets) == 0 {
		return false
	}
	ok := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if hmac.Equal(got, mac(s, challenge, id)) {
			ok = true
		}
	}
	return ok
}

func mac(secret, challenge, id string) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(label))
	h.Write([]byte(challenge))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return h.Sum(nil)
}
