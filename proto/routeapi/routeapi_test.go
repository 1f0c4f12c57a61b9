package routeapi

import (
	"encoding/json"
	"testing"
)

// TestLoginWire pins the /login answer as docs/ARCHITECTURE.md documents it.
func TestLoginWire(t *testing.T) {
	in := Login{UserID: "7", UserName: "bob", SessionID: "s7", Token: "t", ExpiresAt: 1700000000,
		AccessToken: "a", AccessExpiresAt: 1700086400,
		Server: Server{ID: "10.0.0.1:9000:9100", Host: "10.0.0.1", TCPPort: 9000, HTTPPort: 9100}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"userId":"7","userName":"bob","sessionId":"s7","token":"t","expiresAt":1700000000,` +
		`"accessToken":"a","accessExpiresAt":1700086400,` +
		`"server":{"id":"10.0.0.1:9000:9100","host":"10.0.0.1","tcpPort":9000,"httpPort":9100}}`
	if string(b) != want {
		t.Fatalf("login answer\n got %s\nwant %s", b, want)
	}
	var out Login
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
}

func TestLoginRequestWire(t *testing.T) {
	for _, tt := range []struct {
		in   LoginRequest
		want string
	}{
		{LoginRequest{UserName: "bob", Password: "pw"}, `{"userName":"bob","password":"pw"}`},
		{LoginRequest{UserID: "7", Password: "pw"}, `{"userId":"7","password":"pw"}`},
		{LoginRequest{UserName: "bob"}, `{"userName":"bob","password":""}`},
	} {
		if b, err := json.Marshal(tt.in); err != nil || string(b) != tt.want {
			t.Errorf("%+v: %s %v, want %s", tt.in, b, err, tt.want)
		}
	}
}

func TestLenientDecoding(t *testing.T) {
	var l Login
	err := json.Unmarshal([]byte(`{"userId":7,"userName":"bob","sessionId":null,"token":"t","expiresAt":"1700000000",`+
		`"accessExpiresAt":"soon","server":{"host":"h","tcpPort":"9000","httpPort":9100}}`), &l)
	if err != nil {
		t.Fatal(err)
	}
	if l.UserID != "7" || l.SessionID != "" || l.ExpiresAt != 1700000000 || l.AccessExpiresAt != 0 ||
		l.Server.TCPPort != 9000 || l.Server.HTTPPort != 9100 {
		t.Fatalf("decoded %+v", l)
	}
	var r LoginRequest
	if err := json.Unmarshal([]byte(`{"userId":12,"password":"p"}`), &r); err != nil || r.UserID != "12" {
		t.Fatalf("numeric user id: %+v %v", r, err)
	}
}

func TestStrictDecoding(t *testing.T) {
	for _, body := range []string{`{"userId":-3}`, `{"userId":1.5}`, `{"userId":1e9}`, `{"userId":true}`, `{"userId":{}}`} {
		var r LoginRequest
		if err := json.Unmarshal([]byte(body), &r); err == nil {
			t.Errorf("%s: decoded as %+v, want an error", body, r)
		}
	}
	for _, body := range []string{`{"host":"h","tcpPort":"x"}`, `{"tcpPort":9000.5}`, `{"tcpPort":true}`} {
		var s Server
		if err := json.Unmarshal([]byte(body), &s); err == nil {
			t.Errorf("%s: decoded as %+v, want an error", body, s)
		}
	}
}
