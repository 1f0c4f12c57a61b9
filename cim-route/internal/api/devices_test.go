package api

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

// deviceLoginBody is a /internal/device-login body at the env's gateway.
func (e *env) deviceLoginBody(device, secret string, clean bool) string {
	b, _ := json.Marshal(contract.DeviceLogin{Device: device, Secret: secret, GatewayID: e.gw.ID, Clean: clean})
	return string(b)
}

// TestDevicesAdmin: the /devices endpoints need an API key with the admin
// scope; they create devices with a credential shown once, list them in
// pages, show one with its presence, revoke it (shown revoked, its session
// kicked) and give it a new credential.
func TestDevicesAdmin(t *testing.T) {
	e := newEnv(t, func(_ *Config, r *router.Config) { r.MaxDevices = 3 })
	e.register("alice")
	alice := e.online("alice")

	// Who may not.
	for _, c := range []struct {
		h      hdr
		status int
		code   codes.Code
	}{{nil, 401, codes.Unauthorized}, {alice.bearer(), 403, codes.Forbidden}, {asPush, 403, codes.Forbidden}, {hdr{APIKeyHeader: "unknown-key-0123456789"}, 401, codes.Unauthorized}} {
		e.expect("POST", "/devices", `{"name":"sensor-1"}`, c.h, c.status, c.code, nil)
		e.expect("GET", "/devices", "", c.h, c.status, c.code, nil)
		e.expect("GET", "/devices/1", "", c.h, c.status, c.code, nil)
		e.expect("DELETE", "/devices/1", "", c.h, c.status, c.code, nil)
		e.expect("POST", "/devices/1/secret", "", c.h, c.status, c.code, nil)
	}

	var d1, d2 deviceSecretJSON
	e.expect("POST", "/devices", `{"name":"sensor-1"}`, asAdmin, 200, codes.OK, &d1)
	if d1.DeviceID == "" || d1.Name != "sensor-1" || d1.Created == 0 {
		t.Fatalf("created %+v", d1)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(d1.Secret); err != nil || len(raw) != 32 {
		t.Fatalf("credential %q: %d bytes, %v; want 32 bytes in base64url", d1.Secret, len(raw), err)
	}
	e.expect("POST", "/devices", `{"name":"SENSOR-1"}`, asAdmin, 409, codes.BadAccount, nil)
	e.expect("POST", "/devices", `{"name":"alice"}`, asAdmin, 409, codes.BadAccount, nil)
	e.expect("POST", "/devices", `{"name":"1x"}`, asAdmin, 400, codes.BadArgument, nil)
	e.expect("POST", "/devices", `{"name":`, asAdmin, 400, codes.BadArgument, nil)
	e.expect("POST", "/devices", `{"name":"sensor-2"}`, asAdmin, 200, codes.OK, &d2)
	e.expect("POST", "/devices", `{"name":"sensor-3"}`, asAdmin, 200, codes.OK, nil)
	if a := e.expect("POST", "/devices", `{"name":"sensor-4"}`, asAdmin, 429, codes.QuotaExceeded, nil); a.Message == "" {
		t.Fatal("no message over --max-devices")
	}
	// A device never logs in at /login.
	e.expect("POST", "/login", `{"userName":"sensor-1","password":"`+d1.Secret+`"}`, nil, 401, codes.BadAccount, nil)

	var page devicePageJSON
	e.expect("GET", "/devices?limit=2", "", asAdmin, 200, codes.OK, &page)
	if len(page.Devices) != 2 || page.Devices[0].DeviceID != d1.DeviceID || page.Devices[1].DeviceID != d2.DeviceID || page.Next != d2.DeviceID {
		t.Fatalf("first page %+v", page)
	}
	e.expect("GET", "/devices?limit=2&after="+page.Next, "", asAdmin, 200, codes.OK, &page)
	if len(page.Devices) != 1 || page.Devices[0].Name != "sensor-3" || page.Next != "" {
		t.Fatalf("second page %+v", page)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=x"} {
		e.expect("GET", "/devices?"+q, "", asAdmin, 400, codes.BadArgument, nil)
	}

	// Logged in by its gateway, then shown online there.
	var tok contract.DeviceToken
	e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d1.Secret, false), asGateway, 200, codes.OK, &tok)
	e.expectInternal(contract.PathOnline, `{"userId":"`+tok.UserID+`","sessionId":"`+tok.SessionID+`","gatewayId":"`+e.gw.ID+`","platform":"device"}`, 200, codes.OK)
	e.gw.Connect(tok.UserID, tok.SessionID)
	var dev deviceJSON
	e.expect("GET", "/devices/sensor-1", "", asAdmin, 200, codes.OK, &dev)
	if dev.DeviceID != d1.DeviceID || !dev.Online || dev.Gateway != e.gw.ID || dev.Platform != "device" || dev.LastSeen == 0 || dev.Revoked != 0 || dev.Created != d1.Created {
		t.Fatalf("device %+v", dev)
	}
	e.expect("GET", "/devices/alice", "", asAdmin, 404, codes.BadArgument, nil)
	e.expect("GET", "/devices/999", "", asAdmin, 404, codes.BadArgument, nil)

	// A new credential: the old one is refused at once.
	var rot deviceSecretJSON
	e.expect("POST", "/devices/"+d1.DeviceID+"/secret", "", asAdmin, 200, codes.OK, &rot)
	if rot.DeviceID != d1.DeviceID || rot.Secret == d1.Secret || rot.Name != "sensor-1" {
		t.Fatalf("new credential %+v", rot)
	}
	e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d1.Secret, false), asGateway, 401, codes.BadAccount, nil)

	// Revoked: kicked, refused, shown revoked.
	e.expect("DELETE", "/devices/sensor-1", "", asAdmin, 200, codes.OK, nil)
	if f := e.gw.Frames(tok.UserID); len(f) != 1 || f[0].Type != cimpb.Type_KICK {
		t.Fatalf("revoked device's connection got %v, want a KICK", f)
	}
	e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody(d1.DeviceID, rot.Secret, false), asGateway, 401, codes.BadAccount, nil)
	var revoked deviceJSON
	e.expect("GET", "/devices/sensor-1", "", asAdmin, 200, codes.OK, &revoked)
	if revoked.Revoked == 0 || revoked.Online || revoked.Gateway != "" || revoked.Platform != "" || revoked.LastSeen < dev.LastSeen {
		t.Fatalf("revoked device %+v", revoked)
	}
	e.expect("DELETE", "/devices/nobody", "", asAdmin, 404, codes.BadArgument, nil)
	e.expect("POST", "/devices/nobody/secret", "", asAdmin, 404, codes.BadArgument, nil)
}

// TestDeviceLoginEndpoint: /internal/device-login is the internal
// listener's, behind the internal secret; it answers a token for the
// calling gateway with platform device, refuses unknown devices and wrong
// credentials with 401/9100, is not limited per address as /login is, and
// answers 503/5032 at once beyond the route-wide device login rate.
func TestDeviceLoginEndpoint(t *testing.T) {
	e := newEnv(t, func(c *Config, r *router.Config) {
		c.LoginRate, c.LoginBurst = 0.001, 1 // /login: one attempt per address
		r.DeviceLoginRate, r.DeviceLoginBurst = 0.001, 7
	})
	var d deviceSecretJSON
	e.expect("POST", "/devices", `{"name":"sensor-1"}`, asAdmin, 200, codes.OK, &d)

	// Not on the public listener; not without the internal secret.
	e.check("POST", e.url, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d.Secret, false), asGateway, 404, codes.BadArgument, nil)
	e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d.Secret, false), nil, 401, codes.Unauthorized, nil)

	var tok contract.DeviceToken
	e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d.Secret, true), asGateway, 200, codes.OK, &tok)
	c, err := token.Verify(tokenKeys, tok.Token, e.gw.ID, time.Now())
	if err != nil || c.UserID != d.DeviceID || c.UserName != "sensor-1" || c.SessionID != tok.SessionID || c.Platform != contract.PlatformDevice ||
		tok.UserID != d.DeviceID || tok.UserName != "sensor-1" || tok.SessionPresent {
		t.Fatalf("token %+v, claims %+v, %v", tok, c, err)
	}
	// Persistent session: present the second time.
	e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody(d.DeviceID, d.Secret, false), asGateway, 200, codes.OK, &tok)
	if !tok.SessionPresent {
		t.Fatalf("second login %+v, want a session present", tok)
	}
	for _, body := range []string{
		e.deviceLoginBody("sensor-1", "wrong", false),
		e.deviceLoginBody("nobody", d.Secret, false),
		e.deviceLoginBody("999", d.Secret, false),
		`{"device":"sensor-1","gatewayId":"` + e.gw.ID + `"}`,
	} {
		e.check("POST", e.internal, contract.PathDeviceLogin, body, asGateway, 401, codes.BadAccount, nil)
	}
	e.check("POST", e.internal, contract.PathDeviceLogin, `{"device":"sensor-1","secret":"x"}`, asGateway, 400, codes.BadArgument, nil)
	e.check("POST", e.internal, contract.PathDeviceLogin, `{"device":`, asGateway, 400, codes.BadArgument, nil)

	// /login allows this address one attempt; the device logins, from the
	// same address, go on until the route-wide bucket (7: 5 taken by the
	// checks of credentials above) is empty.
	e.expect("POST", "/login", `{"userName":"x1","password":"password1"}`, nil, 401, codes.BadAccount, nil)
	e.expect("POST", "/login", `{"userName":"x2","password":"password1"}`, nil, 429, codes.RateLimited, nil)
	for range 2 {
		e.check("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d.Secret, false), asGateway, 200, codes.OK, nil)
	}
	st, a, _ := e.call("POST", e.internal, contract.PathDeviceLogin, e.deviceLoginBody("sensor-1", d.Secret, false), asGateway)
	if st != 503 || a.Code != codes.Busy || a.Message == "" {
		t.Fatalf("login beyond --device-login-burst: HTTP %d %+v, want 503/5032", st, a)
	}
}

// TestHistoryBinary: history shows a KIND_BINARY message's bytes in base64,
// with kind 2.
func TestHistoryBinary(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")
	body := []byte{0, 0xff, 0xfe, 'a', 0xc3}
	st, out := e.uplink(&cimpb.UplinkBatch{GatewayId: e.gw.ID, Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, SessionId: alice.SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "b1", To: "bob", Kind: cimpb.Kind_KIND_BINARY, Body: body}}}}}, asGateway)
	if st != 200 || len(out.Deliveries) != 1 || out.Deliveries[0].Frame.Type != cimpb.Type_RECEIPT {
		t.Fatalf("uplink: HTTP %d %v", st, out)
	}
	var page historyJSON
	e.expect("GET", "/history?peer=alice", "", bob.bearer(), 200, codes.OK, &page)
	if len(page.Messages) != 1 {
		t.Fatalf("history %+v", page)
	}
	m := page.Messages[0]
	if m.Kind != int32(cimpb.Kind_KIND_BINARY) || m.Body != base64.StdEncoding.EncodeToString(body) || m.File != nil {
		t.Fatalf("history message %+v, want kind 2 and body %s", m, base64.StdEncoding.EncodeToString(body))
	}
}
