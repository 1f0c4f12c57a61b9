package token

import (
	"errors"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	oldKey := []byte("old-secret-0123456789")
	newKey := []byte("new-secret-0123456789")
	claims := Claims{UserID: "1", SessionID: "s1", GatewayID: "gw1", ExpiresAt: now.Add(time.Minute).Unix(), Audience: AudienceGateway}
	signed := func(key []byte, c Claims) string {
		tok, err := Sign(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := signed(newKey, claims)
	expired := claims
	expired.ExpiresAt = now.Unix()
	access := claims
	access.GatewayID, access.Audience = "", AudienceAPI
	tests := []struct {
		name    string
		keys    [][]byte
		tok     string
		gateway string
		want    error
	}{
		{"valid", [][]byte{newKey}, good, "gw1", nil},
		{"any gateway", [][]byte{newKey}, good, "", nil},
		{"previous key during rotation", [][]byte{newKey, oldKey}, signed(oldKey, claims), "gw1", nil},
		{"unknown key", [][]byte{newKey}, signed(oldKey, claims), "gw1", ErrSignature},
		{"other gateway", [][]byte{newKey}, good, "gw2", ErrWrongGateway},
		{"expired", [][]byte{newKey}, signed(newKey, expired), "gw1", ErrExpired},
		{"tampered payload", [][]byte{newKey}, "x" + good, "gw1", ErrSignature},
		{"no dot", [][]byte{newKey}, "abc", "gw1", ErrMalformed},
		{"empty", [][]byte{newKey}, "", "gw1", ErrMalformed},
		{"access token offered to a gateway", [][]byte{newKey}, signed(newKey, access), "gw1", ErrAudience},
		{"access token, any gateway", [][]byte{newKey}, signed(newKey, access), "", ErrAudience},
		{"bad base64 sig", [][]byte{newKey}, "abc.$$$", "gw1", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.keys, tt.tok, tt.gateway, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err == nil && c != claims {
				t.Fatalf("claims %+v, want %+v", c, claims)
			}
		})
	}
}

func TestSignRefusesShortKey(t *testing.T) {
	if _, err := Sign([]byte("short"), Claims{UserID: "1", SessionID: "s"}); !errors.Is(err, ErrShortKey) {
		t.Fatalf("got %v, want ErrShortKey", err)
	}
}

func TestVerifyAPI(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := []byte("new-secret-0123456789")
	access := Claims{UserID: "1", SessionID: "s1", ExpiresAt: now.Add(time.Hour).Unix(), Audience: AudienceAPI}
	tok, err := Sign(key, access)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := VerifyAPI([][]byte{key}, tok, now); err != nil || c != access {
		t.Fatalf("VerifyAPI = %+v, %v; want %+v", c, err, access)
	}
	gw, err := Sign(key, Claims{UserID: "1", SessionID: "s1", GatewayID: "gw1", ExpiresAt: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAPI([][]byte{key}, gw, now); !errors.Is(err, ErrAudience) {
		t.Fatalf("gateway token as bearer: got %v, want ErrAudience", err)
	}
	if _, err := VerifyAPI([][]byte{key}, tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired access token: got %v, want ErrExpired", err)
	}
}

func TestVerifyResume(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := []byte("new-secret-0123456789")
	resume := Claims{UserID: "1", SessionID: "s1", Platform: "mobile", Nonce: "abc", ExpiresAt: now.Add(time.Hour).Unix(), Audience: AudienceResume}
	tok, err := Sign(key, resume)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := VerifyResume([][]byte{key}, tok, now); err != nil || c != resume {
		t.Fatalf("VerifyResume = %+v, %v; want %+v", c, err, resume)
	}
	for name, c := range map[string]Claims{
		"an access token": {UserID: "1", SessionID: "s1", ExpiresAt: resume.ExpiresAt, Audience: AudienceAPI},
		"a gateway token": {UserID: "1", SessionID: "s1", GatewayID: "gw1", ExpiresAt: resume.ExpiresAt},
		"no nonce":        {UserID: "1", SessionID: "s1", ExpiresAt: resume.ExpiresAt, Audience: AudienceResume},
	} {
		other, err := Sign(key, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyResume([][]byte{key}, other, now); !errors.Is(err, ErrAudience) {
			t.Errorf("%s as a resume token: got %v, want ErrAudience", name, err)
		}
	}
	if _, err := VerifyAPI([][]byte{key}, tok, now); !errors.Is(err, ErrAudience) {
		t.Fatalf("resume token as bearer: got %v, want ErrAudience", err)
	}
	if _, err := Verify([][]byte{key}, tok, "", now); !errors.Is(err, ErrAudience) {
		t.Fatalf("resume token at a gateway: got %v, want ErrAudience", err)
	}
	if _, err := VerifyResume([][]byte{key}, tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired resume token: got %v, want ErrExpired", err)
	}
	if _, err := VerifyResume([][]byte{[]byte("other-secret-0123456789")}, tok, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("resume token under another key: got %v, want ErrSignature", err)
	}
}
