// Package token signs and verifies the tokens the route hands out: gateway
// tokens (audience "gw"), which bind a user, a session and one gateway until
// an expiry and which the gateways check offline for LOGIN, access tokens
// (audience "api"), the bearer tokens of the route's user-facing HTTP API,
// and resume tokens (audience "rs"), which let a client log in again
// without its password (the route checks that the token is the latest it
// issued for that user and platform).
// Form: base64url(JSON claims) "." base64url(HMAC-SHA256). A token of one
// audience is never accepted for the other.
//
// Keys are tried in order, so a route can sign with a new key while gateways
// still accept the previous one during a rotation. All functions are safe for
// concurrent use.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// MinKeyLen is the shortest secret accepted for signing.
const MinKeyLen = 16

var (
	// ErrMalformed means the token is not of the expected form.
	ErrMalformed = errors.New("token: malformed")
	// ErrSignature means no configured key produced the token's signature.
	ErrSignature = errors.New("token: bad signature")
	// ErrExpired means the token's expiry has passed.
	ErrExpired = errors.New("token: expired")
	// ErrWrongGateway means the token was issued for another gateway.
	ErrWrongGateway = errors.New("token: issued for another gateway")
	// ErrShortKey means a signing key is shorter than MinKeyLen.
	ErrShortKey = errors.New("token: key shorter than 16 bytes")
	// ErrAudience means the token is of the other kind (an access token
	// offered to a gateway, or a gateway token used as a bearer token).
	ErrAudience = errors.New("token: wrong kind of token for this use")
)

// Audiences.
const (
	AudienceGateway = "gw"  // LOGIN on one gateway
	AudienceAPI     = "api" // bearer token of the route's user API
	AudienceResume  = "rs"  // a login without the password (POST /login)
)

// Claims is what a token asserts.
type Claims struct {
	UserID    string `json:"uid"`
	UserName  string `json:"name,omitempty"`
	SessionID string `json:"sid"`
	GatewayID string `json:"gw,omitempty"`
	ExpiresAt int64  `json:"exp"` // unix seconds
	// Audience is AudienceGateway or AudienceAPI; Sign fills in
	// AudienceGateway when it is empty and GatewayID is set.
	Audience string `json:"aud"`
	// Platform is what the login named (gateway and resume tokens; empty:
	// none).
	Platform string `json:"pf,omitempty"`
	// Nonce tells a resume token from the ones issued before it.
	Nonce string `json:"n,omitempty"`
	// Since is when the password login a resume token descends from was
	// checked (unix seconds): every resume token of that chain expires
	// a fixed time after it, so the password is checked again then.
	Since int64 `json:"since,omitempty"`
}

// Sign returns a token for c signed with key.
func Sign(key []byte, c Claims) (string, error) {
	if len(key) < MinKeyLen {
		return "", ErrShortKey
	}
	if c.Audience == "" && c.GatewayID != "" {
		c.Audience = AudienceGateway
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	p := enc.EncodeToString(payload)
	return p + "." + enc.EncodeToString(mac(key, p)), nil
}

// Verify checks a gateway token against keys (newest first) and the clock,
// and, when gatewayID is not empty, that the token was issued for that
// gateway.
func Verify(keys [][]byte, tok string, gatewayID string, now time.Time) (Claims, error) {
	c, err := verify(keys, tok, now)
	if err != nil {
		return c, err
	}
	if c.Audience != AudienceGateway {
		return c, ErrAudience
	}
	if gatewayID != "" && c.GatewayID != gatewayID {
		return c, ErrWrongGateway
	}
	return c, nil
}

// VerifyAPI checks an access token (audience "api") against keys and the
// clock. Whether its session is still current is the caller's question.
func VerifyAPI(keys [][]byte, tok string, now time.Time) (Claims, error) {
	c, err := verify(keys, tok, now)
	if err != nil {
		return c, err
	}
	if c.Audience != AudienceAPI {
		return c, ErrAudience
	}
	return c, nil
}

// VerifyResume checks a resume token (audience "rs") against keys and the
// clock. Whether it is the latest issued is the caller's question.
func VerifyResume(keys [][]byte, tok string, now time.Time) (Claims, error) {
	c, err := verify(keys, tok, now)
	if err != nil {
		return c, err
	}
	if c.Audience != AudienceResume || c.Nonce == "" {
		return c, ErrAudience
	}
	return c, nil
}

func verify(keys [][]byte, tok string, now time.Time) (Claims, error) {
	var c Claims
	p, sig, ok := strings.Cut(tok, ".")
	if !ok || p == "" || sig == "" {
		return c, ErrMalformed
	}
	enc := base64.RawURLEncoding
	got, err := enc.DecodeString(sig)
	if err != nil {
		return c, ErrMalformed
	}
	valid := false
	for _, k := range keys {
		if len(k) > 0 && hmac.Equal(got, mac(k, p)) {
			valid = true
			break
		}
	}
	if !valid {
		return c, ErrSignature
	}
	payload, err := enc.DecodeString(p)
	if err != nil || json.Unmarshal(payload, &c) != nil || c.UserID == "" || c.SessionID == "" {
		return Claims{}, ErrMalformed
	}
	if now.Unix() >= c.ExpiresAt {
		return c, ErrExpired
	}
	return c, nil
}

func mac(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// Keys turns configured secrets (current first) into the key list Sign and
// Verify take.
func Keys(secrets []string) [][]byte {
	keys := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		keys = append(keys, []byte(s))
	}
	return keys
}
