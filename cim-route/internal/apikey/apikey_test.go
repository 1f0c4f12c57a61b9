package apikey

import (
	"strings"
	"testing"
)

func TestParseAndMatch(t *testing.T) {
	r, err := Parse("crm:crm-secret-0123456789:push, ops:ops:secret:0123456789:admin+push", 16)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := r.Match("crm-secret-0123456789"); !ok || k.Name != "crm" || !k.Has(Push) || k.Has(Admin) {
		t.Fatalf("crm: %+v %v", k, ok)
	}
	// The secret is everything between the first and the last colon.
	if k, ok := r.Match("ops:secret:0123456789"); !ok || k.Name != "ops" || !k.Has(Push|Admin) || k.Scopes.String() != "push+admin" {
		t.Fatalf("ops: %+v %v", k, ok)
	}
	for _, bad := range []string{"", "crm", "crm-secret-012345678", "crm-secret-0123456789 "} {
		if k, ok := r.Match(bad); ok {
			t.Fatalf("Match(%q) = %+v", bad, k)
		}
	}
	if len(r.Keys()) != 2 {
		t.Fatalf("keys %+v", r.Keys())
	}
	if empty, err := Parse("", 16); err != nil || len(empty.Keys()) != 0 {
		t.Fatalf("empty spec: %v", err)
	}
	var nilRing *Ring
	if _, ok := nilRing.Match("crm-secret-0123456789"); ok {
		t.Fatal("a nil ring matched")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"crm", "want name:secret:scope"},
		{":crm-secret-0123456789:push", "want name:secret:scope"},
		{"crm:short:push", "shorter than 16"},
		{"crm:crm-secret-0123456789:write", `unknown scope "write"`},
		{"crm:crm-secret-0123456789:", `unknown scope ""`},
		{"a:crm-secret-0123456789:push,b:crm-secret-0123456789:admin", "same secret"},
		{"a:crm-secret-0123456789:push,a:other-secret-012345678:admin", "name used twice"},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.spec, 16); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %q", tt.spec, err, tt.want)
		}
	}
}
