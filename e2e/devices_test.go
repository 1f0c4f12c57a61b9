package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// platform is a client option naming the login's platform.
func platform(p string) func(*client.Config) {
	return func(cfg *client.Config) { cfg.Platform = p }
}

// bodies returns the bodies of u's message events: incoming ones, or with
// outgoing those sent from its other devices.
func bodies(u *harness.User, outgoing bool) []string {
	var out []string
	for _, e := range u.Seen() {
		if e.Kind == client.EventMessage && e.Msg != nil && e.Outgoing == outgoing {
			out = append(out, string(e.Msg.Body))
		}
	}
	return out
}

// TestSeveralDevices (--login-policy platform): alice on a phone and a
// browser over two gateways. Each device gets every message, in order,
// once — the one cut off the network too, when it comes back; what one
// sends shows on the other as sent and not twice on itself; DELIVERED and
// READ reach bob once, from the first device; a READ on one device reaches
// the other; watchers see alice online until her last device goes; a
// second phone login kicks only the first phone.
func TestSeveralDevices(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: []string{"--login-policy", "platform"}})
	ctx := ctxT(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("route log:\n%s", c.Route.Tail(80))
		}
	})
	bob := c.Connect(t, "bob", platform("desktop"))
	carol := c.Connect(t, "carol", platform("desktop"))
	var webLink dropper
	phone := c.Connect(t, "alice", platform("mobile"))
	web := c.Connect(t, "alice", platform("web"), func(cfg *client.Config) { cfg.Dial = webLink.dial })
	if phone.Info().SessionID == web.Info().SessionID {
		t.Fatal("both devices share one session")
	}
	if _, err := carol.Subscribe(ctx, []string{"alice"}, nil); err != nil {
		t.Fatal(err)
	}

	// Every message to alice reaches both devices, in order, once.
	send := func(from *harness.User, to string, n, first int) {
		for i := range n {
			if _, err := from.Send(ctx, to, fmt.Sprintf("m%d", first+i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(bob, "alice", 3, 0)
	for _, d := range []*harness.User{phone, web} {
		d.WaitFor(t, 0, wait, "m2", harness.IsMessage("m2"))
	}

	// The web device drops off the network; what bob sends meanwhile the
	// phone receives and acknowledges; the web gets it when it is back.
	webLink.cut(true)
	send(bob, "alice", 2, 3)
	phone.WaitFor(t, 0, wait, "m4", harness.IsMessage("m4"))
	webLink.unblock()
	web.WaitFor(t, 0, wait, "m4 after the reconnect", harness.IsMessage("m4"))
	want := fmt.Sprint([]string{"m0", "m1", "m2", "m3", "m4"})
	for _, d := range []*harness.User{phone, web} {
		if got := fmt.Sprint(bodies(d, false)); got != want {
			t.Fatalf("%s got %s, want %s", d.Info().SessionID, got, want)
		}
	}

	// alice answers from the phone: bob gets it, the web shows it as sent,
	// the phone shows it only as its own SENT.
	if _, err := phone.Send(ctx, "bob", "from the phone"); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "alice's answer", harness.IsMessage("from the phone"))
	web.WaitFor(t, 0, wait, "the phone's message as sent", func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Outgoing && string(e.Msg.Body) == "from the phone" && e.Msg.To == bob.ID
	})
	// bob's READ of the answer reaches alice: both devices get the READ.
	var answer string
	for _, m := range received(bob) {
		if string(m.Body) == "from the phone" {
			answer = m.MsgId
		}
	}
	if err := bob.MarkRead(ctx, "alice", answer); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*harness.User{phone, web} {
		d.WaitFor(t, 0, wait, "bob's READ", func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_READ && e.Receipt.By == bob.ID
		})
	}
	if got := bodies(phone, true); len(got) != 0 {
		t.Fatalf("the phone showed its own message again as %v", got)
	}
	if got := bodies(phone, false); len(got) != 5 {
		t.Fatalf("the phone's incoming messages are %v, want only bob's five", got)
	}

	// The phone reads bob's messages: bob gets one READ per message, the
	// web hears that alice read them; the web's READ of the same adds none.
	var ids []string
	for _, m := range received(phone) {
		if m.From == bob.ID {
			ids = append(ids, m.MsgId)
		}
	}
	for _, id := range ids { // the phone acknowledged them first
		bob.WaitFor(t, 0, wait, "DELIVERED of "+id, isReceipt("-", id, cimpb.ReceiptStatus_RECEIPT_DELIVERED))
	}
	if err := phone.MarkRead(ctx, "bob", ids...); err != nil {
		t.Fatal(err)
	}
	web.WaitFor(t, 0, wait, "the phone's READ", func(e client.Event) bool {
		return e.Kind == client.EventReadElsewhere && e.Receipt.Peer == bob.ID
	})
	if err := web.MarkRead(ctx, "bob", ids...); err != nil {
		t.Fatal(err)
	}
	// A message after the web's READ: bob's inbox holds any receipt that
	// READ made before it.
	if _, err := web.Send(ctx, "bob", "barrier"); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "the barrier", harness.IsMessage("barrier"))
	counts := map[cimpb.ReceiptStatus]map[string]int{}
	for _, e := range bob.Seen() {
		if e.Kind != client.EventReceipt || e.Receipt.By != phone.ID {
			continue
		}
		st := e.Receipt.Status
		if counts[st] == nil {
			counts[st] = map[string]int{}
		}
		for _, id := range receiptIDs(e.Receipt) {
			counts[st][id]++
		}
	}
	for _, st := range []cimpb.ReceiptStatus{cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ} {
		for _, id := range ids {
			if counts[st][id] != 1 {
				t.Fatalf("bob got %d %v receipts for %s, want 1 (from the first device)", counts[st][id], st, id)
			}
		}
	}

	// A second phone login kicks the first phone only.
	mark := carol.Len()
	phone2 := c.Connect(t, "alice", platform("mobile"))
	phone.WaitFor(t, 0, wait, "the kick", harness.IsKind(client.EventKicked))
	send(bob, "alice", 1, 5)
	for _, d := range []*harness.User{phone2, web} {
		d.WaitFor(t, 0, wait, "m5", harness.IsMessage("m5"))
	}
	// carol sees alice online until her last device goes: when the web
	// goes she hears alice is online on the phone, not offline.
	carol.WaitFor(t, mark, wait, "alice online on the new phone", isPresenceOn(phone.ID, "mobile"))
	mark = carol.Len()
	web.Close(ctx)
	i := carol.WaitFor(t, mark, wait, "alice still online on the phone", isPresenceOn(phone.ID, "mobile"))
	for _, e := range carol.Seen()[mark:i] {
		if isPresence(phone.ID, false)(e) {
			t.Fatal("carol heard alice go offline while her phone was on")
		}
	}
	phone2.Close(ctx)
	carol.WaitFor(t, i, wait, "alice offline", isPresence(phone.ID, false))
}

// isPresenceOn matches a presence change saying uid is online on platform.
func isPresenceOn(uid, platform string) func(client.Event) bool {
	return func(e client.Event) bool {
		if e.Kind != client.EventPresence || e.Presence.GetSnapshot() {
			return false
		}
		for _, s := range e.Presence.States {
			if s.UserId == uid && s.Online && s.Platform == platform {
				return true
			}
		}
		return false
	}
}

// receiptIDs are the msg ids a receipt covers.
func receiptIDs(rc *cimpb.Receipt) []string {
	if len(rc.Items) == 0 {
		return []string{rc.MsgId}
	}
	var out []string
	for _, it := range rc.Items {
		out = append(out, it.MsgId)
	}
	return out
}

// TestSeveralDevicesTerminal: the terminal is one of a user's devices: it
// shows what the user sent from another device as the user's own line,
// and what it sends shows on the other device as sent.
func TestSeveralDevicesTerminal(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: []string{"--login-policy", "platform"}})
	ctx := ctxT(t)
	erin := c.Connect(t, "erin", platform("desktop"))
	term := c.Terminal(t, "dave")
	term.Expect(t, 0, `^\* logged in as dave`)
	phone := c.Connect(t, "dave", platform("mobile"))

	if _, err := phone.Send(ctx, "erin", "sent from the phone"); err != nil {
		t.Fatal(err)
	}
	erin.WaitFor(t, 0, wait, "the phone's message", harness.IsMessage("sent from the phone"))
	term.Expect(t, 0, `^`+stamp+`me → (erin|`+erin.ID+`): sent from the phone \(from another device\)$`)

	term.Send(t, "erin;;typed in the terminal")
	term.Expect(t, 0, `^\* ✓ sent to erin: typed in the terminal$`)
	phone.WaitFor(t, 0, wait, "the terminal's message as sent", func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Outgoing && string(e.Msg.Body) == "typed in the terminal"
	})

	if _, err := erin.Send(ctx, "dave", "to both"); err != nil {
		t.Fatal(err)
	}
	phone.WaitFor(t, 0, wait, "erin's message", harness.IsMessage("to both"))
	term.Expect(t, 0, `^`+stamp+`erin: to both$`)
	// The terminal never printed its own message twice.
	n := 0
	for _, l := range term.Lines() {
		if strings.Contains(l, "typed in the terminal") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the terminal printed its own message %d times, want once (lines %q)", n, term.Lines())
	}
}

// TestRefusedMessageLeavesNoCopy (--login-policy platform): once away bob's
// inbox holds twice alice's share of it, her phone's next message is
// refused (ERROR 4293) and her web device never shows it — not live, not
// in the SYNC after a reconnect — while it shows the ones bob got. Sent
// again once bob has read, it shows on both sides with one id.
func TestRefusedMessageLeavesNoCopy(t *testing.T) {
	const share = 2
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--login-policy", "platform", "--inbox-per-sender", fmt.Sprint(share)}})
	ctx := ctxT(t)
	c.Register(t, "bob")
	var webLink dropper
	phone := c.Connect(t, "alice", platform("mobile"))
	web := c.Connect(t, "alice", platform("web"), func(cfg *client.Config) { cfg.Dial = webLink.dial })
	carol := c.Connect(t, "carol", platform("desktop"))
	var want []string
	var lastID string
	for i := range 2 * share {
		body := fmt.Sprint("a", i)
		id, err := phone.Send(ctx, "bob", body)
		if err != nil {
			t.Fatal(err)
		}
		phone.WaitFor(t, 0, wait, "SENT for "+body, isSent(id))
		want, lastID = append(want, body), id
	}
	refused, err := phone.Send(ctx, "bob", "refused")
	if err != nil {
		t.Fatal(err)
	}
	k := phone.WaitFor(t, 0, wait, "the refusal", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.GetClientMsgId() == refused
	})
	if code := phone.Seen()[k].Err.GetCode(); code != int32(codes.QuotaExceeded) {
		t.Fatalf("the phone's last message answered %d, want 4293", code)
	}
	// The web reconnects and syncs; carol's message, stored after
	// everything above, shows that the SYNC is done.
	webLink.cut(false)
	if _, err := carol.Send(ctx, "alice", "from carol"); err != nil {
		t.Fatal(err)
	}
	web.WaitFor(t, 0, wait, "carol's message after the reconnect", harness.IsMessage("from carol"))
	if got := fmt.Sprint(bodies(web, true)); got != fmt.Sprint(want) {
		t.Fatalf("alice's web shows %s as sent, want %v (never the refused one)", got, want)
	}

	// bob gets everything (his ACK frees alice's share: the phone hears
	// DELIVERED); the phone sends the refused text again.
	bob := c.Connect(t, "bob", platform("desktop"))
	bob.WaitFor(t, 0, wait, "a3", harness.IsMessage("a3"))
	phone.WaitFor(t, 0, wait, "DELIVERED for a3", isReceipt(lastID, "-", cimpb.ReceiptStatus_RECEIPT_DELIVERED))
	again, err := phone.Send(ctx, "bob", "refused")
	if err != nil {
		t.Fatal(err)
	}
	k = phone.WaitFor(t, 0, wait, "SENT for the second try", isSent(again))
	id := phone.Seen()[k].Receipt.GetMsgId()
	k = web.WaitFor(t, 0, wait, "the copy of the second try", harness.IsMessage("refused"))
	if got := web.Seen()[k].Msg.GetMsgId(); got != id {
		t.Fatalf("alice's web shows the second try as %s, want %s (the phone's)", got, id)
	}
	k = bob.WaitFor(t, 0, wait, "the second try", harness.IsMessage("refused"))
	if got := bob.Seen()[k].Msg.GetMsgId(); got != id {
		t.Fatalf("bob got the second try as %s, want %s (alice's)", got, id)
	}
}
