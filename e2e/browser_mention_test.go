package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// mnBadges is a JavaScript expression for the badges of the conversation
// sel names in the list: "<the visible .mention-badge's text>|<the visible
// .unread count>", "" for each not shown (null when the item is not
// listed). "@|2": two unread, one of them mentioning the user.
func mnBadges(sel string) string {
	return `(() => { const b = document.querySelector(` + quote(sel) + `); if (!b) return null;
		const at = b.querySelector('.mention-badge'); const n = b.querySelector('.unread');
		return (at && at.checkVisibility() ? at.textContent : '') + '|' + (n && n.checkVisibility() ? n.textContent : ''); })()`
}

// mnMarks is a JavaScript expression for how the open conversation shows
// the message whose .body reads text (trimmed, see msgWithText): "me" when
// it is marked .mention-me ("-" when not), then its .mention spans' texts
// joined by "," (null when the message is not shown). "me @alice": it
// mentions the user, and "@alice" is highlighted.
func mnMarks(text string) string {
	return `(() => { const m = ` + msgWithText(text) + `; if (!m) return null;
		return (m.classList.contains('mention-me') ? 'me' : '-') + ' ' + [...m.querySelectorAll(':scope > .body .mention')].map(s => s.textContent).join(','); })()`
}

// mnUntil waits for the JavaScript expression js to equal want (a string)
// and, when it does not in time, fails the test with what it was.
func (p *page) mnUntil(what, js, want string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(`+js+`) === `+quote(want), chromedp.WithPollingTimeout(wait))); err != nil {
		p.failed()
		p.t.Fatalf("%s: waiting for %s: %v; it is %v, want %q", p.name, what, err, eval[any](p, js), want)
	}
}

// mnOpen opens the conversation sel names (on a wide screen) with a click
// made in the page, found again on each try: the list is drawn anew
// whenever something in it changes (a name, presence, a preview), which
// can take a node from under chromedp's click.
func (p *page) mnOpen(sel string) {
	p.t.Helper()
	p.until("conversation "+sel+" open", `(() => { const b = () => document.querySelector(`+quote(sel)+`);
		if (b() && b().getAttribute('aria-current') !== 'page') b().click();
		return b()?.getAttribute('aria-current') === 'page' && document.querySelector('#conv-title').dataset.conv === b().dataset.conv; })()`)
}

// mnGroupMsg matches a group message of group gid whose body, trimmed, is
// text.
func mnGroupMsg(gid, text string) func(client.Event) bool {
	return func(e client.Event) bool {
		return isText(text)(e) && e.Msg.GetGroup() == gid
	}
}

// mnMentions waits for u to get the group message of gid reading text and
// fails the test unless it mentions exactly want (user ids, in order).
func mnMentions(t *testing.T, u *harness.User, gid, text string, want ...string) {
	t.Helper()
	i := u.WaitFor(t, 0, wait, "the group message "+quote(text), mnGroupMsg(gid, text))
	if got := u.Seen()[i].Msg.GetMentions(); !slices.Equal(got, want) {
		t.Fatalf("%s got %q with mentions %q, want %q", u.Name, text, got, want)
	}
}

// TestBrowserMention drives mentions on the chat page against a real
// cluster. bob and carol (Go SDK) and alice (on the page) are a group.
// While alice has her conversation with carol open, carol writes in the
// group (unread, no mention) and bob mentions alice: the group shows "@"
// beside its unread count. Opening it shows bob's message marked as
// mentioning her with "@alice" highlighted, carol's not, and the "@"
// goes with the unread count. What alice types mentions the members its
// "@name" words name, by id: "@bob" does, "@nobody" (no member) does not,
// and "@Carol?" is carol (case and trailing punctuation aside). After a
// reload history marks the same; in another browser, with nothing saved,
// her own messages come from the group's history too.
func TestBrowserMention(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	carol := c.Connect(t, "carol")
	c.Register(t, "alice")
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)
	aliceID := alice.userID()

	// bob's group, carol in it; alice joins on the page.
	gid := openGroup(t, ctx, bob, "lunch", carol)
	group := `[data-conv="group:` + gid + `"]`
	alice.run("join the group",
		typeInto("#group-id", gid),
		chromedp.Click(chromedp.CSS("#join-group")))
	alice.until("the group listed", `document.querySelector(`+quote(group)+`) !== null`)

	// Another conversation open: carol's.
	if _, err := carol.Send(ctx, "alice", "are you coming?"); err != nil {
		t.Fatalf("carol writes to alice: %v", err)
	}
	alice.mnOpen(`[data-conv="user:` + carol.ID + `"]`)
	alice.until("carol's message", hasMessage("are you coming?"))

	// carol's group message: unread, no mention.
	const plain = "who is in?"
	if _, err := carol.SendGroup(ctx, gid, plain); err != nil {
		t.Fatalf("carol writes to the group: %v", err)
	}
	alice.mnUntil("one unread in the group, no @", mnBadges(group), "|1")

	// bob mentions alice (by name: the route makes it her id).
	const ask = "lunch @alice?"
	m := &cimpb.Msg{Group: gid, Kind: cimpb.Kind_KIND_TEXT, Body: []byte(ask), Mentions: []string{"alice"}}
	if err := bob.SendMsg(ctx, m); err != nil {
		t.Fatalf("bob sends %q: %v", ask, err)
	}
	sentMsgID(t, bob, m.GetClientMsgId(), quote(ask))
	mnMentions(t, carol, gid, ask, aliceID)
	alice.mnUntil("the group's @ beside two unread", mnBadges(group), "@|2")
	if got := eval[string](alice, mnBadges(`[data-conv="user:`+carol.ID+`"]`)); got != "|" {
		t.Fatalf("carol's conversation, open, shows badges %q", got)
	}
	if label := eval[string](alice, `document.querySelector(`+quote(group)+`).getAttribute('aria-label')`); !strings.Contains(label, "mentions you") {
		t.Fatalf("the group's item reads %q, nothing about the mention", label)
	}

	// Opening the group: bob's message marked and "@alice" highlighted,
	// carol's not; the badges go.
	alice.mnOpen(group)
	alice.mnUntil("bob's message marked", mnMarks(ask), "me @alice")
	if got := eval[any](alice, mnMarks(plain)); got != "- " {
		t.Fatalf("carol's message, no mention, shows as %v", got)
	}
	alice.mnUntil("the group read: no badges", mnBadges(group), "|")

	// alice mentions bob, and somebody who is no member.
	const hi = "hi @bob and @nobody"
	alice.send(hi)
	mnMentions(t, bob, gid, hi, bob.ID)
	mnMentions(t, carol, gid, hi, bob.ID)
	alice.mnUntil("@bob highlighted in her message, @nobody not", mnMarks(hi), "- @bob")

	// Case and trailing punctuation aside.
	const ok = "ok @Carol?"
	alice.send(ok)
	mnMentions(t, carol, gid, ok, carol.ID)
	alice.mnUntil("@Carol highlighted, the ? not", mnMarks(ok), "- @Carol")
	if got := eval[string](alice, `(() => { const b = `+msgWithText(ok)+`.querySelector(':scope > .body'); return b.textContent.trim(); })()`); got != ok {
		t.Fatalf("her message reads %q, want %q", got, ok)
	}
	alice.screenshot("browser-mention-alice")

	// A reload: history marks bob's message the same.
	eval[bool](alice, `window.mnOld = true`)
	alice.reload()
	alice.until("the new page", `window.mnOld === undefined`)
	alice.run("the chat after the reload", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	alice.until("online again", `document.querySelector('#conn-state').dataset.state === 'online'`)
	alice.mnOpen(group)
	alice.mnUntil("bob's message marked, from history", mnMarks(ask), "me @alice")
	if got := eval[any](alice, mnMarks(plain)); got != "- " {
		t.Fatalf("carol's message, no mention, shows as %v after the reload", got)
	}
	if got := eval[string](alice, mnBadges(group)); got != "|" {
		t.Fatalf("after the reload the group shows badges %q: history is never unread", got)
	}

	// Another browser, nothing saved in it: her own messages come from the
	// route's group history (her copies in her inbox, --login-policy kick).
	laptop := openPage(t, exe, "alice-laptop", c.Route.URL+"/", 1280, 800)
	laptop.logIn("alice", false)
	laptop.run("the chat", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	laptop.mnOpen(group)
	laptop.mnUntil("bob's message, from history", mnMarks(ask), "me @alice")
	laptop.mnUntil("her own message, from history", mnMarks(hi), "- @bob")
	if !eval[bool](laptop, msgWithText(ok)+`?.classList.contains('mine') === true`) {
		t.Fatalf("her message %q is not shown as hers on another browser", ok)
	}
}
