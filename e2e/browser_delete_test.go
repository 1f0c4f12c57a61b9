package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// clearLogin empties the login form's fields (typing appends to what a
// field holds, and the page fills in the last user's name).
func (p *page) clearLogin() {
	p.t.Helper()
	eval[bool](p, `(() => { document.querySelector('#login-user').value = ''; document.querySelector('#login-password').value = ''; return true; })()`)
}

// loginError is a JavaScript test for #login-error reading text.
func loginError(text string) string {
	return `document.querySelector('#login-error').textContent === ` + quote(text)
}

// requested is a JavaScript test for a request to path the page made and
// got the answer of (a resource timing entry; a reload forgets them).
func requested(path string) string {
	return `performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === ` + quote(path) + ` && e.responseEnd > 0)`
}

// deleteEnabled is a JavaScript test for the Delete my account button
// being enabled.
const deleteEnabled = `!document.querySelector('#delete-account').disabled`

// TestBrowserDeleteAccount drives "Delete my account" in the chat page's
// Account panel against a real cluster. alice is on the page ("Keep me
// signed in" checked) and has a conversation with bob (Go SDK). The
// button stays off until the box is ticked and a password typed; a wrong
// password is refused in the panel and alice stays signed in. With the
// right one the page shows the login form saying the account was deleted,
// without logging the session off (no POST /offLine: it went with the
// account) and with nothing kept: a reload shows the form, and the token
// it had, put back, signs nobody in. Her password logs in no more, bob's
// message to "alice" is refused as for an unknown user (9100), and the
// name registers again on the page, as a new account that gets bob's next
// message.
func TestBrowserDeleteAccount(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	c.Register(t, "alice")
	alice := openPage(t, exe, "alice", c.Route.URL+"/", 1280, 800)
	alice.logIn("alice", true)
	aliceID := alice.userID()

	// A conversation, both ways.
	sendSent(t, bob, "alice", "hello alice")
	bobConv := `[data-conv="user:` + bob.ID + `"]`
	alice.openConv(bobConv)
	alice.until("bob's message", hasMessage("hello alice"))
	alice.send("hi bob")
	bob.WaitFor(t, 0, wait, "alice's answer", harness.IsMessage("hi bob"))
	kept := alice.keptToken()
	if kept == "" {
		t.Fatal("no token kept after a login with Keep me signed in")
	}

	// The Account panel: Delete is off until the box is ticked and a
	// password typed.
	alice.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#delete-account")))
	if !eval[bool](alice, `(() => { const p = document.querySelector('#delete-password');
		return p.type === 'password' && p.autocomplete === 'current-password' && !document.querySelector('#delete-confirm').checked; })()`) {
		t.Fatal("#delete-password is not a current-password field, or #delete-confirm is checked at first")
	}
	if eval[bool](alice, deleteEnabled) {
		t.Fatal("Delete my account is enabled with no password and the box unticked")
	}
	alice.run("type a wrong password", typeInto("#delete-password", "not-the-password"))
	if eval[bool](alice, deleteEnabled) {
		t.Fatal("Delete my account is enabled with the box unticked")
	}
	alice.run("tick the box", chromedp.Click(chromedp.CSS("#delete-confirm")))
	alice.until("Delete enabled", deleteEnabled)

	// A wrong password: refused in the panel, the fields cleared, alice
	// still signed in (online, her kept token the same, bob's messages
	// arriving).
	alice.run("delete with a wrong password", chromedp.Click(chromedp.CSS("#delete-account")))
	alice.until("the refusal", accountStatus("error", "Wrong password."))
	alice.until("the fields cleared, Delete off again", `document.querySelector('#delete-password').value === '' &&
		!document.querySelector('#delete-confirm').checked && document.querySelector('#delete-account').disabled`)
	if !eval[bool](alice, `!document.querySelector('#chat-view').hidden && document.querySelector('#conn-state').dataset.state === 'online'`) {
		t.Fatal("a refused deletion left the chat")
	}
	if got := alice.keptToken(); got != kept {
		t.Fatalf("a refused deletion changed the kept token")
	}
	sendSent(t, bob, "alice", "still there?")
	alice.until("bob's message after the refusal", hasMessage("still there?"))
	alice.screenshot("browser-delete-refused-alice")

	// The right password: the login form, saying so, and nothing kept.
	// Every notice the form shows on the way says the account was deleted
	// (the KICK "account deleted" usually beats the route's answer; the
	// page does not call that a log-out).
	eval[bool](alice, `(() => { window.__notices = []; const s = document.querySelector('#login-error');
		new MutationObserver(() => window.__notices.push(s.textContent)).observe(s, {childList: true, characterData: true, subtree: true});
		return true; })()`)
	alice.run("delete the account",
		typeInto("#delete-password", harness.Password),
		chromedp.Click(chromedp.CSS("#delete-confirm")),
		chromedp.WaitEnabled(chromedp.CSS("#delete-account")),
		chromedp.Click(chromedp.CSS("#delete-account")))
	alice.showsLoginForm("after the deletion")
	alice.until("the notice", loginError("Your account was deleted."))
	for _, n := range eval[[]string](alice, `window.__notices`) {
		if n != "Your account was deleted." {
			t.Fatalf("the login form said %q on the way", n)
		}
	}
	if !eval[bool](alice, `document.querySelector('#account-panel').hidden && document.querySelector('#account-button').hidden && document.querySelector('#me').textContent === ''`) {
		t.Fatal("the account panel, the Account button or the user's name still shows after the deletion")
	}
	alice.until("the deletion answered", requested("/account/delete"))
	if eval[bool](alice, `performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === '/offLine')`) {
		t.Fatal("the page logged off (POST /offLine) a session that went with the account")
	}
	alice.screenshot("browser-delete-alice")

	// A reload does not sign her in again; the token the page had, put
	// back, is refused (her remembered logins went with the account).
	alice.reload()
	alice.showsLoginForm("a reload after the deletion")
	eval[bool](alice, `(localStorage.setItem('gocim.keep', JSON.stringify({userName: 'alice', token: `+quote(kept)+`, expiresAt: 0})), true)`)
	alice.reload()
	alice.showsLoginForm("the old token put back")
	alice.until("why", loginError("Signed out: please log in again."))

	// Her password logs in no more.
	alice.clearLogin()
	alice.run("log in with the old password",
		typeInto("#login-user", "alice"),
		typeInto("#login-password", harness.Password),
		chromedp.Click(chromedp.CSS("#login-button")))
	alice.until("the refusal", loginError("Wrong user name or password, or no such user."))
	if !eval[bool](alice, `document.querySelector('#chat-view').hidden`) {
		t.Fatal("the deleted account's password opened the chat")
	}

	// bob's message to "alice" finds nobody.
	id, err := bob.Send(ctx, "alice", "are you gone?")
	if err != nil {
		t.Fatal(err)
	}
	k := bob.WaitFor(t, 0, wait, "the refusal of the message to the deleted alice", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.GetClientMsgId() == id
	})
	if code := bob.Seen()[k].Err.GetCode(); code != int32(codes.BadAccount) {
		t.Fatalf("bob's message to the deleted alice answered %d, want %d", code, codes.BadAccount)
	}

	// The name is free: registered again on the page, a new account, which
	// gets bob's next message.
	alice.clearLogin()
	alice.signUp("alice")
	alice.run("the chat", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	newID := alice.userID()
	if newID == aliceID {
		t.Fatalf("registering alice again gave id %q (the deleted one: %s)", newID, aliceID)
	}
	sendSent(t, bob, "alice", "welcome back")
	alice.openConv(bobConv)
	alice.until("bob's message to the new alice", hasMessage("welcome back"))
	if eval[bool](alice, hasMessage("hello alice")) {
		t.Fatal("the new alice sees the deleted account's messages")
	}
}
