package gateway

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		id        string
		host      string
		tcp, http int
		base      string
	}{
		{"127.0.0.1:9000:9100", "127.0.0.1", 9000, 9100, "http://127.0.0.1:9100"},
		{"gw-1.local:1:65535", "gw-1.local", 1, 65535, "http://gw-1.local:65535"},
		{"[::1]:9000:9100", "::1", 9000, 9100, "http://[::1]:9100"},
		{"fe80::1:9000:9100", "fe80::1", 9000, 9100, "http://[fe80::1]:9100"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.id)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.id, err)
		}
		if a.ID != tt.id || a.Host != tt.host || a.TCPPort != tt.tcp || a.HTTPPort != tt.http || a.HTTPBase() != tt.base {
			t.Errorf("Parse(%q) = %+v base %q, want host %q ports %d/%d base %q", tt.id, a, a.HTTPBase(), tt.host, tt.tcp, tt.http, tt.base)
		}
	}
	for _, bad := range []string{"", "host", "host:1", ":1:2", "h:x:2", "h:1:0", "h:1:70000", "h::2", "[]:1:2"} {
		if _, err := Parse(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("Parse(%q) err = %v, want ErrBadID", bad, err)
		}
	}
}
