package internalauth

import (
	"errors"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	s, err := New([]string{"current-secret-0123", "previous-secret-0123"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Current() != "current-secret-0123" {
		t.Fatalf("Current = %q, want the first secret", s.Current())
	}
	cases := map[string]bool{
		"current-secret-0123":  true,
		"previous-secret-0123": true, // still accepted during a rotation
		"":                     false,
		"current-secret-012":   false, // a prefix
		"current-secret-01234": false,
		"CURRENT-SECRET-0123":  false,
	}
	for got, want := range cases {
		if s.Valid(got) != want {
			t.Errorf("Valid(%q) = %v, want %v", got, !want, want)
		}
	}
	var none *Secrets
	if none.Valid("current-secret-0123") {
		t.Fatal("a nil Secrets accepted a secret")
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ErrMissing) {
		t.Fatalf("New(nil) = %v, want ErrMissing", err)
	}
	_, err := New([]string{"long-enough-secret-1", "short"})
	if err == nil || !strings.Contains(err.Error(), "secret #2 is 5 bytes") {
		t.Fatalf("New with a short secret = %v", err)
	}
}

func TestValidDoesNotAllocate(t *testing.T) {
	s, _ := New([]string{"current-secret-0123"})
	if n := testing.AllocsPerRun(100, func() { s.Valid("current-secret-0123") }); n != 0 {
		t.Fatalf("Valid allocates %v times", n)
	}
}
