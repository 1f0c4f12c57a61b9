package contract

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestGatewayIDRoundTrip(t *testing.T) {
	tests := []struct {
		host       string
		tcp, http  int
		wantHost   string
		base, dial string
	}{
		{"127.0.0.1", 9000, 9100, "127.0.0.1", "http://127.0.0.1:9100", "127.0.0.1:9000"},
		{"gw-1.local", 1, 65535, "gw-1.local", "http://gw-1.local:65535", "gw-1.local:1"},
		{"[::1]", 9000, 9100, "::1", "http://[::1]:9100", "[::1]:9000"},
		{"fe80::1", 9000, 9100, "fe80::1", "http://[fe80::1]:9100", "[fe80::1]:9000"},
	}
	for _, tt := range tests {
		id := FormatGatewayID(tt.host, tt.tcp, tt.http)
		a, err := ParseGatewayID(id)
		if err != nil {
			t.Fatalf("ParseGatewayID(%q): %v", id, err)
		}
		if a.ID != id || a.Host != tt.wantHost || a.TCPPort != tt.tcp || a.HTTPPort != tt.http {
			t.Errorf("ParseGatewayID(%q) = %+v, want host %q ports %d/%d", id, a, tt.wantHost, tt.tcp, tt.http)
		}
		if a.HTTPBase() != tt.base || a.TCPAddr() != tt.dial {
			t.Errorf("%q: HTTPBase %q TCPAddr %q, want %q %q", id, a.HTTPBase(), a.TCPAddr(), tt.base, tt.dial)
		}
	}
}

func TestParseGatewayIDRejects(t *testing.T) {
	for _, bad := range []string{"", "host", "host:1", ":1:2", "h:x:2", "h:1:0", "h:0:1", "h:1:70000", "h::2",
		"[]:1:2", "h:1:-2", "h:1:2 "} {
		if a, err := ParseGatewayID(bad); !errors.Is(err, ErrBadGatewayID) {
			t.Errorf("ParseGatewayID(%q) = %+v, %v; want ErrBadGatewayID", bad, a, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecrets([]string{"", "current-secret-0123", "", "older-secret-012345"})
	if s.Current() != "current-secret-0123" || s.Len() != 2 {
		t.Fatalf("Current %q Len %d: want the first non-empty secret and 2", s.Current(), s.Len())
	}
	tests := []struct {
		in   string
		want int
	}{
		{"current-secret-0123", 0},
		{"older-secret-012345", 1}, // still accepted during a rotation
		{"current-secret-012", -1}, // a prefix
		{"current-secret-01234", -1},
		{"CURRENT-SECRET-0123", -1},
		{"", -1},
	}
	for _, tt := range tests {
		if got := s.Match(tt.in); got != tt.want {
			t.Errorf("Match(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if got := s.Valid(tt.in); got != (tt.want >= 0) {
			t.Errorf("Valid(%q) = %v", tt.in, got)
		}
	}
	var none *Secrets
	if none.Valid("current-secret-0123") || none.Current() != "" || none.Len() != 0 {
		t.Fatal("a nil Secrets accepted a secret or has one")
	}
	if NewSecrets(nil).Valid("") || NewSecrets([]string{""}).Valid("") {
		t.Fatal("an empty secret was accepted")
	}
}

func TestCheckSecrets(t *testing.T) {
	if _, err := ParseSecrets(nil); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("ParseSecrets(nil) = %v, want ErrNoSecret", err)
	}
	_, err := ParseSecrets([]string{"long-enough-secret-1", "short", ""})
	if err == nil || !strings.Contains(err.Error(), "secret #2 is 5 bytes") || !strings.Contains(err.Error(), "secret #3 is 0 bytes") {
		t.Fatalf("ParseSecrets with short secrets = %v", err)
	}
	s, err := ParseSecrets([]string{"long-enough-secret-1", "long-enough-secret-2"})
	if err != nil || s.Current() != "long-enough-secret-1" || !s.Valid("long-enough-secret-2") {
		t.Fatalf("ParseSecrets = %v, %v", s, err)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	s := NewSecrets([]string{"current-secret-0123", "older-secret-012345"})
	if n := testing.AllocsPerRun(100, func() { s.Match("older-secret-012345") }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func TestSessionAnswer(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"ok", 200, `{"code":9000,"message":"ok","data":null}`, nil},
		{"ok without envelope", 200, `fine`, nil},
		{"not current (409)", StatusNotCurrent, `{"code":4010,"message":"stale session"}`, ErrNotCurrent},
		{"not current (code)", 200, `{"code":4010,"message":"stale"}`, ErrNotCurrent},
		{"secret refused", http.StatusUnauthorized, `{"code":4010}`, ErrSecretRefused},
		{"bad request", 400, `{"code":4000,"message":"bad"}`, ErrRejected},
		{"other code", 200, `{"code":4000,"message":"bad"}`, ErrRejected},
	}
	for _, tt := range tests {
		err := SessionAnswer(PathOnline, tt.status, []byte(tt.body))
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := SessionAnswer(PathOnline, 401, nil); !errors.Is(err, ErrRejected) {
		t.Errorf("a refused secret is not ErrRejected: %v", err)
	}
}

func TestSessionJSON(t *testing.T) {
	b, err := json.Marshal(Session{UserID: "1", SessionID: "s", GatewayID: "h:1:2"})
	if err != nil || string(b) != `{"userId":"1","sessionId":"s","gatewayId":"h:1:2"}` {
		t.Fatalf("Session JSON %s %v", b, err)
	}
	b, _ = json.Marshal(Session{UserID: "1", SessionID: "s", GatewayID: "h:1:2", Reassert: true})
	if !strings.HasSuffix(string(b), `,"reassert":true}`) {
		t.Fatalf("Session JSON with reassert %s", b)
	}
}

// TestWireNames pins what goes on the wire: a change here breaks gateways
// and routes of the previous release, which a rolling upgrade runs side by
// side.
func TestWireNames(t *testing.T) {
	for got, want := range map[string]string{
		PathOnline: "/internal/online", PathOffline: "/internal/offline", PathUplink: "/internal/uplink",
		PathPush: "/push", PathHealth: "/healthz", Header: "X-CIM-Internal",
		ProtobufType: "application/x-protobuf", JSONType: "application/json",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	if StatusNotCurrent != http.StatusConflict {
		t.Errorf("StatusNotCurrent = %d", StatusNotCurrent)
	}
}

func TestGatewayInfo(t *testing.T) {
	info := GatewayInfo{WSURL: "wss://gw.example.com:9443/ws"}
	got, err := ParseGatewayInfo(info.Marshal())
	if err != nil || got != info {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if b := (GatewayInfo{}).Marshal(); b != nil {
		t.Fatalf("empty info marshals to %q, want nothing", b)
	}
	if got, err := ParseGatewayInfo(nil); err != nil || got != (GatewayInfo{}) {
		t.Fatalf("empty node: %+v, %v", got, err)
	}
	for _, bad := range []string{`{`, `{"wsUrl":"http://x/ws"}`, `{"wsUrl":"ws:///ws"}`, `{"wsUrl":"javascript:alert(1)"}`,
		`{"wsUrl":"` + strings.Repeat("a", MaxGatewayInfo) + `"}`} {
		if _, err := ParseGatewayInfo([]byte(bad)); !errors.Is(err, ErrBadGatewayInfo) {
			t.Errorf("%.40q: err %v, want ErrBadGatewayInfo", bad, err)
		}
	}
}

func TestSlots(t *testing.T) {
	for _, tc := range []struct{ platform, slot string }{
		{"mobile", "mobile"}, {"web", "web"}, {"terminal", "terminal"}, {"watch", "other"}, {"", "other"},
	} {
		if got := SlotFor(tc.platform); got != tc.slot {
			t.Errorf("SlotFor(%q) = %q, want %q", tc.platform, got, tc.slot)
		}
	}
	for _, tc := range []struct{ sid, slot string }{
		{"mobile.3fa9", "mobile"}, {"other.1", "other"}, {"3fa9", ""}, {".x", ""}, {"phone.x", ""}, {"", ""},
	} {
		if got := SlotOf(tc.sid); got != tc.slot {
			t.Errorf("SlotOf(%q) = %q, want %q", tc.sid, got, tc.slot)
		}
	}
	if k := DeviceKey("7", "mobile.3f"); k != "7/mobile" {
		t.Errorf("DeviceKey of a mobile session = %q", k)
	}
	if k := DeviceKey("7", "3f"); k != "7" {
		t.Errorf("DeviceKey of an unslotted session = %q", k)
	}
}
