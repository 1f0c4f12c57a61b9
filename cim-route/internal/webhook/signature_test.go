package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignatureVerifies(t *testing.T) {
	secret := []byte("webhook-secret-0123456789")
	body := []byte(`{"id":"ev_1","type":"user.online","timeMs":1,"data":{"userId":"7"}}`)
	at := time.Unix(1700000000, 0)
	h := Sign(secret, body, at)
	if !strings.HasPrefix(h, "t=1700000000,v1=") || len(h) != len("t=1700000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := Verify(secret, h, body, at.Add(3*time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	sig := strings.TrimPrefix(h, "t=1700000000,")
	tests := []struct {
		name   string
		secret string
		header string
		body   string
		now    time.Time
		want   error
	}{
		{"other body", string(secret), h, strings.Replace(string(body), `"7"`, `"8"`, 1), at, ErrSignatureMismatch},
		{"other secret", "another-secret-0123456789", h, string(body), at, ErrSignatureMismatch},
		{"other time", string(secret), "t=1700000001," + sig, string(body), at, ErrSignatureMismatch},
		{"too old", string(secret), h, string(body), at.Add(6 * time.Minute), ErrSignatureTime},
		{"from the future", string(secret), h, string(body), at.Add(-6 * time.Minute), ErrSignatureTime},
		{"empty", string(secret), "", string(body), at, ErrMalformedSignature},
		{"no v1", string(secret), "t=1700000000", string(body), at, ErrMalformedSignature},
		{"no t", string(secret), sig, string(body), at, ErrMalformedSignature},
		{"two t", string(secret), "t=1,t=1700000000," + sig, string(body), at, ErrMalformedSignature},
		{"bad hex", string(secret), "t=1700000000,v1=zz", string(body), at, ErrMalformedSignature},
		{"bad t", string(secret), "t=soon," + sig, string(body), at, ErrMalformedSignature},
		{"one of two v1", string(secret), "t=1700000000,v1=00ff," + sig, string(body), at, nil},
		{"unknown scheme ignored", string(secret), h + ",v9=abc", string(body), at, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify([]byte(tt.secret), tt.header, []byte(tt.body), tt.now, 5*time.Minute)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRetryDelayDoublesWithJitter(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	for _, tt := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{9, 128 * time.Second, 256 * time.Second},
		{10, 150 * time.Second, 5 * time.Minute},
		{1000, 150 * time.Second, 5 * time.Minute},
	} {
		lo := retryDelay(time.Second, 5*time.Minute, tt.n, lowest)
		hi := retryDelay(time.Second, 5*time.Minute, tt.n, highest)
		if lo != tt.min || hi != tt.max {
			t.Errorf("after %d failures: waits %v..%v, want %v..%v", tt.n, lo, hi, tt.min, tt.max)
		}
	}
}

// TestCeilMilli: a retry's due time is never rounded to before its
// backoff ends (claims compare whole milliseconds).
func TestCeilMilli(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_123)
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{base, 1_700_000_000_123},
		{base.Add(time.Nanosecond), 1_700_000_000_124},
		{base.Add(999_999 * time.Nanosecond), 1_700_000_000_124},
		{base.Add(-time.Nanosecond), 1_700_000_000_123},
	} {
		if got := ceilMilli(c.t); got != c.want {
			t.Errorf("ceilMilli(%v) = %d, want %d", c.t.UnixNano(), got, c.want)
		}
	}
}
