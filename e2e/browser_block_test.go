package e2e

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// sendSent has u send text to the user to and waits for the route's
// answer, which must be SENT (an ERROR fails the test).
func sendSent(t *testing.T, u *harness.User, to, text string) {
	t.Helper()
	id, err := u.Send(ctxT(t), to, text)
	if err != nil {
		t.Fatalf("%s sends %q: %v", u.Name, text, err)
	}
	i := u.WaitFor(t, 0, wait, "the route's answer to "+text, func(e client.Event) bool {
		return (e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT) ||
			(e.Kind == client.EventError && e.Err != nil && e.Err.ClientMsgId == id)
	})
	if e := u.Seen()[i]; e.Kind == client.EventError {
		t.Fatalf("%s's %q refused: %d %s", u.Name, text, e.Err.Code, e.Err.Text)
	}
}

// blockedShown is a JavaScript test for the open conversation shown as
// one with a blocked user called name: the header's button reads Unblock,
// the notice says so and the message box is off.
func blockedShown(name string) string {
	return `(() => { const b = document.querySelector('#block-button'), n = document.querySelector('#block-notice'), m = document.querySelector('#composer');
		return !b.hidden && b.textContent === 'Unblock' && b.dataset.blocked === 'true' && b.getAttribute('aria-pressed') === 'true' &&
			!n.hidden && n.textContent === ` + quote("You blocked "+name+". You will not get their messages.") + ` &&
			m.disabled && document.querySelector('#send-button').disabled && document.querySelector('#attach-button').disabled &&
			m.placeholder === ` + quote("Unblock "+name+" to write") + `; })()`
}

// unblockedShown is a JavaScript test for the open conversation shown as
// one with a user not blocked: Block, no notice, the message box on.
const unblockedShown = `(() => { const b = document.querySelector('#block-button'), n = document.querySelector('#block-notice'), m = document.querySelector('#composer');
	return !b.hidden && b.textContent === 'Block' && b.dataset.blocked === 'false' && b.getAttribute('aria-pressed') === 'false' &&
		n.hidden && !m.disabled && !document.querySelector('#send-button').disabled && m.placeholder === 'Write a message…'; })()`

// TestBrowserBlock drives blocking on the chat page against a real
// cluster. alice (on the page, and on her desktop with the Go SDK) blocks
// bob (Go SDK) from their conversation: the page shows him blocked and
// its message box off; bob's next message is answered SENT to him but
// never reaches the page, while carol's, sent after it, does. The state
// survives a reload. The Account panel lists bob under the blocked users;
// Unblock there turns the message box on again and bob's next message
// arrives. Blocked from another device (the route API), the page's next
// message to bob fails with the route's reason shown on it, and the page
// then shows bob blocked; the header's Unblock undoes it, and bob's
// messages arrive again.
func TestBrowserBlock(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-policy", "platform"}})
	bob := c.Connect(t, "bob")
	carol := c.Connect(t, "carol")
	desktop := c.Connect(t, "alice", func(cfg *client.Config) { cfg.Platform = "desktop" })
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)

	// bob writes; alice opens the conversation: Block is offered there.
	sendSent(t, bob, "alice", "hello alice")
	bobConv := `[data-conv="user:` + bob.ID + `"]`
	alice.openConv(bobConv)
	alice.until("bob's message", hasMessage("hello alice"))
	alice.until("the Block button, the message box on", unblockedShown)

	// Block: the page says so and turns the message box off.
	alice.run("block bob", chromedp.Click(chromedp.CSS("#block-button")))
	alice.until("bob shown blocked", blockedShown("bob"))

	// bob's next message: SENT to him, and never on alice's page. carol's,
	// sent after it was answered, comes after it in alice's inbox: once the
	// page shows carol's, it would have shown bob's.
	const unseen = "are you ignoring me?"
	sendSent(t, bob, "alice", unseen)
	sendSent(t, carol, "alice", "carol here")
	carolConv := `[data-conv="user:` + carol.ID + `"]`
	alice.until("carol's message listed", `document.querySelector(`+quote(carolConv+" .conv-preview")+`)?.textContent === 'carol here'`)
	if eval[bool](alice, hasMessage(unseen)) {
		t.Fatal("the page shows a message from a user alice blocked")
	}
	if got := eval[string](alice, `document.querySelector(`+quote(bobConv+" .conv-preview")+`).textContent`); got != "hello alice" {
		t.Fatalf("bob's conversation previews %q, want his last message before the block", got)
	}
	alice.until("still blocked", blockedShown("bob"))

	// A reload: the page asks the route whom alice blocked.
	alice.reload()
	alice.run("the chat after the reload", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	alice.until("online again", `document.querySelector('#conn-state').dataset.state === 'online'`)
	alice.openConv(bobConv)
	alice.until("bob's history", hasMessage("hello alice"))
	alice.until("bob shown blocked after the reload", blockedShown("bob"))
	if eval[bool](alice, hasMessage(unseen)) {
		t.Fatal("alice's history has the message of a user she blocked")
	}

	// The Account panel lists bob; Unblock there lets alice write again.
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	listed := `#blocked-list li[data-user="` + bob.ID + `"]`
	alice.until("bob among the blocked users", `(() => { const l = document.querySelectorAll('#blocked-list li');
		const b = document.querySelector(`+quote(listed)+`);
		return l.length === 1 && b !== null && b.querySelector('.blocked-name').textContent === 'bob' &&
			b.querySelector('button.unblock')?.textContent === 'Unblock' && document.querySelector('#no-blocked').hidden; })()`)
	alice.run("unblock bob in the account panel", chromedp.Click(chromedp.CSS(listed+" button.unblock")))
	alice.until("the outcome", accountStatus("ok", "You unblocked bob."))
	alice.until("nobody blocked", `document.querySelectorAll('#blocked-list li').length === 0 && !document.querySelector('#no-blocked').hidden`)
	alice.until("the message box on again", unblockedShown)
	alice.run("close the account panel",
		chromedp.Click(chromedp.CSS("#account-close")),
		chromedp.WaitNotVisible(chromedp.CSS("#account-panel")))

	// bob's messages arrive again; the one sent while blocked never does.
	sendSent(t, bob, "alice", "back on speaking terms")
	alice.until("bob's message after the unblock", hasMessage("back on speaking terms"))
	if eval[bool](alice, hasMessage(unseen)) {
		t.Fatal("the message bob sent while blocked arrived after the unblock")
	}
	alice.send("hi bob")
	bob.WaitFor(t, 0, wait, "alice's message after the unblock", harness.IsMessage("hi bob"))

	// Blocked from alice's desktop (the route API): the page does not know
	// yet, and its next message to bob fails with the route's reason shown
	// on the message; then the page shows bob blocked.
	var env harness.Envelope
	status, err := c.API(http.MethodPost, "/blocks", harness.Bearer(desktop.API().AccessToken()), map[string]string{"user": "bob"}, &env)
	if err != nil || status != http.StatusOK || env.Code != int(codes.OK) {
		t.Fatalf("POST /blocks from the desktop: HTTP %d, %v, %+v", status, err, env)
	}
	alice.until("the message box still on", unblockedShown)
	const refused = "are you still there?"
	alice.run("send "+refused, typeInto("#composer", refused+"\r"))
	alice.until("the refusal on the message", `(() => { const m = [...document.querySelectorAll('#messages .mine')].find(m => m.textContent.includes(`+quote(refused)+`));
		return m !== undefined && m.dataset.status === 'failed' && (m.querySelector('.send-error')?.textContent || '').includes('you blocked this user'); })()`)
	alice.until("bob shown blocked after the refusal", blockedShown("bob"))
	alice.screenshot("browser-block-alice")

	// The header's Unblock.
	alice.run("unblock bob in the header", chromedp.Click(chromedp.CSS("#block-button")))
	alice.until("bob shown unblocked", unblockedShown)
	sendSent(t, bob, "alice", "friends again")
	alice.until("bob's message after the header's Unblock", hasMessage("friends again"))
}
