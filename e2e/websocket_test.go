package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// wsUser is a user on a gateway's WebSocket, speaking the JSON encoding
// ("gocim.json": one protojson Frame per text message) the way a browser
// page does, with nothing but a WebSocket library.
type wsUser struct {
	t      *testing.T
	ws     *websocket.Conn
	id     string
	bearer http.Header
	gw     string
	frames chan *cimpb.Frame
	closed chan error
}

type wsLogin struct {
	UserID      string `json:"userId"`
	Token       string `json:"token"`
	AccessToken string `json:"accessToken"`
	Server      struct {
		ID    string `json:"id"`
		WSURL string `json:"wsUrl"`
	} `json:"server"`
}

// connectWS registers name, logs in through the route and opens the
// WebSocket the route names, then sends LOGIN.
func connectWS(t *testing.T, c *harness.Cluster, name string) *wsUser {
	t.Helper()
	ws, l := dialWS(t, c, name)
	u := &wsUser{t: t, ws: ws, id: l.UserID, bearer: harness.Bearer(l.AccessToken), gw: l.Server.ID,
		frames: make(chan *cimpb.Frame, 1024), closed: make(chan error, 1)}
	go u.readLoop()
	u.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: l.Token}})
	u.expect("LOGIN_ACK", func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_LOGIN_ACK })
	return u
}

// dialWS registers name, logs in through the route and opens the WebSocket
// the route names ("gocim.json"), closed when the test ends.
func dialWS(t *testing.T, c *harness.Cluster, name string) (*websocket.Conn, wsLogin) {
	t.Helper()
	c.Register(t, name)
	var env harness.Envelope
	if st, err := c.API(http.MethodPost, "/login", nil, map[string]string{"userName": name, "password": harness.Password}, &env); err != nil || st != 200 {
		t.Fatalf("login %s: HTTP %d %v", name, st, err)
	}
	var l wsLogin
	if err := json.Unmarshal(env.Data, &l); err != nil {
		t.Fatal(err)
	}
	gw := c.Gateway(l.Server.ID)
	if gw == nil || l.Server.WSURL != gw.WSURL {
		t.Fatalf("login handed out wsUrl %q for gateway %s (harness: %+v)", l.Server.WSURL, l.Server.ID, gw)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"gocim.json"}}
	ws, _, err := d.Dial(l.Server.WSURL, http.Header{"Origin": {c.Route.URL}})
	if err != nil {
		t.Fatalf("dial %s: %v", l.Server.WSURL, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, l
}

func (u *wsUser) readLoop() {
	for {
		typ, b, err := u.ws.ReadMessage()
		if err != nil {
			u.closed <- err
			close(u.frames)
			return
		}
		f := &cimpb.Frame{}
		if typ != websocket.TextMessage || protojson.Unmarshal(b, f) != nil {
			u.closed <- errors.New("not a JSON frame: " + string(b))
			close(u.frames)
			return
		}
		u.frames <- f
	}
}

func (u *wsUser) send(f *cimpb.Frame) {
	u.t.Helper()
	b, err := protojson.Marshal(f)
	if err != nil {
		u.t.Fatal(err)
	}
	if err := u.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		u.t.Fatalf("write: %v", err)
	}
}

// expect reads frames until one matches (others are dropped).
func (u *wsUser) expect(what string, match func(*cimpb.Frame) bool) *cimpb.Frame {
	u.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case f, ok := <-u.frames:
			if !ok {
				u.t.Fatalf("waiting for %s: connection closed: %v", what, <-u.closed)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			u.t.Fatalf("no %s within %v", what, wait)
		}
	}
}

func wsMessage(body string) func(*cimpb.Frame) bool {
	return func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_MSG && string(f.GetMsg().GetBody()) == body }
}

// isReceipt matches a receipt of status st for the message the sender
// knows as clientMsgID, or the route as msgID.
func isReceipt(clientMsgID, msgID string, st cimpb.ReceiptStatus) func(client.Event) bool {
	return func(e client.Event) bool {
		if e.Kind != client.EventReceipt || e.Receipt.Status != st {
			return false
		}
		if e.Receipt.ClientMsgId == clientMsgID || e.Receipt.MsgId == msgID {
			return true
		}
		for _, it := range e.Receipt.Items {
			if it.ClientMsgId == clientMsgID || it.MsgId == msgID {
				return true
			}
		}
		return false
	}
}

// TestWebSocketChatsWithTCP: a browser-style user on a gateway's WebSocket
// (JSON frames, the URL from /login) and a TCP user of the Go SDK chat
// privately and in a group through the real cluster, with every receipt
// (sent, delivered, read) both ways; a second WebSocket login kicks the
// first, and the new one gets what was sent meanwhile.
func TestWebSocketChatsWithTCP(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	tcp := c.Connect(t, "tina")
	web := connectWS(t, c, "wendy")

	// TCP → WebSocket, then ACK and READ back: DELIVERED and READ.
	id, err := tcp.Send(ctx, web.id, "hello browser")
	if err != nil {
		t.Fatal(err)
	}
	m := web.expect("tina's message", wsMessage("hello browser")).GetMsg()
	if m.From != tcp.ID || m.Seq == 0 || m.MsgId == "" {
		t.Fatalf("message %v", m)
	}
	web.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: m.Seq}})
	tcp.WaitFor(t, 0, wait, "DELIVERED", isReceipt(id, m.MsgId, cimpb.ReceiptStatus_RECEIPT_DELIVERED))
	web.send(&cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: tcp.ID, MsgIds: []string{m.MsgId}, Seqs: []uint64{m.Seq}}})
	tcp.WaitFor(t, 0, wait, "READ", isReceipt(id, m.MsgId, cimpb.ReceiptStatus_RECEIPT_READ))

	// WebSocket → TCP: SENT to the browser, the message to the SDK, and
	// DELIVERED back once the SDK acknowledged it.
	web.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 7, Msg: &cimpb.Msg{ClientMsgId: "w-1", To: tcp.ID, Body: []byte("hello terminal ✓")}})
	sent := web.expect("SENT", func(f *cimpb.Frame) bool {
		return f.Type == cimpb.Type_RECEIPT && f.Receipt.ClientMsgId == "w-1" && f.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
	})
	tcp.WaitFor(t, 0, wait, "wendy's message", func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg.Body != nil && string(e.Msg.Body) == "hello terminal ✓" && e.Msg.From == web.id
	})
	web.expect("DELIVERED", func(f *cimpb.Frame) bool {
		if f.Type != cimpb.Type_RECEIPT || f.Receipt.Status != cimpb.ReceiptStatus_RECEIPT_DELIVERED {
			return false
		}
		if f.Receipt.MsgId == sent.Receipt.MsgId {
			return true
		}
		for _, it := range f.Receipt.Items {
			if it.MsgId == sent.Receipt.MsgId {
				return true
			}
		}
		return false
	})

	// A group: the browser joins over the route's API with its bearer token.
	g, err := tcp.CreateGroup(ctx, "web", true)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.API(http.MethodPost, "/groups/"+g.ID+"/join", web.bearer, nil, nil); err != nil || st != 200 {
		t.Fatalf("join over the API: HTTP %d %v", st, err)
	}
	if _, err := tcp.SendGroup(ctx, g.ID, "hi group"); err != nil {
		t.Fatal(err)
	}
	if gm := web.expect("the group message", wsMessage("hi group")).GetMsg(); gm.Group != g.ID {
		t.Fatalf("group message %v", gm)
	}
	web.send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "w-2", Group: g.ID, Body: []byte("hi from the web")}})
	tcp.WaitFor(t, 0, wait, "the browser's group message", isGroupMessage(g.ID, "hi from the web"))

	// A second login of the same user over WebSocket kicks the first (the
	// default login policy), which is told why and closed.
	web2 := connectWS(t, c, "wendy")
	kick := web.expect("KICK", func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_KICK })
	if kick.Kick.Reason == "" {
		t.Fatalf("kick %v without a reason", kick)
	}
	if _, err := tcp.Send(ctx, web.id, "after the kick"); err != nil {
		t.Fatal(err)
	}
	web2.expect("the message sent after the kick", wsMessage("after the kick"))

	// Bad input from a logged-in browser: ERROR BadFrame, then a close.
	if err := web2.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"MSG","msg":{"to":`)); err != nil {
		t.Fatal(err)
	}
	e := web2.expect("ERROR", func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_ERROR })
	if codes.Code(e.Error.Code) != codes.BadFrame {
		t.Fatalf("error %v, want BadFrame", e)
	}
	var ce *websocket.CloseError
	for range web2.frames {
	}
	if err := <-web2.closed; !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("closed with %v, want a normal close", err)
	}
}
