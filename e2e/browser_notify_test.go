package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// ntStub replaces the page's Notification with one that records: each
// notification made goes on window.__notes (title, body, tag, closed; its
// onclick is the page's), requestPermission() counts in window.__asked and
// grants, and window.focus() counts in window.__focused. It starts not
// granted ('default'), as a browser that has not asked yet.
const ntStub = `(() => {
	window.__notes = []; window.__asked = 0; window.__focused = 0;
	window.focus = () => { window.__focused++; };
	window.Notification = class {
		static permission = 'default';
		static requestPermission() { window.__asked++; this.permission = 'granted'; return Promise.resolve('granted'); }
		constructor(title, opts = {}) {
			this.title = title; this.body = opts.body; this.tag = opts.tag; this.closed = false; this.onclick = null; this.onclose = null;
			window.__notes.push(this);
		}
		close() { this.closed = true; }
	};
	return true; })()`

// ntNotes is a JavaScript expression for the notifications the page made,
// oldest first, one a line: "<title>|<body>|<tag>".
const ntNotes = `window.__notes.map(n => n.title + '|' + n.body + '|' + n.tag).join('\n')`

// ntUntil waits for the page to have made len(want) notifications in all
// and fails the test unless they are want (worded as ntNotes does). A
// notification made that should not have been shows up here, at the
// latest when the next one that should is waited for.
func (p *page) ntUntil(what string, want ...string) {
	p.t.Helper()
	p.until(what, fmt.Sprintf(`window.__notes.length >= %d`, len(want)))
	if got := eval[string](p, ntNotes); got != strings.Join(want, "\n") {
		p.failed()
		p.t.Fatalf("%s: after %s the page made the notifications\n%s\nwant\n%s", p.name, what, got, strings.Join(want, "\n"))
	}
}

// ntHidden makes the page hidden (a tab in the background) or visible
// again, as the browser would tell it: document.hidden, visibilityState
// and a visibilitychange event.
func (p *page) ntHidden(hidden bool) {
	p.t.Helper()
	js := `(() => { delete document.hidden; delete document.visibilityState;
		document.dispatchEvent(new Event('visibilitychange')); return document.visibilityState; })()`
	want := "visible"
	if hidden {
		js = `(() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
			Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
			document.dispatchEvent(new Event('visibilitychange')); return document.visibilityState; })()`
		want = "hidden"
	}
	if got := eval[string](p, js); got != want {
		p.t.Fatalf("%s: the page is %q, want %q", p.name, got, want)
	}
}

// ntButton is a JavaScript expression for how the account panel shows
// notifications: #notify-button's data-state, its text, "disabled" or
// "enabled", and #notify-on's "checked" or "unchecked" ("-" while hidden),
// joined by "|".
const ntButton = `(() => { const b = document.querySelector('#notify-button'), on = document.querySelector('#notify-on');
	return [b.dataset.state, b.textContent, b.disabled ? 'disabled' : 'enabled',
		document.querySelector('#notify-toggle').hidden ? '-' : on.checked ? 'checked' : 'unchecked'].join('|'); })()`

// TestBrowserNotifications drives the chat page's desktop notifications
// against a real cluster. alice is on the page (the browser's permission
// granted through the DevTools protocol, then Notification replaced by a
// recorder) and on her desktop (the Go SDK; --login-policy platform keeps
// both logged in); bob and carol use the Go SDK. Enable notifications in
// the Account panel asks the browser and then shows them on. A message
// from bob while carol's conversation is open notifies (title bob, the
// text cut to 120 characters, tag his conversation); carol's in the open
// conversation does not while the page is visible, and does while it is
// hidden (and becomes visible again closes it); alice's own messages, from
// the page or the desktop, never. Muted, bob's messages do not notify; in
// a muted group only a message that mentions alice does. Clicking a
// notification focuses the window, opens its conversation and closes it.
// Turned off in the Account panel, nothing notifies until it is on again;
// in a browser without Notification the panel says so and nothing breaks.
func TestBrowserNotifications(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-policy", "platform"}})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	carol := c.Connect(t, "carol")
	desktop := c.Connect(t, "alice", func(cfg *client.Config) { cfg.Platform = "desktop" })
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", false)
	bobKey, carolKey := "user:"+bob.ID, "user:"+carol.ID
	bobConv, carolConv := `[data-conv="`+bobKey+`"]`, `[data-conv="`+carolKey+`"]`

	// The browser grants the page notifications (headless Chromium would
	// never ask): the Account panel shows them on.
	gctx, cancel := context.WithTimeout(alice.ctx, wait)
	_, err := chromedp.CallBrowser(gctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"},
		Setting:    browser.PermissionSettingGranted,
		Origin:     c.Route.URL,
	})
	cancel()
	if err != nil {
		t.Fatalf("grant the page notifications: %v", err)
	}
	alice.until("the permission granted", `typeof Notification === 'function' && Notification.permission === 'granted'`)
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	alice.mnUntil("notifications on, as the browser granted", ntButton, "granted|Notifications on|disabled|checked")
	alice.run("close the account panel",
		chromedp.Click(chromedp.CSS("#account-close")),
		chromedp.WaitNotVisible(chromedp.CSS("#account-panel")))

	// The recorder, not granted yet: carol's message makes no notification.
	if !eval[bool](alice, ntStub) {
		t.Fatal("the Notification recorder is not in place")
	}
	sendSent(t, carol, "alice", "hi alice")
	alice.mnUntil("carol's message unread", muItem(carolConv), "-||1|")

	// Enable notifications: the browser is asked once, and the panel shows
	// them on.
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	alice.mnUntil("the button to enable them", ntButton, "default|Enable notifications|enabled|-")
	alice.run("enable notifications", chromedp.Click(chromedp.CSS("#notify-button")))
	alice.mnUntil("notifications on", ntButton, "granted|Notifications on|disabled|checked")
	if n := eval[int](alice, `window.__asked`); n != 1 {
		t.Fatalf("the page asked the browser %d times for one click", n)
	}
	alice.run("close the account panel",
		chromedp.Click(chromedp.CSS("#account-close")),
		chromedp.WaitNotVisible(chromedp.CSS("#account-panel")))
	if got := eval[string](alice, ntNotes); got != "" {
		t.Fatalf("notifications made before they were allowed:\n%s", got)
	}

	// (1) carol's conversation open, bob writes: a notification of his.
	alice.mnOpen(carolConv)
	alice.until("carol's message", hasMessage("hi alice"))
	sendSent(t, bob, "alice", "hello alice")
	notes := []string{"bob|hello alice|" + bobKey}
	alice.ntUntil("bob's message", notes...)

	// (2) carol writes in the open conversation, the page visible: nothing.
	// bob's next message proves it was seen (and a long one is cut).
	sendSent(t, carol, "alice", "in the open conversation")
	alice.until("carol's message shown", hasMessage("in the open conversation"))
	long := strings.Repeat("0123456789", 20)
	sendSent(t, bob, "alice", long)
	notes = append(notes, "bob|"+long[:119]+"…|"+bobKey)
	alice.ntUntil("bob's long message, cut", notes...)

	// (3) The page hidden: alice's own messages, from the page to carol and
	// from her desktop to bob, make none; carol's, in the open conversation,
	// does now.
	alice.ntHidden(true)
	alice.send("mine, from the page")
	sendSent(t, desktop, bob.ID, "mine, from the desktop")
	sendSent(t, carol, "alice", "while hidden")
	notes = append(notes, "carol|while hidden|"+carolKey)
	alice.ntUntil("carol's message while the page is hidden", notes...)
	alice.mnOpen(bobConv)
	alice.until("the desktop's message shown as hers", `(() => { const m = `+msgWithText("mine, from the desktop")+`; return !!m && m.classList.contains('mine'); })()`)
	// Visible again (carol's conversation open): carol's notification goes.
	alice.mnOpen(carolConv)
	alice.ntHidden(false)
	alice.until("carol's notification closed", `window.__notes[2].closed`)

	// (4) alice mutes bob: his next message makes none; then his plain
	// group message does.
	gid := openGroup(t, ctx, bob, "crew", carol, desktop)
	groupKey := "group:" + gid
	group := `[data-conv="` + groupKey + `"]`
	alice.mnOpen(bobConv)
	alice.until("the Mute button", muMuteShown(false))
	alice.run("mute bob", chromedp.Click(chromedp.CSS("#mute-button")))
	alice.until("bob shown muted", muMuteShown(true))
	alice.mnOpen(carolConv)
	sendSent(t, bob, "alice", "muted hello")
	alice.mnUntil("bob's muted message unread", muItem(bobConv), "muted|🔕|1|")
	if _, err := bob.SendGroup(ctx, gid, "anyone?"); err != nil {
		t.Fatalf("bob writes to the group: %v", err)
	}
	notes = append(notes, "bob in crew|anyone?|"+groupKey)
	alice.ntUntil("bob's group message", notes...)

	// (5) The group muted too: a plain message of it makes none, one that
	// mentions alice does.
	alice.mnOpen(group)
	alice.until("the Mute button in the group", muMuteShown(false))
	alice.run("mute the group", chromedp.Click(chromedp.CSS("#mute-button")))
	alice.until("the group shown muted", muMuteShown(true))
	alice.mnOpen(carolConv)
	if _, err := bob.SendGroup(ctx, gid, "plain"); err != nil {
		t.Fatalf("bob writes to the group: %v", err)
	}
	alice.mnUntil("the plain message unread", muItem(group), "muted|🔕|1|")
	ping := &cimpb.Msg{Group: gid, Kind: cimpb.Kind_KIND_TEXT, Body: []byte("ping @alice"), Mentions: []string{"alice"}}
	if err := bob.SendMsg(ctx, ping); err != nil {
		t.Fatalf("bob mentions alice: %v", err)
	}
	sentMsgID(t, bob, ping.GetClientMsgId(), `"ping @alice"`)
	notes = append(notes, "bob in crew|ping @alice|"+groupKey)
	alice.ntUntil("the mention in the muted group", notes...)

	// (6) Clicking it: the window focused, the group open, the
	// notification closed.
	last := len(notes) - 1
	eval[bool](alice, fmt.Sprintf(`(window.__notes[%d].onclick(), true)`, last))
	alice.until("the group open", `document.querySelector('#conv-title').dataset.conv === `+quote(groupKey)+` &&
		document.querySelector(`+quote(group)+`).getAttribute('aria-current') === 'page'`)
	alice.until("the mention shown", hasMessage("ping @alice"))
	if !eval[bool](alice, fmt.Sprintf(`window.__notes[%d].closed && window.__focused > 0`, last)) {
		t.Fatal("the clicked notification is still open, or the window was not focused")
	}

	// (7) Turned off in the Account panel: carol's message makes none; on
	// again, her next one does.
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	alice.run("turn notifications off", chromedp.Click(chromedp.CSS("#notify-on")))
	alice.mnUntil("notifications off", ntButton, "off|Notifications off|disabled|unchecked")
	if got := eval[string](alice, `localStorage.getItem('gocim.notify')`); got != "off" {
		t.Fatalf("turned off, the page keeps %q", got)
	}
	sendSent(t, carol, "alice", "while off")
	alice.mnUntil("carol's message unread", muItem(carolConv), "-||1|")
	alice.run("turn notifications on", chromedp.Click(chromedp.CSS("#notify-on")))
	alice.mnUntil("notifications on again", ntButton, "granted|Notifications on|disabled|checked")
	sendSent(t, carol, "alice", "on again")
	notes = append(notes, "carol|on again|"+carolKey)
	alice.ntUntil("carol's message after turning them on", notes...)
	alice.screenshot("browser-notify-alice")

	// A browser without Notification: the panel says so, messages come as
	// ever.
	alice.run("close the account panel",
		chromedp.Click(chromedp.CSS("#account-close")),
		chromedp.WaitNotVisible(chromedp.CSS("#account-panel")))
	eval[bool](alice, `(delete window.Notification, typeof window.Notification === 'undefined')`)
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	alice.mnUntil("no notifications here", ntButton+` + '|' + document.querySelector('#notify-button').hidden + '|' + document.querySelector('#notify-hint').textContent`,
		"unsupported|Enable notifications|disabled|-|true|This browser cannot show notifications.")
	sendSent(t, bob, "alice", "still here?")
	alice.mnUntil("bob's message unread", muItem(bobConv), "muted|🔕|2|")
}
