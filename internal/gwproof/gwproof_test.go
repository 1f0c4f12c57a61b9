package gwproof

import (
	"errors"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	const id = "127.0.0.1:9000:9100"
	c := NewChallenge()
	if err := CheckChallenge(c); err != nil {
		t.Fatalf("NewChallenge made a bad challenge %q: %v", c, err)
	}
	if NewChallenge() == c {
		t.Fatal("two challenges are equal")
	}
	p := Sign("current-secret-0123", c, id)
	cases := []struct {
		name      string
		secrets   []string
		challenge string
		id        string
		proof     string
		want      bool
	}{
		{"right", []string{"current-secret-0123"}, c, id, p, true},
		{"rotation: any configured secret", []string{"new-secret-456789", "current-secret-0123"}, c, id, p, true},
		{"wrong secret", []string{"other-secret-0123"}, c, id, p, false},
		{"no secrets", nil, c, id, p, false},
		{"empty secret never matches", []string{""}, c, id, Sign("", c, id), false},
		{"another challenge (replay)", []string{"current-secret-0123"}, NewChallenge(), id, p, false},
		{"another gateway id (relay)", []string{"current-secret-0123"}, c, "127.0.0.1:9001:9101", p, false},
		{"not hex", []string{"current-secret-0123"}, c, id, "zz" + p[2:], false},
		{"truncated", []string{"current-secret-0123"}, c, id, p[:62], false},
		{"empty", []string{"current-secret-0123"}, c, id, "", false},
	}
	for _, tc := range cases {
		if got := Verify(tc.secrets, tc.challenge, tc.id, tc.proof); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The id is not just appended to the challenge: moving bytes between
	// them changes the proof.
	if Sign("current-secret-0123", c+"1", "27.0.0.1:9000:9100") == p {
		t.Fatal("challenge/id boundary is ambiguous")
	}
}

func TestCheckChallenge(t *testing.T) {
	for c, ok := range map[string]bool{
		strings.Repeat("a", MinLen):    true,
		strings.Repeat("0f", MaxLen/2): true,
		strings.Repeat("a", MinLen-1):  false,
		strings.Repeat("a", MaxLen+2):  false,
		strings.Repeat("g", MinLen):    false,
		strings.Repeat("a", MinLen+1):  false, // odd length is not hex bytes
		"":                             false,
	} {
		err := CheckChallenge(c)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrBadChallenge)) {
			t.Errorf("CheckChallenge(%q) = %v, want ok=%v", c, err, ok)
		}
	}
}
