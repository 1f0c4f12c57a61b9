package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

// session is the route's /login answer.
type session struct {
	UserID          string `json:"userId"`
	UserName        string `json:"userName"`
	SessionID       string `json:"sessionId"`
	Token           string `json:"token"`
	ExpiresAt       int64  `json:"expiresAt"`
	AccessToken     string `json:"accessToken"`
	AccessExpiresAt int64  `json:"accessExpiresAt"`
	Server          struct {
		ID      string `json:"id"`
		Host    string `json:"host"`
		TCPPort int    `json:"tcpPort"`
	} `json:"server"`
}

func (s session) gatewayAddr() string {
	return net.JoinHostPort(s.Server.Host, strconv.Itoa(s.Server.TCPPort))
}

// login registers name (if needed) and logs it in over HTTP only: the
// session is the user's current one (pending) until a gateway confirms it.
func login(t *testing.T, c *harness.Cluster, name string) session {
	t.Helper()
	c.Register(t, name)
	var env struct {
		harness.Envelope
		Data session `json:"data"`
	}
	status, err := c.API("POST", "/login", nil, map[string]string{"userName": name, "password": harness.Password}, &env)
	if err != nil || status != 200 || env.Data.AccessToken == "" || env.Data.Token == "" {
		t.Fatalf("login %s: HTTP %d %v %+v", name, status, err, env)
	}
	return env.Data
}

// loginFrame sends LOGIN with tok on a new connection to addr.
func loginFrame(t *testing.T, addr, tok string) (net.Conn, *codec.Reader) {
	t.Helper()
	conn := dial(t, addr)
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tok}})
	return conn, codec.NewReader(conn, 0)
}

func expectRefused(t *testing.T, conn net.Conn, r *codec.Reader, want codes.Code) {
	t.Helper()
	if e := expectClosed(t, conn, r); e == nil || codes.Code(e.Code) != want {
		t.Fatalf("got ERROR %v before the close, want code %d", e, want)
	}
}

func sign(t *testing.T, key string, c token.Claims) string {
	t.Helper()
	tok, err := token.Sign([]byte(key), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkAPI calls the route and fails unless the answer has the wanted HTTP
// status and code.
func checkAPI(t *testing.T, c *harness.Cluster, method, path string, h http.Header, body any, status int, code codes.Code) harness.Envelope {
	t.Helper()
	var env harness.Envelope
	got, err := c.API(method, path, h, body, &env)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if got != status || codes.Code(env.Code) != code {
		t.Fatalf("%s %s: got HTTP %d code %d (%s), want %d/%d", method, path, got, env.Code, env.Message, status, code)
	}
	return env
}

// TestGatewayRefusesBadTokens: LOGIN with an expired, forged, revoked or
// wrong-kind token is answered with ERROR and the connection closed; each
// token is otherwise valid, so a gateway without that check would accept it.
func TestGatewayRefusesBadTokens(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	claims := func(s session) token.Claims {
		return token.Claims{UserID: s.UserID, UserName: s.UserName, SessionID: s.SessionID, GatewayID: s.Server.ID, ExpiresAt: time.Now().Add(time.Minute).Unix()}
	}
	t.Run("control: a token signed like the route's is accepted", func(t *testing.T) {
		s := login(t, c, "tess")
		conn, r := loginFrame(t, s.gatewayAddr(), sign(t, harness.Secret, claims(s)))
		if f := readFrame(t, conn, r); f.Type != cimpb.Type_LOGIN_ACK {
			t.Fatalf("got %v, want LOGIN_ACK", f)
		}
	})
	t.Run("expired", func(t *testing.T) {
		s := login(t, c, "tina")
		cl := claims(s)
		cl.ExpiresAt = time.Now().Add(-time.Second).Unix()
		conn, r := loginFrame(t, s.gatewayAddr(), sign(t, harness.Secret, cl))
		expectRefused(t, conn, r, codes.Unauthorized)
	})
	t.Run("forged with another key", func(t *testing.T) {
		s := login(t, c, "toby")
		conn, r := loginFrame(t, s.gatewayAddr(), sign(t, "attacker-key-0123456789", claims(s)))
		expectRefused(t, conn, r, codes.Unauthorized)
	})
	t.Run("claims another user", func(t *testing.T) {
		s := login(t, c, "tara")
		victim := login(t, c, "tomas")
		cl := claims(s)
		cl.UserID, cl.UserName = victim.UserID, victim.UserName
		// Re-encode the payload but keep tara's signature.
		forged := sign(t, "attacker-key-0123456789", cl)
		forged = strings.SplitN(forged, ".", 2)[0] + "." + strings.SplitN(s.Token, ".", 2)[1]
		conn, r := loginFrame(t, s.gatewayAddr(), forged)
		expectRefused(t, conn, r, codes.Unauthorized)
	})
	t.Run("access token offered as LOGIN", func(t *testing.T) {
		s := login(t, c, "tilda")
		conn, r := loginFrame(t, s.gatewayAddr(), s.AccessToken)
		expectRefused(t, conn, r, codes.Unauthorized)
	})
	t.Run("revoked by a later login", func(t *testing.T) {
		first := login(t, c, "trent")
		conn, r := loginFrame(t, first.gatewayAddr(), first.Token)
		if f := readFrame(t, conn, r); f.Type != cimpb.Type_LOGIN_ACK {
			t.Fatalf("got %v, want LOGIN_ACK", f)
		}
		login(t, c, "trent") // kick policy: the first session is revoked
		expectClosed(t, conn, r)
		// The first token has not expired, but its session is gone.
		conn2, r2 := loginFrame(t, first.gatewayAddr(), first.Token)
		expectRefused(t, conn2, r2, codes.Unauthorized)
	})
	t.Run("second LOGIN on one connection", func(t *testing.T) {
		s := login(t, c, "tyra")
		conn, r := loginFrame(t, s.gatewayAddr(), s.Token)
		if f := readFrame(t, conn, r); f.Type != cimpb.Type_LOGIN_ACK {
			t.Fatalf("got %v, want LOGIN_ACK", f)
		}
		other := login(t, c, "tyler")
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 2, Login: &cimpb.Login{Token: other.Token}})
		expectRefused(t, conn, r, codes.BadFrame)
	})
}

// TestTokenKeyRotation: with --token-secret "new,old" the route signs with
// the new key and every part still accepts tokens signed with the old one;
// a key in neither list is refused.
func TestTokenKeyRotation(t *testing.T) {
	const newKey = "e2e-next-secret-0123456789"
	keys := []string{"--token-secret", newKey + "," + harness.Secret}
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: keys, GatewayArgs: keys})
	s := login(t, c, "rita")
	if _, err := token.Verify([][]byte{[]byte(newKey)}, s.Token, "", time.Now()); err != nil {
		t.Fatalf("route did not sign with the new key: %v", err)
	}
	old := func(aud string) string {
		cl := token.Claims{UserID: s.UserID, UserName: s.UserName, SessionID: s.SessionID, ExpiresAt: time.Now().Add(time.Minute).Unix(), Audience: aud}
		if aud == token.AudienceGateway {
			cl.GatewayID = s.Server.ID
		}
		return sign(t, harness.Secret, cl)
	}
	checkAPI(t, c, "GET", "/history", harness.Bearer(old(token.AudienceAPI)), nil, 200, codes.OK)
	conn, r := loginFrame(t, s.gatewayAddr(), old(token.AudienceGateway))
	if f := readFrame(t, conn, r); f.Type != cimpb.Type_LOGIN_ACK {
		t.Fatalf("token signed with the previous key: got %v, want LOGIN_ACK", f)
	}
	retired := sign(t, "retired-secret-0123456789", token.Claims{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Server.ID, ExpiresAt: time.Now().Add(time.Minute).Unix()})
	conn2, r2 := loginFrame(t, s.gatewayAddr(), retired)
	expectRefused(t, conn2, r2, codes.Unauthorized)
}

// TestRouteIdentityComesFromCredentials: nobody can read, send or log off as
// someone else through the route; back-end calls need an API key with the
// right scope.
func TestRouteIdentityComesFromCredentials(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	ben := c.Connect(t, "ben")
	amy := login(t, c, "amy")
	mine := harness.Bearer(amy.AccessToken)

	t.Run("online users", func(t *testing.T) {
		checkAPI(t, c, "GET", "/onlineUser", nil, nil, 401, codes.Unauthorized)
		checkAPI(t, c, "GET", "/onlineUser", harness.Bearer(amy.Token), nil, 401, codes.Unauthorized) // gateway token as bearer
		checkAPI(t, c, "GET", "/onlineUser", harness.Bearer(amy.AccessToken+"x"), nil, 401, codes.Unauthorized)
		checkAPI(t, c, "GET", "/onlineUser", harness.APIKey("not-a-key-0123456789"), nil, 401, codes.Unauthorized)
		checkAPI(t, c, "GET", "/onlineUser", harness.APIKey(harness.PushKey), nil, 403, codes.Forbidden)
		checkAPI(t, c, "GET", "/onlineUser", mine, nil, 200, codes.OK)
		checkAPI(t, c, "GET", "/onlineUser", harness.APIKey(harness.ListKey), nil, 200, codes.OK)
	})
	t.Run("send as someone else", func(t *testing.T) {
		asBen := map[string]string{"userId": ben.ID, "receiveUserId": amy.UserID, "msg": "I am ben"}
		checkAPI(t, c, "POST", "/p2pRoute", nil, asBen, 401, codes.Unauthorized)
		checkAPI(t, c, "POST", "/p2pRoute", mine, asBen, 403, codes.Forbidden)
		checkAPI(t, c, "POST", "/p2pRoute", harness.APIKey(harness.ListKey), asBen, 403, codes.Forbidden)
		checkAPI(t, c, "POST", "/groupRoute", mine, map[string]string{"userId": ben.ID, "msg": "I am ben"}, 403, codes.Forbidden)
		// As herself, amy may; the message arrives from amy.
		checkAPI(t, c, "POST", "/p2pRoute", mine, map[string]string{"receiveUserId": "ben", "msg": "from amy over http"}, 200, codes.OK)
		i := ben.WaitFor(t, 0, wait, "amy's message", harness.IsMessage("from amy over http"))
		if from := ben.Seen()[i].Msg.From; from != amy.UserID {
			t.Fatalf("message from %q, want amy %q", from, amy.UserID)
		}
		// An app server with the push scope speaks for anyone.
		checkAPI(t, c, "POST", "/p2pRoute", harness.APIKey(harness.PushKey), map[string]string{"userId": amy.UserID, "receiveUserId": ben.ID, "msg": "pushed by the app"}, 200, codes.OK)
		ben.WaitFor(t, 0, wait, "app push", harness.IsMessage("pushed by the app"))
		for _, e := range ben.Seen() {
			if harness.IsMessage("I am ben")(e) {
				t.Fatal("a refused request was delivered")
			}
		}
	})
	t.Run("read someone else's history", func(t *testing.T) {
		checkAPI(t, c, "GET", "/history", nil, nil, 401, codes.Unauthorized)
		checkAPI(t, c, "GET", "/history?userId="+ben.ID+"&peer="+amy.UserID, mine, nil, 403, codes.Forbidden)
		checkAPI(t, c, "GET", "/history?peer=ben", mine, nil, 200, codes.OK)
		checkAPI(t, c, "POST", "/upload?name=x.txt", nil, []byte("hello"), 401, codes.Unauthorized)
		checkAPI(t, c, "GET", "/files/00000000000000000000000000000000", nil, nil, 401, codes.Unauthorized)
	})
	t.Run("log someone else off", func(t *testing.T) {
		info := ben.Info()
		body := map[string]string{"userId": info.UserID, "sessionId": info.SessionID}
		checkAPI(t, c, "POST", "/offLine", nil, body, 401, codes.Unauthorized)
		checkAPI(t, c, "POST", "/offLine", mine, body, 403, codes.Forbidden)
		checkAPI(t, c, "POST", "/offLine", harness.APIKey(harness.PushKey), body, 403, codes.Forbidden)
		// ben is still online: a message reaches him live.
		cara := c.Connect(t, "cara")
		if _, err := cara.Send(ctxT(t), "ben", "still there?"); err != nil {
			t.Fatal(err)
		}
		ben.WaitFor(t, 0, wait, "message after the refused log-off", harness.IsMessage("still there?"))
		for _, e := range ben.Seen() {
			if e.Kind == client.EventKicked {
				t.Fatal("ben was kicked by a refused log-off")
			}
		}
	})
	t.Run("stale session", func(t *testing.T) {
		old := login(t, c, "abel")
		login(t, c, "abel")
		checkAPI(t, c, "GET", "/onlineUser", harness.Bearer(old.AccessToken), nil, 401, codes.Unauthorized)
	})
	t.Run("app push API", func(t *testing.T) {
		c.Register(t, "cleo") // offline
		body := map[string]any{"to": []string{"ben", "cleo"}, "msg": "maintenance at noon"}
		checkAPI(t, c, "POST", "/api/push", nil, body, 401, codes.Unauthorized)
		checkAPI(t, c, "POST", "/api/push", mine, body, 403, codes.Forbidden)
		checkAPI(t, c, "POST", "/api/push", harness.APIKey(harness.ListKey), body, 403, codes.Forbidden)
		checkAPI(t, c, "POST", "/api/push", harness.APIKey(harness.PushKey), map[string]any{"to": []string{"ben", "nobody-at-all"}, "msg": "x"}, 401, codes.BadAccount)
		checkAPI(t, c, "POST", "/api/push", harness.APIKey(harness.PushKey), body, 200, codes.OK)
		ben.WaitFor(t, 0, wait, "app push to ben", harness.IsMessage("maintenance at noon"))
		cleo := c.Connect(t, "cleo")
		cleo.WaitFor(t, 0, wait, "app push stored for offline cleo", harness.IsMessage("maintenance at noon"))
	})
}

// TestInternalCallsNeedTheSecret: the gateways' /push and the route's
// /internal/* refuse callers without the internal secret, and the route's
// internal endpoints are not on its public address.
func TestInternalCallsNeedTheSecret(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	vic := c.Connect(t, "vic")
	info := vic.Info()
	g := c.Gateways[0]

	forged, err := proto.Marshal(&cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{
		UserId: info.UserID,
		Frame:  &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{From: "1", FromName: "admin", To: info.UserID, Body: []byte("forged push")}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.Header{"none": nil, "wrong": {"X-Cim-Internal": {"wrong-secret-0123456789"}}} {
		status, err := harness.Call("POST", "http://"+g.HTTPAddr+"/push", h, forged, nil)
		if err != nil || status != 401 {
			t.Fatalf("gateway /push with %s secret: HTTP %d %v, want 401", name, status, err)
		}
	}
	offline := map[string]string{"userId": info.UserID, "sessionId": info.SessionID, "gatewayId": info.Gateway}
	if status, err := harness.Call("POST", c.Route.URL+"/internal/offline", harness.Internal(), offline, nil); err != nil || status != 404 {
		t.Fatalf("/internal/offline on the public address: HTTP %d %v, want 404", status, err)
	}
	for name, h := range map[string]http.Header{"none": nil, "wrong": {"X-Cim-Internal": {"wrong-secret-0123456789"}}} {
		if status, err := harness.Call("POST", c.Route.InternalURL+"/internal/offline", h, offline, nil); err != nil || status != 401 {
			t.Fatalf("route /internal/offline with %s secret: HTTP %d %v, want 401", name, status, err)
		}
	}
	uplink, err := proto.Marshal(&cimpb.UplinkBatch{GatewayId: info.Gateway, Uplinks: []*cimpb.Uplink{{
		UserId: info.UserID, SessionId: info.SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "x1", To: info.UserID, Body: []byte("forged uplink")}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Content-Type": {"application/x-protobuf"}}
	if status, err := harness.Call("POST", c.Route.InternalURL+"/internal/uplink", h, uplink, nil); err != nil || status != 401 {
		t.Fatalf("route /internal/uplink without the secret: HTTP %d %v, want 401", status, err)
	}
	// vic is still online and got none of the forged frames.
	wes := c.Connect(t, "wes")
	if _, err := wes.Send(ctxT(t), "vic", "real message"); err != nil {
		t.Fatal(err)
	}
	vic.WaitFor(t, 0, wait, "the real message", harness.IsMessage("real message"))
	for _, e := range vic.Seen() {
		if harness.IsMessage("forged push")(e) || harness.IsMessage("forged uplink")(e) {
			t.Fatalf("a forged internal call was delivered: %+v", e)
		}
	}
}

// TestHostileInputLimits: message size, message rate, login attempts and
// request bodies are bounded; the offender gets a clear error and others are
// unaffected.
func TestHostileInputLimits(t *testing.T) {
	c := harness.Start(t, harness.Options{
		Gateways:    1,
		GatewayArgs: []string{"--max-text", "64", "--msg-rate", "2", "--msg-burst", "10", "--login-timeout", "1s"},
		RouteArgs:   []string{"--max-body", "1024"},
	})
	msg := func(id, to string, body []byte) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: id, To: to, Body: body, Kind: cimpb.Kind_KIND_TEXT}}
	}
	sink := c.Register(t, "sink")
	t.Run("message body too long or not UTF-8", func(t *testing.T) {
		conn, r, _ := rawLogin(t, c, "hal")
		writeFrame(t, conn, msg("long", sink, bytes.Repeat([]byte("a"), 65)))
		writeFrame(t, conn, msg("latin1", sink, []byte{'c', 'a', 'f', 0xe9}))
		writeFrame(t, conn, msg("fine", sink, bytes.Repeat([]byte("a"), 64)))
		got := map[string]codes.Code{}
		for len(got) < 3 {
			f := readFrame(t, conn, r)
			switch f.Type {
			case cimpb.Type_ERROR:
				got[f.Error.ClientMsgId] = codes.Code(f.Error.Code)
			case cimpb.Type_RECEIPT:
				if f.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT {
					got[f.Receipt.ClientMsgId] = codes.OK
				}
			}
		}
		want := map[string]codes.Code{"long": codes.BadArgument, "latin1": codes.BadArgument, "fine": codes.OK}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("answers %v, want %v", got, want)
		}
	})
	t.Run("message flood", func(t *testing.T) {
		conn, r, _ := rawLogin(t, c, "flo")
		// 30 at once: the burst of 10 is answered at once, the rest waits
		// its turn at 2 a second; none is refused, all in order.
		const n = 30
		for i := range n {
			writeFrame(t, conn, msg(fmt.Sprintf("m%02d", i), sink, []byte("hi")))
		}
		var order []string
		next := func() {
			for {
				f := readFrame(t, conn, r)
				if f.Type == cimpb.Type_ERROR {
					t.Fatalf("a message of the flood was answered %v, want it to wait", f)
				}
				if f.Type == cimpb.Type_RECEIPT && f.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT {
					order = append(order, f.Receipt.ClientMsgId)
					return
				}
			}
		}
		for range 10 {
			next()
		}
		// Meanwhile another user of the same gateway is served: flo's
		// backlog waits in flo's own socket.
		other, or, _ := rawLogin(t, c, "oth")
		writeFrame(t, other, msg("other", sink, []byte("hi")))
		for f := readFrame(t, other, or); f.Type != cimpb.Type_RECEIPT; f = readFrame(t, other, or) {
		}
		for len(order) < n {
			next()
		}
		if !slices.IsSorted(order) {
			t.Fatalf("flood answered out of order: %v", order)
		}
	})
	t.Run("ACK flood", func(t *testing.T) {
		conn, r, _ := rawLogin(t, c, "ack")
		// ACKs share a bucket of 10× the burst and are dropped over it;
		// more than --msg-burst dropped in a row close the connection.
		for i := range 400 {
			b, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: uint64(i + 1)}})
			if _, err := conn.Write(b); err != nil {
				break
			}
		}
		if last := expectClosed(t, conn, r); last == nil || codes.Code(last.Code) != codes.RateLimited {
			t.Fatalf("flooding connection closed with %v, want ERROR %d", last, codes.RateLimited)
		}
	})
	t.Run("silent connection", func(t *testing.T) {
		conn := dial(t, c.Gateways[0].TCPAddr)
		expectRefused(t, conn, codec.NewReader(conn, 0), codes.LoginTimeout)
	})
	t.Run("oversized and malformed bodies", func(t *testing.T) {
		big := map[string]string{"userName": "bob", "password": strings.Repeat("p", 2048)}
		checkAPI(t, c, "POST", "/registerAccount", nil, big, 413, codes.TooLarge)
		checkAPI(t, c, "POST", "/p2pRoute", harness.APIKey(harness.PushKey), []byte(`{"userId":`), 400, codes.BadArgument)
		checkAPI(t, c, "POST", "/p2pRoute", harness.APIKey(harness.PushKey), []byte(`{"userId":["x"],"receiveUserId":1,"msg":"x"}`), 400, codes.BadArgument)
	})
}

// TestTLS: with a certificate the route's API and the gateways' client ports
// speak only TLS; the terminal with --tls --ca chats through them, and a
// client without TLS gets nowhere.
func TestTLS(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, TLS: true})
	if !strings.HasPrefix(c.Route.URL, "https://") {
		t.Fatalf("route URL %s", c.Route.URL)
	}
	alice := c.Terminal(t, "alice")
	bob := c.Terminal(t, "bob")
	alice.Expect(t, 0, `^\* logged in as alice`)
	bob.Expect(t, 0, `^\* logged in as bob`)
	alice.Send(t, "bob;;over tls")
	bob.Expect(t, 0, `alice: over tls$`)

	// Plain HTTP to the TLS route: refused.
	plain := "http://" + c.Route.Addr + "/healthz"
	if resp, err := http.Get(plain); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the TLS route answered plain HTTP with 200")
		}
	}
	// A plain TCP LOGIN to a TLS gateway: no LOGIN_ACK.
	s := session{}
	var env struct {
		harness.Envelope
		Data *session `json:"data"`
	}
	env.Data = &s
	c.Register(t, "carl")
	b, _ := json.Marshal(map[string]string{"userName": "carl", "password": harness.Password})
	resp, err := c.HTTP().Post(c.Route.URL+"/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	conn, r := loginFrame(t, s.gatewayAddr(), s.Token)
	conn.SetReadDeadline(time.Now().Add(wait))
	if f, err := r.ReadFrame(); err == nil && f.Type == cimpb.Type_LOGIN_ACK {
		t.Fatal("a TLS gateway accepted a plaintext LOGIN")
	}
	// The SDK without the CA cannot even log in.
	cl, err := client.New(client.Config{RouteURL: c.Route.URL, UserName: "bob", Password: harness.Password, TLS: &tls.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(ctxT(t)); err == nil {
		cl.Close(ctxT(t))
		t.Fatal("a client that does not trust the CA logged in")
	}
}

// TestLoginRateLimit: password guessing is cut off after the burst, even
// for the right password, until the bucket refills.
func TestLoginRateLimit(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-rate", "0.01", "--login-burst", "3"}})
	c.Register(t, "gus")
	guess := map[string]string{"userName": "gus", "password": "wrong-guess"}
	var last int
	for i := 0; i < 5; i++ {
		status, err := harness.Call("POST", c.Route.URL+"/login", nil, guess, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = status
	}
	if last != 429 {
		t.Fatalf("5th guess answered HTTP %d, want 429", last)
	}
	checkAPI(t, c, "POST", "/login", nil, map[string]string{"userName": "gus", "password": harness.Password}, 429, codes.RateLimited)
}

// TestRateLimitsSharedByRoutes: the route processes take from one budget
// (kept in Redis), so a second route adds no guesses at a password and no
// /history calls: each is counted once for the cluster, wherever it lands.
func TestRateLimitsSharedByRoutes(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--login-rate", "0.001", "--login-burst", "4", "--history-rate", "0.001", "--history-burst", "2"}})
	r2 := c.AddRoute()
	s := login(t, c, "ivy") // 2 of 127.0.0.1's and ivy's 4 attempts: register, login
	bearer := http.Header{"Authorization": {"Bearer " + s.AccessToken}}
	call := func(method, url string, h http.Header, body any) int {
		t.Helper()
		status, err := harness.Call(method, url, h, body, nil)
		if err != nil {
			t.Fatal(err)
		}
		return status
	}
	for _, url := range []string{c.Route.URL, r2.URL} {
		if st := call("GET", url+"/history", bearer, nil); st != 200 {
			t.Fatalf("ivy's /history on %s: HTTP %d", url, st)
		}
	}
	if st := call("GET", r2.URL+"/history", bearer, nil); st != 429 {
		t.Fatalf("ivy's 3rd /history, the 2nd on the second route: HTTP %d, want 429", st)
	}
	guess := map[string]string{"userName": "ivy", "password": "wrong-guess"}
	for _, url := range []string{c.Route.URL, r2.URL} {
		if st := call("POST", url+"/login", nil, guess); st == 429 || st == 200 {
			t.Fatalf("a guess within the budget on %s: HTTP %d", url, st)
		}
	}
	if st := call("POST", r2.URL+"/login", nil, guess); st != 429 {
		t.Fatalf("the 5th attempt, the 2nd on the second route: HTTP %d, want 429", st)
	}
	right := map[string]string{"userName": "ivy", "password": harness.Password}
	if st := call("POST", c.Route.URL+"/login", nil, right); st != 429 {
		t.Fatalf("the right password after the budget: HTTP %d, want 429", st)
	}
}
