package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/e2e/harness"
)

// owMembers is a JavaScript expression for the open members list (null
// while it is hidden): its items sorted, each "<user id>", then " owner"
// when it is marked the owner (data-owner="true" and a visible
// .owner-mark reading "owner"), then " [<aria-label>]" for a visible
// .make-owner button reading "Make owner" (" [<aria-label>, disabled]"
// while it is disabled), joined by ", ". "7 owner, 8 [Make bob the
// owner]": the user 7 owns the group, 8 may be made its owner.
const owMembers = `(() => { const l = document.querySelector('#members'); if (l.hidden) return null;
	return [...l.querySelectorAll('li')].map(li => {
		const mark = li.querySelector('.owner-mark'), b = li.querySelector('.make-owner');
		let s = li.dataset.user;
		if (li.dataset.owner === 'true' && mark && mark.checkVisibility() && mark.textContent === 'owner') s += ' owner';
		else if (li.dataset.owner !== undefined || mark) s += ' (a broken mark)';
		if (b && b.checkVisibility() && b.textContent === 'Make owner') s += ' [' + b.getAttribute('aria-label') + (b.disabled ? ', disabled' : '') + ']';
		else if (b) s += ' (a broken button)';
		return s; }).sort().join(', '); })()`

// owList is what owMembers reads for these items ("<user id>[ owner][
// [Make <name> the owner]]"), sorted as it sorts them.
func owList(items ...string) string {
	items = slices.Clone(items)
	slices.Sort(items)
	return strings.Join(items, ", ")
}

// owToast is a JavaScript expression for the text of the page's latest
// notice.
const owToast = `document.querySelector('#toast').textContent`

// owOwner is the owner of group gid as the route tells u (GET /groups/:gid).
func owOwner(t *testing.T, u *harness.User, gid string) string {
	t.Helper()
	g, err := u.Group(ctxT(t), gid)
	if err != nil {
		t.Fatalf("GET /groups/%s as %s: %v", gid, u.Name, err)
	}
	return g.Owner
}

// owToggleMembers clicks the Members button and waits for the
// list to be hidden (open false) or shown.
func (p *page) owToggleMembers(open bool) {
	p.t.Helper()
	p.run("the Members button", chromedp.Click(chromedp.CSS("#members-button")))
	if open {
		p.until("the members list open", `!document.querySelector('#members').hidden && document.querySelector('#members-button').getAttribute('aria-expanded') === 'true'`)
	} else {
		p.until("the members list closed", `document.querySelector('#members').hidden && document.querySelector('#members-button').getAttribute('aria-expanded') === 'false'`)
	}
}

// TestBrowserGroupOwner drives a group's hand-over on the chat page
// against a real cluster. alice (on the page) creates a group there; bob
// and carol (Go SDK) join it. Her members list marks her the owner and
// offers "Make owner" on bob and carol. carol leaves meanwhile: making
// her the owner is refused with the route's reason, and the list, loaded
// again, has her gone. Making bob the owner: the route says he owns the
// group, the page says so, the mark moves to him and no "Make owner" is
// left on her page, also when the list is opened again. bob hands the
// group back (Go SDK): nobody tells the page, which learns it when the
// list is opened next.
func TestBrowserGroupOwner(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	carol := c.Connect(t, "carol")
	c.Register(t, "alice")
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", false)
	aliceID := alice.userID()

	// alice creates an open group on the page; it opens; bob and carol join.
	alice.run("create the group",
		typeInto("#group-name", "crew"),
		chromedp.Click(chromedp.CSS("#new-group")))
	alice.until("the new group open", `(document.querySelector('#conv-title').dataset.conv || '').startsWith('group:')`)
	gid := strings.TrimPrefix(eval[string](alice, `document.querySelector('#conv-title').dataset.conv`), "group:")
	for _, u := range []*harness.User{bob, carol} {
		if _, err := u.JoinGroup(ctx, gid); err != nil {
			t.Fatalf("%s joins group %s: %v", u.Name, gid, err)
		}
	}
	if got := owOwner(t, bob, gid); got != aliceID {
		t.Fatalf("the route says group %s is owned by %q, want alice (%s)", gid, got, aliceID)
	}

	// Her members list: she is the owner; bob and carol may become it.
	alice.owToggleMembers(true)
	alice.mnUntil("alice marked the owner, Make owner on bob and carol", owMembers,
		owList(aliceID+" owner", bob.ID+" [Make bob the owner]", carol.ID+" [Make carol the owner]"))

	// carol leaves; the page does not know: making her the owner is
	// refused with the route's reason, and the list is loaded again.
	if err := carol.LeaveGroup(ctx, gid); err != nil {
		t.Fatalf("carol leaves group %s: %v", gid, err)
	}
	alice.run("make carol the owner", chromedp.Click(chromedp.CSS(`#members li[data-user="`+carol.ID+`"] .make-owner`)))
	// (The route words it as it likes: "carol is not a member of group
	// 3", "the new owner must be a member of group 3".)
	alice.until("the refusal", owToast+`.startsWith('Cannot hand over the group: ') && `+owToast+`.includes(`+quote(" member of group "+gid)+`)`)
	alice.mnUntil("the list without carol", owMembers, owList(aliceID+" owner", bob.ID+" [Make bob the owner]"))
	if got := owOwner(t, bob, gid); got != aliceID {
		t.Fatalf("after the refusal the route says group %s is owned by %q, want alice (%s)", gid, got, aliceID)
	}

	// Making bob the owner: done at the route; the mark moves to him and
	// no Make owner is left (the focus back on the Members button, as the
	// button clicked went).
	alice.run("make bob the owner", chromedp.Click(chromedp.CSS(`#members li[data-user="`+bob.ID+`"] .make-owner`)))
	alice.mnUntil("the notice", owToast, "bob owns crew now.")
	if got := owOwner(t, bob, gid); got != bob.ID {
		t.Fatalf("after the hand-over the route says group %s is owned by %q, want bob (%s)", gid, got, bob.ID)
	}
	alice.mnUntil("bob marked the owner, no Make owner", owMembers, owList(aliceID, bob.ID+" owner"))
	if n := eval[int](alice, `document.querySelectorAll('.make-owner').length`); n != 0 {
		t.Fatalf("%d Make owner buttons left on alice's page", n)
	}
	if !eval[bool](alice, `document.activeElement === document.querySelector('#members-button')`) {
		t.Fatalf("the focus is on %s after the hand-over, not on the Members button", eval[string](alice, `document.activeElement?.outerHTML.slice(0, 80) || 'nothing'`))
	}
	alice.screenshot("browser-owner-alice")

	// Opened again: the same, as the route has it.
	alice.owToggleMembers(false)
	alice.owToggleMembers(true)
	alice.mnUntil("bob the owner, read again", owMembers, owList(aliceID, bob.ID+" owner"))

	// bob hands it back; the page learns it when the list opens next.
	if _, err := bob.TransferGroup(ctx, gid, "alice"); err != nil {
		t.Fatalf("bob hands group %s back to alice: %v", gid, err)
	}
	alice.owToggleMembers(false)
	alice.owToggleMembers(true)
	alice.mnUntil("alice the owner again, Make owner on bob", owMembers, owList(aliceID+" owner", bob.ID+" [Make bob the owner]"))
}
