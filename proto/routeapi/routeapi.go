// Package routeapi is the JSON shape of the route's public calls that the
// route and the client SDK both speak: POST /login's request and answer,
// with the gateway the user is sent to, and the user entries of
// /registerAccount and /onlineUser. The route encodes what the SDK decodes,
// from these same types. Every answer is wrapped in the route's envelope
// {"code","message","data"}; these are the "data".
//
// Decoding is lenient where CIM peers differ: an id may come as a JSON
// string or a whole number, a number as a JSON number or a string holding
// one. Encoding always writes ids as strings and numbers as numbers.
//
// The types are plain values, safe to share between goroutines.
package routeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// PathLogin is the route's login call.
const PathLogin = "/login"

// LoginRequest is the body of POST /login: the account, by id or by name,
// and its password.
type LoginRequest struct {
	UserID   ID     `json:"userId,omitempty"`
	UserName string `json:"userName,omitempty"`
	Password string `json:"password"`
	// Platform names the kind of client logging in: terminal, web, mobile,
	// desktop, device, or another short lowercase word; empty: none.
	// Presence and webhooks report it.
	Platform string `json:"platform,omitempty"`
	// ResumeToken, instead of the password, logs in again with the
	// resumeToken of the last login (one use each; the user and platform
	// are the token's). Refused (4010) once a newer login on that
	// platform, a log-off, a password reset, a kick or a ban has passed.
	ResumeToken string `json:"resumeToken,omitempty"`
}

// Login is the answer to a successful POST /login.
type Login struct {
	UserID    ID `json:"userId"`
	UserName  ID `json:"userName"`
	SessionID ID `json:"sessionId"`
	// Token is the gateway token, sent in the LOGIN frame; ExpiresAt its
	// expiry.
	Token     string   `json:"token"`
	ExpiresAt UnixTime `json:"expiresAt"`
	// AccessToken is the bearer for the route's API on behalf of this
	// session; AccessExpiresAt its expiry.
	AccessToken     string   `json:"accessToken"`
	AccessExpiresAt UnixTime `json:"accessExpiresAt"`
	// ResumeToken logs in again without the password, once (see
	// LoginRequest); ResumeExpiresAt its expiry. Absent when the route
	// hands none out (--resume-ttl 0).
	ResumeToken     string   `json:"resumeToken,omitempty"`
	ResumeExpiresAt UnixTime `json:"resumeExpiresAt,omitempty"`
	Server          Server   `json:"server"`
}

// Server is the gateway a login sends the user to.
type Server struct {
	ID       string `json:"id"` // the gateway id, "<host>:<tcpPort>:<httpPort>"
	Host     string `json:"host"`
	TCPPort  Int    `json:"tcpPort"` // clients connect to host:tcpPort
	HTTPPort Int    `json:"httpPort"`
	// WSURL is where browsers connect (ws:// or wss://, package wsconn of
	// cim-server); absent when the gateway has no WebSocket listener.
	WSURL string `json:"wsUrl,omitempty"`
}

// User is an account as the route lists it.
type User struct {
	UserID   ID `json:"userId"`
	UserName ID `json:"userName"`
}

// ID is a user id, a session id or a user name: a JSON string. A JSON whole
// number (CIM callers send ids as numbers) reads as its digits; null leaves
// it unchanged; anything else is an error.
type ID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *ID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) == 0 {
		return fmt.Errorf("empty id")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return fmt.Errorf("user id %s is neither a string nor a whole number", b)
		}
	}
	*id = ID(b)
	return nil
}

// Int is a whole number: a JSON number, or a string holding one; null
// leaves it unchanged.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", b)
	}
	*n = Int(v)
	return nil
}

// UnixTime is a time in unix seconds, read like an Int; anything else
// (missing, null, not a number) reads as 0, unknown, and is no error.
type UnixTime int64

// UnmarshalJSON implements json.Unmarshaler.
func (t *UnixTime) UnmarshalJSON(b []byte) error {
	var n Int
	if n.UnmarshalJSON(b) != nil {
		n = 0
	}
	*t = UnixTime(n)
	return nil
}
