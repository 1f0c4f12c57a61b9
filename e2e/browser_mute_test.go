package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// muMuteShown is a JavaScript test for the open conversation's mute
// controls showing it muted (on) or not, with no change under way: the
// button reads Unmute (aria-pressed, data-muted) and #mute-until says
// until when, or it reads Mute and the duration to choose is offered.
func muMuteShown(on bool) string {
	text, pressed := "Mute", "false"
	if on {
		text, pressed = "Unmute", "true"
	}
	return fmt.Sprintf(`(() => { const b = document.querySelector('#mute-button'), f = document.querySelector('#mute-for'), u = document.querySelector('#mute-until');
		return !document.querySelector('#mute-tools').hidden && !b.disabled && b.textContent === %s && b.getAttribute('aria-pressed') === %s &&
			b.dataset.muted === %s && f.hidden === %t && u.hidden === %t; })()`, quote(text), quote(pressed), quote(pressed), on, !on)
}

// muItem is a JavaScript expression for how the conversation list shows
// the item sel names: "muted" when it has the class ("-" when not), then
// the visible .muted-icon, .unread count and .mention-badge ("" for each
// not shown), joined by "|"; null when the item is not listed.
// "muted|🔕|2|@": muted, two unread, one of them mentioning the user.
func muItem(sel string) string {
	return `(() => { const b = document.querySelector(` + quote(sel) + `); if (!b) return null;
		const shown = (s) => { const x = b.querySelector(s); return x && x.checkVisibility() ? x.textContent : ''; };
		return [b.classList.contains('muted') ? 'muted' : '-', shown('.muted-icon'), shown('.unread'), shown('.mention-badge')].join('|'); })()`
}

// muTitle is a JavaScript expression for the document title.
const muTitle = `document.title`

// muRoute is what the route lists (GET /mutes, through u's SDK) as u's
// mutes: "user:<id>" or "group:<gid>", with "~<hours>h" for one that ends
// (rounded to the hour), joined by ",".
func muRoute(t *testing.T, u *harness.User) string {
	t.Helper()
	ms, err := u.Mutes(ctxT(t))
	if err != nil {
		t.Fatalf("GET /mutes as %s: %v", u.Name, err)
	}
	var out []string
	for _, m := range ms {
		s := "user:" + m.UserID
		if m.Group != "" {
			s = "group:" + m.Group
		}
		if !m.Until.IsZero() {
			s += fmt.Sprintf("~%dh", time.Until(m.Until).Round(time.Hour)/time.Hour)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// muMuteFor chooses how long the next Mute lasts (#mute-for's value, in
// seconds; "0": until unmuted).
func (p *page) muMuteFor(seconds string) {
	p.t.Helper()
	if got := eval[string](p, `(() => { const f = document.querySelector('#mute-for'); f.value = `+quote(seconds)+`; return f.value; })()`); got != seconds {
		p.t.Fatalf("%s: #mute-for took %q, want %q", p.name, got, seconds)
	}
}

// TestBrowserMute drives muting on the chat page against a real cluster.
// alice is on the page and on her desktop (the Go SDK, through which the
// test reads the route's list; --login-policy platform keeps both logged
// in); bob and carol use the Go SDK. alice mutes bob with the header's
// button: the route lists him; his next message shows unread in a list
// item marked muted (🔕, the count greyed) and does not count in the
// document title. A group muted for an hour: a plain message of it does
// not count in the title, one that mentions alice does. Unmuting bob with
// the button clears the marks, and his messages count again. Muted again,
// the state comes back from the route after a reload, and the Account
// panel lists both muted conversations; Unmute there unmutes the group.
func TestBrowserMute(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-policy", "platform"}})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	carol := c.Connect(t, "carol")
	desktop := c.Connect(t, "alice", func(cfg *client.Config) { cfg.Platform = "desktop" })
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)

	// bob writes; alice opens the conversation: Mute is offered there.
	sendSent(t, bob, "alice", "hello alice")
	bobConv := `[data-conv="user:` + bob.ID + `"]`
	alice.openConv(bobConv)
	alice.until("bob's message", hasMessage("hello alice"))
	alice.until("the Mute button", muMuteShown(false))
	alice.mnUntil("bob's item, not muted", muItem(bobConv), "-|||")

	// Mute bob, until unmuted (the default): the route lists him.
	alice.run("mute bob", chromedp.Click(chromedp.CSS("#mute-button")))
	alice.until("bob shown muted", muMuteShown(true))
	alice.mnUntil("no end shown", `document.querySelector('#mute-until').textContent`, "🔕")
	if got, want := muRoute(t, desktop), "user:"+bob.ID; got != want {
		t.Fatalf("the route lists alice's mutes as %q, want %q", got, want)
	}
	alice.mnUntil("bob's item muted", muItem(bobConv), "muted|🔕||")

	// Another conversation open (carol's), bob writes again: unread, marked
	// muted, and not in the document title.
	sendSent(t, carol, "alice", "hi alice")
	carolConv := `[data-conv="user:` + carol.ID + `"]`
	alice.openConv(carolConv)
	alice.until("carol's message", hasMessage("hi alice"))
	alice.mnUntil("nothing unread", muTitle, "gocim chat")
	sendSent(t, bob, "alice", "are you there?")
	alice.mnUntil("bob's message unread, muted", muItem(bobConv), "muted|🔕|1|")
	alice.mnUntil("the title without bob's message", muTitle, "gocim chat")
	if label := eval[string](alice, `document.querySelector(`+quote(bobConv)+`).getAttribute('aria-label')`); !strings.HasSuffix(label, ", muted") {
		t.Fatalf("bob's item reads %q, nothing about the mute", label)
	}

	// A group: a message of it counts in the title until alice opens it;
	// then she mutes it for an hour.
	gid := openGroup(t, ctx, bob, "crew", carol, desktop)
	group := `[data-conv="group:` + gid + `"]`
	if _, err := bob.SendGroup(ctx, gid, "first"); err != nil {
		t.Fatalf("bob writes to the group: %v", err)
	}
	alice.mnUntil("the group unread, not muted", muItem(group), "-||1|")
	alice.mnUntil("the title counts it", muTitle, "(1) gocim chat")
	if eval[bool](alice, `(() => { const bg = (s) => getComputedStyle(document.querySelector(s + ' .unread')).backgroundColor;
		return bg(`+quote(bobConv)+`) === bg(`+quote(group)+`); })()`) {
		t.Fatal("the muted conversation's unread count looks like the group's, which is not muted")
	}
	alice.openConv(group)
	alice.until("the group's message", hasMessage("first"))
	alice.until("the Mute button in the group", muMuteShown(false))
	alice.muMuteFor("3600")
	alice.run("mute the group for an hour", chromedp.Click(chromedp.CSS("#mute-button")))
	alice.until("the group shown muted", muMuteShown(true))
	if got := eval[string](alice, `document.querySelector('#mute-until').textContent`); !strings.HasPrefix(got, "🔕 until ") {
		t.Fatalf("#mute-until reads %q for a mute of an hour", got)
	}
	if got, want := muRoute(t, desktop), "user:"+bob.ID+",group:"+gid+"~1h"; got != want {
		t.Fatalf("the route lists alice's mutes as %q, want %q", got, want)
	}

	// With carol's conversation open: a plain group message counts unread
	// but not in the title; one that mentions alice does both.
	alice.openConv(carolConv)
	alice.mnUntil("the title, all read", muTitle, "gocim chat")
	if _, err := bob.SendGroup(ctx, gid, "plain"); err != nil {
		t.Fatalf("bob writes to the group: %v", err)
	}
	alice.mnUntil("the group's message unread, muted", muItem(group), "muted|🔕|1|")
	alice.mnUntil("the title without it", muTitle, "gocim chat")
	ping := &cimpb.Msg{Group: gid, Kind: cimpb.Kind_KIND_TEXT, Body: []byte("ping @alice"), Mentions: []string{"alice"}}
	if err := bob.SendMsg(ctx, ping); err != nil {
		t.Fatalf("bob mentions alice: %v", err)
	}
	sentMsgID(t, bob, ping.GetClientMsgId(), `"ping @alice"`)
	alice.mnUntil("the mention unread in the muted group", muItem(group), "muted|🔕|2|@")
	alice.mnUntil("the title counts the mention only", muTitle, "(1) gocim chat")
	alice.screenshot("browser-mute-alice")

	// Unmute bob with the header's button: the marks go, and his next
	// message counts in the title again.
	alice.openConv(bobConv)
	alice.until("bob shown muted", muMuteShown(true))
	alice.run("unmute bob", chromedp.Click(chromedp.CSS("#mute-button")))
	alice.until("bob shown unmuted", muMuteShown(false))
	alice.mnUntil("bob's item not muted", muItem(bobConv), "-|||")
	if got, want := muRoute(t, desktop), "group:"+gid+"~1h"; got != want {
		t.Fatalf("after the unmute the route lists alice's mutes as %q, want %q", got, want)
	}
	alice.openConv(carolConv)
	sendSent(t, bob, "alice", "still there?")
	alice.mnUntil("bob's message unread, not muted", muItem(bobConv), "-||1|")
	alice.mnUntil("the title counts it", muTitle, "(2) gocim chat")

	// Muted again; after a reload the page has it from the route.
	alice.openConv(bobConv)
	alice.muMuteFor("0")
	alice.run("mute bob again", chromedp.Click(chromedp.CSS("#mute-button")))
	alice.until("bob shown muted again", muMuteShown(true))
	eval[bool](alice, `window.muOld = true`)
	alice.reload()
	alice.until("the new page", `window.muOld === undefined`)
	alice.run("the chat after the reload", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	alice.until("online again", `document.querySelector('#conn-state').dataset.state === 'online'`)
	alice.mnUntil("bob's item muted after the reload", muItem(bobConv), "muted|🔕||")
	alice.mnUntil("the group's item muted after the reload", muItem(group), "muted|🔕||")
	alice.openConv(bobConv)
	alice.until("bob shown muted after the reload", muMuteShown(true))

	// The Account panel lists both; Unmute there unmutes the group.
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	listed := `#muted-list li[data-mute="group:` + gid + `"]`
	// (When the group's mute ends shows as the browser's locale has it.)
	alice.mnUntil("the muted conversations listed", `[...document.querySelectorAll('#muted-list li')].map(l => {
		const until = l.querySelector('.muted-until').textContent;
		return l.dataset.mute + '=' + l.querySelector('.muted-name').textContent + ' ' + (until === 'until you unmute' ? 'for good' : /^until .*[0-9]/.test(until) ? 'for a while' : until); }).join(', ')`,
		"user:"+bob.ID+"=bob for good, group:"+gid+"=# crew for a while")
	if !eval[bool](alice, `document.querySelector('#no-muted').hidden`) {
		t.Fatal("the account panel says nothing is muted")
	}
	alice.run("unmute the group in the account panel", chromedp.Click(chromedp.CSS(listed+" button.unmute")))
	alice.until("the outcome", accountStatus("ok", "You unmuted crew."))
	alice.mnUntil("only bob listed", `[...document.querySelectorAll('#muted-list li')].map(l => l.dataset.mute).join(',')`, "user:"+bob.ID)
	alice.mnUntil("the group's item not muted", muItem(group), "-|||")
	if got, want := muRoute(t, desktop), "user:"+bob.ID; got != want {
		t.Fatalf("after the Account panel's Unmute the route lists alice's mutes as %q, want %q", got, want)
	}
	alice.run("close the account panel",
		chromedp.Click(chromedp.CSS("#account-close")),
		chromedp.WaitNotVisible(chromedp.CSS("#account-panel")))
}
