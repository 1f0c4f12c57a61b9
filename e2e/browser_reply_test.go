package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// sentMsgID waits for the route's answer to u's message clientMsgID,
// which must be SENT, and returns the message's msgId.
func sentMsgID(t *testing.T, u *harness.User, clientMsgID, what string) string {
	t.Helper()
	i := u.WaitFor(t, 0, wait, "the route's answer to "+what, func(e client.Event) bool {
		return (e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == clientMsgID && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT) ||
			(e.Kind == client.EventError && e.Err != nil && e.Err.ClientMsgId == clientMsgID)
	})
	e := u.Seen()[i]
	if e.Kind == client.EventError {
		t.Fatalf("%s's %s refused: %d %s", u.Name, what, e.Err.Code, e.Err.Text)
	}
	if e.Receipt.MsgId == "" {
		t.Fatalf("%s's %s: SENT without a msgId", u.Name, what)
	}
	return e.Receipt.MsgId
}

// replyMsg has u send text to the user to as a reply to msgId (the SDK's
// low-level SendMsg) and returns the route's msgId of it.
func replyMsg(t *testing.T, u *harness.User, to, text, msgID string) string {
	t.Helper()
	m := &cimpb.Msg{To: to, Kind: cimpb.Kind_KIND_TEXT, Body: []byte(text), ReplyTo: msgID}
	if err := u.SendMsg(ctxT(t), m); err != nil {
		t.Fatalf("%s sends %q: %v", u.Name, text, err)
	}
	return sentMsgID(t, u, m.GetClientMsgId(), quote(text))
}

// msgWithText is a JavaScript expression for the message of the open
// conversation whose .body reads text (undefined when none). Trimmed: the
// Enter that sent the previous message leaves a new line in the composer
// (chromedp's char event, which the page's keydown handler cannot cancel).
func msgWithText(text string) string {
	return `[...document.querySelectorAll('#messages [data-msg-id]')].find(m => m.querySelector(':scope > .body')?.textContent.trim() === ` + quote(text) + `)`
}

// isText matches a received message whose body, trimmed, is text (see
// msgWithText).
func isText(text string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg != nil && strings.TrimSpace(string(e.Msg.Body)) == text
	}
}

// quotes is a JavaScript test: the message with this text shows a
// .reply-quote of the message replyTo, known to the page as sent by name
// with this snippet.
func quotes(text, replyTo, name, snippet string) string {
	return `(() => { const m = ` + msgWithText(text) + `; const q = m?.querySelector(':scope > .reply-quote');
		return q != null && m.dataset.replyTo === ` + quote(replyTo) + ` && q.dataset.replyTo === ` + quote(replyTo) + ` && q.dataset.known === 'true' &&
			q.querySelector('.reply-quote-name')?.textContent === ` + quote(name) + ` && q.querySelector('.reply-quote-text')?.textContent === ` + quote(snippet) + ` &&
			q.textContent.includes(` + quote(snippet) + `); })()`
}

// replyBar is a JavaScript test for #reply-bar shown for the message
// msgId, sent by name, with this snippet.
func replyBar(msgID, name, snippet string) string {
	return `(() => { const b = document.querySelector('#reply-bar');
		return !b.hidden && b.dataset.replyTo === ` + quote(msgID) + ` && document.querySelector('#reply-name').textContent === ` + quote(name) + ` &&
			document.querySelector('#reply-snippet').textContent === ` + quote(snippet) + `; })()`
}

// replyBarHidden is a JavaScript test for #reply-bar hidden.
const replyBarHidden = `document.querySelector('#reply-bar').hidden`

// clickReply clicks the Reply button of the message msgId (focused first:
// the actions show on hover or focus).
func (p *page) clickReply(msgID string) {
	p.t.Helper()
	sel := `#messages [data-msg-id="` + msgID + `"] > .actions .reply-button`
	p.until("a Reply button on "+msgID, `document.querySelector(`+quote(sel)+`) !== null`)
	p.run("click Reply on "+msgID, chromedp.Focus(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// TestBrowserReply drives replies on the chat page against a real
// cluster. bob (Go SDK) asks alice (on the page) something; she clicks
// Reply on his message, the bar above the message box quotes it, and what
// she sends next reaches bob as a reply to it (reply_to: his msgId) and
// shows quoting it on her page. bob's reply to hers (SendMsg with
// ReplyTo) shows on her page quoting her message; one naming a message
// the page does not have quotes "a message". Cancel drops a reply under
// way. After a reload the quotes come back from history's replyTo.
func TestBrowserReply(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	bob := c.Connect(t, "bob")
	c.Register(t, "alice")
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)

	// bob asks; alice opens the conversation: every message has Reply.
	const ask = "are you there?"
	id, err := bob.Send(ctxT(t), "alice", ask)
	if err != nil {
		t.Fatalf("bob sends %q: %v", ask, err)
	}
	askID := sentMsgID(t, bob, id, quote(ask))
	bobConv := `[data-conv="user:` + bob.ID + `"]`
	alice.openConv(bobConv)
	alice.until("bob's message", hasMessage(ask))
	if !eval[bool](alice, replyBarHidden) {
		t.Fatal("#reply-bar shown before any Reply")
	}

	// Reply: the bar quotes bob's message; what alice sends answers it.
	alice.clickReply(askID)
	alice.until("the reply bar", replyBar(askID, "bob", ask))
	alice.send("yes")
	alice.until("the reply bar gone after the send", replyBarHidden)
	i := bob.WaitFor(t, 0, wait, "alice's reply", isText("yes"))
	yes := bob.Seen()[i].Msg
	if got := yes.GetReplyTo(); got != askID {
		t.Fatalf("alice's reply reached bob with reply_to %q, want his message's msgId %q", got, askID)
	}
	yesID := yes.GetMsgId()
	alice.until("her reply quoting bob's message", quotes("yes", askID, "bob", ask))

	// bob answers hers: the page quotes her message in his.
	goodID := replyMsg(t, bob, "alice", "good", yesID)
	alice.until("bob's reply", hasMessage("good"))
	alice.until("bob's reply quoting hers", quotes("good", yesID, "you", "yes"))

	// A reply to a message the page does not have: "a message".
	const unknown = "00000000000100000000000000000abc" // a msgId's form, of 1970
	replyMsg(t, bob, "alice", "which one?", unknown)
	alice.until("a quote of a message the page does not have", `(() => { const q = `+msgWithText("which one?")+`?.querySelector('.reply-quote');
		return q != null && q.dataset.known === 'false' && q.dataset.replyTo === `+quote(unknown)+` && q.querySelector('.reply-quote-text').textContent === 'a message'; })()`)

	// Cancel: the bar goes, and the next message is no reply.
	alice.clickReply(goodID)
	alice.until("the reply bar for bob's reply", replyBar(goodID, "bob", "good"))
	alice.run("cancel the reply", chromedp.Click(chromedp.CSS("#reply-cancel")))
	alice.until("the reply bar gone after Cancel", replyBarHidden)
	alice.send("no quote")
	j := bob.WaitFor(t, 0, wait, "alice's message after the cancel", isText("no quote"))
	if got := bob.Seen()[j].Msg.GetReplyTo(); got != "" {
		t.Fatalf("a message sent after Cancel is a reply to %q", got)
	}
	if eval[bool](alice, msgWithText("no quote")+`.querySelector('.reply-quote') !== null`) {
		t.Fatal("a message that is no reply shows a quote")
	}
	alice.screenshot("browser-reply-alice")

	// A reload: the conversation comes from history, quotes and all (newest
	// first: a quote is drawn again once the message it names is shown).
	alice.reload()
	alice.run("the chat after the reload", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	alice.until("online again", `document.querySelector('#conn-state').dataset.state === 'online'`)
	alice.openConv(bobConv)
	alice.until("bob's reply from history", hasMessage("good"))
	alice.until("bob's reply quoting hers after the reload", quotes("good", yesID, "you", "yes"))
	alice.until("her reply quoting bob's after the reload", quotes("yes", askID, "bob", ask))
	alice.until("the unknown quote after the reload", `(() => { const q = `+msgWithText("which one?")+`?.querySelector('.reply-quote');
		return q != null && q.dataset.known === 'false' && q.textContent.includes('a message'); })()`)
	if !eval[bool](alice, replyBarHidden) {
		t.Fatal("#reply-bar shown after the reload")
	}
}
