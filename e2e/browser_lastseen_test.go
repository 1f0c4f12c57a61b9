package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/e2e/harness"
)

// lsHeader is a JavaScript expression for how the open conversation's
// header shows its peer: "<data-presence>|<text>|seen" when #conv-presence
// has a data-last-seen ("-" when not), null while it is hidden.
// "offline|last seen just now|seen": offline, and the last seen is known.
const lsHeader = `(() => { const p = document.querySelector('#conv-presence'); if (p.hidden) return null;
	return [p.dataset.presence, p.textContent, p.dataset.lastSeen ? 'seen' : '-'].join('|'); })()`

// lsLastSeen is the header's data-last-seen (unix ms; 0 when it has none).
func (p *page) lsLastSeen() int64 {
	p.t.Helper()
	s := eval[string](p, `document.querySelector('#conv-presence').dataset.lastSeen || '0'`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.t.Fatalf("%s: data-last-seen %q is not a number", p.name, s)
	}
	return n
}

// lsBetween fails the test unless the header's data-last-seen lies
// between lo and hi (unix ms, the test's clock: the route's, on this
// machine) and returns it.
func (p *page) lsBetween(what string, lo, hi int64) int64 {
	p.t.Helper()
	seen := p.lsLastSeen()
	if seen < lo || seen > hi {
		p.t.Fatalf("%s: data-last-seen is %d (%s), not between %d and %d, when the test closed bob and saw him offline",
			what, seen, time.UnixMilli(seen).Format(time.StampMilli), lo, hi)
	}
	return seen
}

// TestBrowserLastSeen drives "last seen" on the chat page against a real
// cluster. alice is on the page, bob on the Go SDK. With bob online the
// header of her conversation with him reads "online"; bob logs off (Close)
// and, from the live change, it reads "last seen just now" with
// data-last-seen the time he went (between the test's times around the
// close); after a reload (the SUBSCRIBE snapshot, the time the route
// recorded) it reads the same. dave, registered but never logged in, is
// just "offline". bob back online: "online" again, the last seen gone.
func TestBrowserLastSeen(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	daveID := c.Register(t, "dave")
	if daveID == "" {
		t.Fatal("dave was registered already")
	}
	c.Register(t, "alice")
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)

	// bob writes; alice opens the conversation: he is online.
	sendSent(t, bob, "alice", "hello alice")
	bobConv := `[data-conv="user:` + bob.ID + `"]`
	alice.mnOpen(bobConv)
	alice.until("bob's message", hasMessage("hello alice"))
	alice.mnUntil("bob online", lsHeader, "online|online|-")

	// bob logs off: "last seen just now", at the time he went.
	before := time.Now().UnixMilli()
	if err := bob.Close(ctx); err != nil {
		t.Fatalf("bob logs off: %v", err)
	}
	alice.mnUntil("bob last seen just now", lsHeader, "offline|last seen just now|seen")
	after := time.Now().UnixMilli()
	live := alice.lsBetween("the live change", before, after)
	if title := eval[string](alice, `document.querySelector('#conv-presence').title`); title == "" {
		t.Fatal("#conv-presence has no title")
	}
	if got := eval[string](alice, `document.querySelector(`+quote(bobConv)+`).dataset.presence`); got != "offline" {
		t.Fatalf("bob's item in the list has data-presence %q, want offline", got)
	}
	alice.screenshot("browser-lastseen-alice")

	// A reload: the page knows only the snapshot, which says the same.
	alice.reload()
	alice.until("alice online again", `document.querySelector('#conn-state').dataset.state === 'online'`)
	alice.mnOpen(bobConv)
	alice.mnUntil("bob last seen just now, after the reload", lsHeader, "offline|last seen just now|seen")
	if snap := alice.lsBetween("the snapshot", before, time.Now().UnixMilli()); snap < live-1000 || snap > live+1000 {
		t.Fatalf("after the reload data-last-seen is %d, %d ms from the live change's %d", snap, snap-live, live)
	}

	// dave, never logged in: just "offline".
	alice.run("chat with dave", typeInto("#new-chat-user", daveID), chromedp.Click(chromedp.CSS("#new-chat")))
	alice.mnUntil("dave's conversation open", `document.querySelector('#conv-title').dataset.conv`, "user:"+daveID)
	alice.mnUntil("dave offline, never seen", lsHeader, "offline|offline|-")

	// bob back: "online", no last seen.
	c.Connect(t, "bob")
	alice.mnOpen(bobConv)
	alice.mnUntil("bob online again", lsHeader, "online|online|-")
}
