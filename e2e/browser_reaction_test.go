package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// The palette's emojis, in its order; the heart is two code points.
const (
	rxThumbs = "👍"
	rxHeart  = "\u2764\ufe0f" // ❤️
)

// rxSend has u react with emoji to the message msgID of its conversation
// with the user to and returns the route's msgId of the reaction.
func rxSend(t *testing.T, u *harness.User, to, msgID, emoji string) string {
	t.Helper()
	cmid, err := u.React(ctxT(t), to, msgID, emoji)
	if err != nil {
		t.Fatalf("%s reacts %q to %s: %v", u.Name, emoji, msgID, err)
	}
	return sentMsgID(t, u, cmid, "reaction "+quote(emoji))
}

// rxReceived matches a reaction (a MSG with op MSG_OP_REACT, whatever
// kind of event the SDK makes of it) by the user from to the message ref,
// with emoji ("" for one taken back).
func rxReceived(from, ref, emoji string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Msg != nil && e.Msg.GetOp() == cimpb.MsgOp_MSG_OP_REACT && e.Msg.GetFrom() == from &&
			e.Msg.GetRefMsgId() == ref && string(e.Msg.GetBody()) == emoji
	}
}

// rxMsg is the CSS selector of the message msgID in the open conversation.
func rxMsg(msgID string) string {
	return `#messages [data-msg-id="` + msgID + `"]`
}

// rxChips is a JavaScript expression for the reaction chips under the
// message msgID: each "[data-emoji] text", " mine" added on the user's
// own, joined by ", " ("" for none; null when the message is not shown).
func rxChips(msgID string) string {
	return `(() => { const m = document.querySelector(` + quote(rxMsg(msgID)) + `); if (!m) return null;
		return [...m.querySelectorAll(':scope > .reactions > .reaction')].map(b => '[' + b.dataset.emoji + '] ' + b.textContent + (b.classList.contains('mine') ? ' mine' : '')).join(', '); })()`
}

// rxChipsAre is a JavaScript test for the chips under msgID reading want.
func rxChipsAre(msgID, want string) string {
	return rxChips(msgID) + ` === ` + quote(want)
}

// rxClickReact clicks the React button of the message msgID (focused
// first: the actions show on hover or focus) and waits for its palette.
func (p *page) rxClickReact(msgID string) {
	p.t.Helper()
	sel := rxMsg(msgID) + ` > .actions .react-button`
	p.until("a React button on "+msgID, `document.querySelector(`+quote(sel)+`) !== null`)
	p.run("click React on "+msgID, chromedp.Focus(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
	p.until("the palette of "+msgID, `(() => { const b = document.querySelector(`+quote(sel)+`);
		return document.querySelector(`+quote(rxMsg(msgID)+` > .react-palette`)+`) !== null && b.getAttribute('aria-expanded') === 'true'; })()`)
}

// rxClick clicks the element sel names.
func (p *page) rxClick(what, sel string) {
	p.t.Helper()
	p.until(what, `document.querySelector(`+quote(sel)+`) !== null`)
	p.run("click "+what, chromedp.Click(chromedp.CSS(sel)))
}

// TestBrowserReaction drives reactions on the chat page against a real
// cluster. bob (Go SDK) asks alice (on the page) something; she opens the
// palette of his message and picks 👍: bob gets a REACT naming his
// message, and her page shows the chip "👍 1" as hers. bob reacts ❤️ to
// her answer: the chip shows under it live, and nothing else shows (no
// message, no preview, no READ for it); clicking bob's chip she reacts ❤️
// too ("❤️ 2", hers). After a reload the chips come back from history,
// hers marked; clicking her own 👍 takes it back: bob gets the REACT with
// an empty body, and the chip goes.
func TestBrowserReaction(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	bob := c.Connect(t, "bob")
	c.Register(t, "alice")
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)
	aliceID := alice.userID()

	// bob asks; alice opens the conversation: no reactions yet.
	const ask = "lunch at noon?"
	id, err := bob.Send(ctxT(t), "alice", ask)
	if err != nil {
		t.Fatalf("bob sends %q: %v", ask, err)
	}
	askID := sentMsgID(t, bob, id, quote(ask))
	bobConv := `[data-conv="user:` + bob.ID + `"]`
	alice.openConv(bobConv)
	alice.until("bob's message", hasMessage(ask))
	if got := eval[any](alice, rxChips(askID)); got != "" {
		t.Fatalf("bob's new message shows reactions %v", got)
	}

	// The palette: the six emojis, in order; 👍 reacts and closes it.
	alice.rxClickReact(askID)
	palette := rxMsg(askID) + ` > .react-palette`
	if got := eval[string](alice, `[...document.querySelectorAll(`+quote(palette+` .react-choice`)+`)].map(b => b.dataset.emoji + '=' + b.textContent).join(' ')`); got != "👍=👍 "+rxHeart+"="+rxHeart+" 😂=😂 😮=😮 😢=😢 🙏=🙏" {
		t.Fatalf("the palette holds %q", got)
	}
	alice.rxClick("👍 in the palette", palette+` .react-choice[data-emoji="`+rxThumbs+`"]`)
	i := bob.WaitFor(t, 0, wait, "alice's 👍 on his message", rxReceived(aliceID, askID, rxThumbs))
	if m := bob.Seen()[i].Msg; m.GetTo() != bob.ID || m.GetGroup() != "" || m.GetMsgId() == "" {
		t.Fatalf("alice's reaction reached bob with to %q, group %q, msgId %q", m.GetTo(), m.GetGroup(), m.GetMsgId())
	}
	alice.until("her 👍 under bob's message, the palette closed", rxChipsAre(askID, "[👍] 👍 1 mine")+
		` && document.querySelector(`+quote(palette)+`) === null`)

	// Her answer; bob reacts ❤️ to it: the chip shows live, and the
	// reaction is no message (none shown, the preview still her answer).
	alice.send("sure")
	j := bob.WaitFor(t, 0, wait, "alice's answer", isText("sure"))
	sureID := bob.Seen()[j].Msg.GetMsgId()
	alice.until("a React button on her own message", `document.querySelector(`+quote(rxMsg(sureID)+` > .actions .react-button`)+`) !== null`)
	heartID := rxSend(t, bob, "alice", sureID, rxHeart)
	alice.until("bob's ❤️ under her answer", rxChipsAre(sureID, "["+rxHeart+"] "+rxHeart+" 1"))
	if n := eval[int](alice, `document.querySelectorAll('#messages [data-msg-id]').length`); n != 2 {
		t.Fatalf("%d messages shown after bob's reaction, want 2 (his question and her answer)", n)
	}
	if got := eval[string](alice, `document.querySelector(`+quote(bobConv+` .conv-preview`)+`).textContent`); got != "sure" {
		t.Fatalf("the conversation's preview reads %q after bob's reaction, want her answer", got)
	}

	// Clicking bob's chip reacts with the same emoji.
	alice.rxClick("bob's ❤️ chip", rxMsg(sureID)+` > .reactions > .reaction[data-emoji="`+rxHeart+`"]`)
	bob.WaitFor(t, 0, wait, "alice's ❤️ on her own answer", rxReceived(aliceID, sureID, rxHeart))
	alice.until("❤️ 2, hers among them", rxChipsAre(sureID, "["+rxHeart+"] "+rxHeart+" 2 mine"))
	alice.screenshot("browser-reaction-alice")

	// A reload: the chips come back from history, hers marked.
	alice.reload()
	alice.run("the chat after the reload", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	alice.until("online again", `document.querySelector('#conn-state').dataset.state === 'online'`)
	alice.openConv(bobConv)
	alice.until("her answer from history", hasMessage("sure"))
	alice.until("her 👍 after the reload", rxChipsAre(askID, "[👍] 👍 1 mine"))
	alice.until("the ❤️ after the reload", rxChipsAre(sureID, "["+rxHeart+"] "+rxHeart+" 2 mine"))

	// Her own chip takes her reaction back.
	from := bob.Len()
	alice.rxClick("her 👍 chip", rxMsg(askID)+` > .reactions > .reaction.mine`)
	bob.WaitFor(t, from, wait, "alice's 👍 taken back", rxReceived(aliceID, askID, ""))
	alice.until("no reactions on bob's message", rxChipsAre(askID, ""))
	alice.until("the ❤️ still there", rxChipsAre(sureID, "["+rxHeart+"] "+rxHeart+" 2 mine"))

	// The page never took bob's reaction for a message to mark read.
	for _, e := range bob.Seen() {
		r := e.Receipt
		if r == nil || r.GetStatus() != cimpb.ReceiptStatus_RECEIPT_READ {
			continue
		}
		if r.GetMsgId() == heartID {
			t.Fatalf("alice's page sent a READ for bob's reaction %s", heartID)
		}
		for _, it := range r.GetItems() {
			if it.GetMsgId() == heartID {
				t.Fatalf("alice's page sent a READ for bob's reaction %s", heartID)
			}
		}
	}
}
