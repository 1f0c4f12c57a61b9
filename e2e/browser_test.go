package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/codes"
)

// chromium finds Debian's Chromium (scripts/deps.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "Chromium")
	return ""
}

// page is one browser (its own Chromium process, so its own storage and a
// window that is always the visible one) showing the route's chat page.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// openPage starts a headless Chromium with a window of w×h pixels and
// loads url. It is stopped when the test ends.
func openPage(t *testing.T, exe, name, url string, w, h int) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(w, h),
		// This machine's network is closed: no background calls to Google.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	p := &page{t: t, name: name, ctx: ctx}
	// The first action starts the browser, which lives as long as the
	// context of that action: not one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: start Chromium: %v", name, err)
	}
	p.run("open the page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#login-user")))
	return p
}

func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.failed()
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
}

// failed saves a screenshot of the page as it was when a step failed.
func (p *page) failed() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p.save("failed-"+p.name, png)
	}
}

// until waits for the JavaScript expression js to be true.
func (p *page) until(what, js string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(wait))); err != nil {
		p.failed()
		p.t.Fatalf("%s: waiting for %s: %v", p.name, what, err)
	}
}

// eval returns the value of js in p.
func eval[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, js, err)
	}
	return v
}

// typeInto focuses the field sel names and types text into it.
// (chromedp.SendKeys reads the node's attributes unlocked while DOM events
// change them: a data race in chromedp v0.23.1 that -race reports.)
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	// Enabled too: the composer stays disabled until a conversation is
	// open, and starting a chat by name asks the route first.
	return chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.WaitEnabled(chromedp.CSS(sel)),
		chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(text))
}

// quote is a JavaScript string literal of s.
func quote(s string) string { return fmt.Sprintf("%q", s) }

// hasMessage is a JavaScript test for a message with this text in the open
// conversation.
func hasMessage(text string) string {
	return `[...document.querySelectorAll('#messages [data-msg-id] .body')].some(b => b.textContent.includes(` + quote(text) + `))`
}

// status is the data-status of my message with this text ("" if none).
func statusOf(text string) string {
	return `(() => { const m = [...document.querySelectorAll('#messages .mine')].find(m => m.textContent.includes(` + quote(text) + `)); return m ? m.dataset.status : ''; })()`
}

func (p *page) signUp(user string) {
	p.t.Helper()
	p.run("register "+user,
		typeInto("#login-user", user),
		typeInto("#login-password", harness.Password),
		chromedp.Click(chromedp.CSS("#register-button")))
	p.until(user+" online", `document.querySelector('#conn-state').dataset.state === 'online'`)
}

// send types text into the open conversation and presses Enter.
func (p *page) send(text string) {
	p.t.Helper()
	p.run("send "+text, typeInto("#composer", text+"\r"))
	p.until("SENT of "+text, statusOf(text)+` !== '' && `+statusOf(text)+` !== 'pending'`)
}

// openConv opens the conversation sel names, unless it is open already
// (on a narrow screen, going back to the list first).
func (p *page) openConv(sel string) {
	p.t.Helper()
	p.until(sel+" listed", `document.querySelector(`+quote(sel)+`) !== null`)
	if eval[bool](p, `document.querySelector(`+quote(sel)+`).getAttribute('aria-current') === 'page' && document.body.classList.contains('conv-open')`) {
		return
	}
	if eval[bool](p, `document.querySelector(`+quote(sel)+`).offsetParent === null`) {
		p.run("back to the list", chromedp.Click(chromedp.CSS("#back-button")))
	}
	// A click made in the page, the node found again on each try: the list
	// is drawn anew whenever something in it changes (a name, presence, a
	// preview), which can take a node from under chromedp's click.
	p.until("conversation "+sel+" open", `(() => { const b = document.querySelector(`+quote(sel)+`);
		if (b && b.getAttribute('aria-current') !== 'page') b.click();
		return b?.getAttribute('aria-current') === 'page'; })()`)
}

// screenshot writes the page as a PNG beside the test output:
// $CIM_ARTIFACTS, or e2e/artifacts.
func (p *page) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	p.save(name, png)
}

// save writes a PNG beside the test output: $CIM_ARTIFACTS, or e2e/artifacts.
func (p *page) save(name string, png []byte) {
	p.t.Helper()
	dir := os.Getenv("CIM_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(harness.RepoRoot(), "e2e", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of %s's page: %s (%d bytes)", p.name, file, len(png))
}

// TestBrowserChat drives the route's chat page in headless Chromium
// against a real cluster: two browser users (one on a desktop window, one
// on a phone-sized one) and a terminal user exchange private and group
// messages; the sender's page shows sent → delivered → read, the other
// browser user as online and "… is typing" while they type; then the
// gateway of one browser user is killed, its page says so, reconnects on
// its own and catches up with what was sent meanwhile.
func TestBrowserChat(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 2})
	ann := openPage(t, exe, "ann", c.Route.URL+"/", 1280, 800)
	ben := openPage(t, exe, "ben", c.Route.URL+"/", 390, 844)
	ann.signUp("ann")
	ben.signUp("ben")
	tom := c.Terminal(t, "tom")
	tom.Expect(t, 0, `logged in as tom`)

	// ann → ben: ben's page counts it unread, opening it reads it, and
	// ann's page follows the message from sent to read.
	ann.run("chat with ben",
		typeInto("#new-chat-user", "ben"),
		chromedp.Click(chromedp.CSS("#new-chat")))
	ann.send("hello ben")
	ben.until("an unread conversation", `[...document.querySelectorAll('[data-conv^="user:"] .unread')].some(b => b.textContent.trim() === '1')`)
	annID := ann.userID()
	ann.until("DELIVERED", statusOf("hello ben")+` === 'delivered' || `+statusOf("hello ben")+` === 'read'`)
	ben.openConv(`[data-conv="user:` + annID + `"]`)
	ben.until("ann's message shown", hasMessage("hello ben"))
	ann.until("READ", statusOf("hello ben")+` === 'read'`)
	ben.send("hi ann")
	ann.until("ben's answer", hasMessage("hi ann"))

	// Presence and typing: ann's page (subscribed to the users of its
	// conversations) shows ben online, in the list and in the open
	// conversation's header, and ben's page shows ann; what ben types shows
	// on ann's page as "ben is typing…" until his message arrives.
	benID := ben.userID()
	ann.until("ben shown online", `(() => { const b = document.querySelector('[data-conv="user:`+benID+`"]');
		return b !== null && b.dataset.presence === 'online' && b.querySelector('.presence-dot') !== null; })()`)
	ann.until("ben online in the header", `(() => { const p = document.querySelector('#conv-presence');
		return !p.hidden && p.dataset.presence === 'online' && p.textContent === 'online'; })()`)
	ben.until("ann shown online", `document.querySelector('[data-conv="user:`+annID+`"]')?.dataset.presence === 'online'`)
	if eval[bool](ann, `!document.querySelector('#typing').hidden`) {
		t.Fatal("ann's page shows a typing indicator before anybody types")
	}
	ben.run("type to ann", typeInto("#composer", "are you there?"))
	ann.until("ben is typing", `(() => { const t = document.querySelector('#typing');
		return !t.hidden && t.textContent.includes('ben is typing') && t.dataset.users === `+quote(benID)+`; })()`)
	ben.run("send what was typed", typeInto("#composer", "\r"))
	ann.until("ben's message and the typing indicator gone", hasMessage("are you there?")+` && document.querySelector('#typing').hidden`)

	// The terminal and the browser, both ways.
	tom.Send(t, "ann;;hello from the terminal")
	ann.until("tom's conversation", `[...document.querySelectorAll('[data-conv^="user:"] .conv-name')].some(n => n.textContent.includes('tom'))`)
	ann.run("open tom's conversation", chromedp.Click(`//*[contains(@class,"conv-name")][contains(., "tom")]`))
	ann.until("tom's message", hasMessage("hello from the terminal"))
	ann.send("hello terminal")
	tom.Expect(t, 0, `hello terminal`)

	// A group: ann creates it, ben joins from the phone, tom from the
	// terminal; a message from each reaches the others.
	ann.run("create a group",
		typeInto("#group-name", "crew"),
		chromedp.Click(chromedp.CSS("#new-group")))
	ann.until("the group conversation", `document.querySelector('[data-conv^="group:"]') !== null`)
	conv := eval[string](ann, `document.querySelector('[data-conv^="group:"]').dataset.conv`)
	gid := strings.TrimPrefix(conv, "group:")
	ben.run("back to the list", chromedp.Click(chromedp.CSS("#back-button")))
	ben.run("join the group",
		chromedp.WaitVisible(chromedp.CSS("#group-id")),
		typeInto("#group-id", gid),
		chromedp.Click(chromedp.CSS("#join-group")))
	ben.until("the group conversation", `document.querySelector('[data-conv="group:`+gid+`"]') !== null`)
	tom.Send(t, ":gjoin "+gid)
	tom.Expect(t, 0, `(?i)joined`)
	ann.openConv(`[data-conv="group:` + gid + `"]`)
	ann.send("hello crew")
	tom.Expect(t, 0, `hello crew`)
	ben.openConv(`[data-conv="group:` + gid + `"]`)
	ben.until("the group message", hasMessage("hello crew"))
	tom.Send(t, ":g "+gid+" aye from the terminal")
	ann.until("tom's group message", hasMessage("aye from the terminal"))
	ben.until("tom's group message", hasMessage("aye from the terminal"))

	// A file from the page: small files go inline, larger ones through the
	// route's upload; either way the others get it as a file.
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, []byte(strings.Repeat("minutes of the crew meeting\n", 4000)), 0o644); err != nil {
		t.Fatal(err)
	}
	ann.run("attach a file", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{file}))
	ben.until("the file", `[...document.querySelectorAll('#messages .file-download')].some(b => b.textContent.includes('notes.txt'))`)
	tom.Expect(t, 0, `notes\.txt`)

	// ann's gateway dies: the page says it is reconnecting, finds the
	// other gateway on its own and gets what was sent while it was away.
	var gw *harness.Gateway
	for _, g := range c.Gateways {
		b, _ := os.ReadFile(g.Log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "msg=login ") && strings.Contains(line, " user="+annID+" ") {
				gw = g
			}
		}
	}
	if gw == nil {
		t.Fatalf("no gateway logged ann's (%s) login", annID)
	}
	eval[bool](ann, `(() => { window.__states = []; const s = document.querySelector('#conn-state');
		new MutationObserver(() => window.__states.push(s.dataset.state)).observe(s, {attributes: true, childList: true, subtree: true});
		return true; })()`)
	gw.Kill()
	ann.until("the page to say it is reconnecting", `window.__states.includes('reconnecting') || window.__states.includes('offline')`)
	tom.Send(t, ":g "+gid+" while ann was away")
	ben.send("also while ann was away")
	ann.until("back online", `document.querySelector('#conn-state').dataset.state === 'online'`)
	ann.until("the group message sent while away", hasMessage("while ann was away"))
	ann.until("ben's message sent while away", hasMessage("also while ann was away"))
	ann.send("back again")
	tom.Expect(t, 0, `back again`)
	ben.until("ann's message after the reconnect", hasMessage("back again"))

	// Each message once: nothing shown twice after the reconnect.
	dup := eval[int](ann, `(() => { const seen = new Map(); for (const m of document.querySelectorAll('#messages [data-msg-id]')) {
		const id = m.dataset.msgId; if (id) seen.set(id, (seen.get(id) || 0) + 1); }
		return [...seen.values()].filter(n => n > 1).length; })()`)
	if dup != 0 {
		t.Fatalf("%d messages shown twice in ann's group conversation", dup)
	}
	ann.screenshot("browser-chat-ann")
	ben.screenshot("browser-chat-ben")
}

// userID is the signed-in user's id as the page shows it (#me's
// data-user-id); the test fails when it shows none.
func (p *page) userID() string {
	p.t.Helper()
	id := eval[string](p, `document.querySelector('#me').dataset.userId`)
	if id == "" {
		p.failed()
		p.t.Fatalf("%s: #me has no data-user-id", p.name)
	}
	return id
}

// logIn signs user in with the page's form, checking "Keep me signed in"
// when keep, and waits for the chat.
func (p *page) logIn(user string, keep bool) {
	p.t.Helper()
	steps := []chromedp.Action[chromedp.Void]{typeInto("#login-user", user), typeInto("#login-password", harness.Password)}
	if keep {
		steps = append(steps, chromedp.Click(chromedp.CSS("#login-keep")))
	}
	steps = append(steps, chromedp.Click(chromedp.CSS("#login-button")))
	p.run("log in as "+user, steps...)
	p.until(user+" online", `document.querySelector('#conn-state').dataset.state === 'online'`)
	p.run("the chat", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
}

// keptToken is the resume token the page keeps for "Keep me signed in"
// ("" when none).
func (p *page) keptToken() string {
	p.t.Helper()
	return eval[string](p, `JSON.parse(localStorage.getItem('gocim.keep') || '{}').token || ''`)
}

// reload reloads the page; its script has run when it returns.
func (p *page) reload() {
	p.t.Helper()
	p.run("reload", chromedp.Reload())
}

// showsLoginForm waits for the login form, the chat hidden and nothing
// kept.
func (p *page) showsLoginForm(what string) {
	p.t.Helper()
	p.run(what+": the login form", chromedp.WaitVisible(chromedp.CSS("#login-password")))
	p.until(what+": the chat hidden, nothing kept", `document.querySelector('#chat-view').hidden && localStorage.getItem('gocim.keep') === null`)
}

// resumedLogins is the route's count of logins made with a resume token.
const resumedLogins = "gocim_route_resumed_logins_total"

// TestBrowserStaySignedIn: with "Keep me signed in on this browser"
// checked, a reload enters the chat again without the password (a resume
// login at the route), and Log out ends that: the next load shows the
// form, and the token the page had is revoked (put back, the page says it
// was signed out). Unchecked, nothing is kept and a reload shows the form.
func TestBrowserStaySignedIn(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1})
	c.Register(t, "kim")
	c.Register(t, "lou")
	kim := openPage(t, exe, "kim", c.Route.URL+"/", 1280, 800)

	kim.logIn("kim", true)
	first := kim.keptToken()
	if first == "" {
		t.Fatal("checked, and no token kept after the login")
	}
	if exp := eval[float64](kim, `JSON.parse(localStorage.getItem('gocim.keep')).expiresAt`); exp <= float64(time.Now().Unix()) {
		t.Fatalf("kept token expires at %v, not in the future", exp)
	}
	resumed := metric(t, c.Route.InternalURL, resumedLogins)

	// A reload: straight into the chat, no form, no password.
	kim.reload()
	if eval[bool](kim, `!document.querySelector('#login-view').hidden`) {
		t.Fatal("the reloaded page shows the login form while it has a kept token")
	}
	kim.run("the chat after the reload", chromedp.WaitVisible(chromedp.CSS("#chat-view")))
	kim.until("online again", `document.querySelector('#conn-state').dataset.state === 'online' && document.querySelector('#me').textContent === 'kim'`)
	if got := metric(t, c.Route.InternalURL, resumedLogins); got != resumed+1 {
		t.Fatalf("%s went from %v to %v over the reload, want one resume", resumedLogins, resumed, got)
	}
	second := kim.keptToken()
	if second == "" || second == first {
		t.Fatalf("after the resume the page keeps %q (before: %q), want the next token", second, first)
	}

	// Log out: the form, nothing kept, and so after a reload too.
	kim.run("log out", chromedp.Click(chromedp.CSS("#logout-button")))
	kim.showsLoginForm("after Log out")
	// The log-off (POST /offLine) is done once the browser has its answer.
	kim.until("the log-off answered", `performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === '/offLine' && e.responseEnd > 0)`)
	kim.reload()
	kim.showsLoginForm("a reload after Log out")

	// The log-off revoked the token: put back, it signs nobody in.
	eval[bool](kim, `(localStorage.setItem('gocim.keep', JSON.stringify({userName: 'kim', token: `+quote(second)+`, expiresAt: 0})), true)`)
	kim.reload()
	kim.showsLoginForm("a revoked token")
	kim.until("why", `document.querySelector('#login-error').textContent === 'Signed out: please log in again.' && document.querySelector('#login-user').value === 'kim'`)
	if got := metric(t, c.Route.InternalURL, resumedLogins); got != resumed+1 {
		t.Fatalf("%s is %v after the log-off, want %v: a revoked token logged in", resumedLogins, got, resumed+1)
	}

	// Unchecked: nothing kept, a reload shows the form.
	lou := openPage(t, exe, "lou", c.Route.URL+"/", 1280, 800)
	lou.logIn("lou", false)
	if tok := lou.keptToken(); tok != "" {
		t.Fatalf("unchecked, and the page keeps a token: %q", tok)
	}
	lou.reload()
	lou.showsLoginForm("a reload of an unchecked login")
}

// accountStatus is a JavaScript test for #account-status showing kind
// (data-kind "ok" or "error") with text in it.
func accountStatus(kind, text string) string {
	return `(() => { const s = document.querySelector('#account-status');
		return s.dataset.kind === ` + quote(kind) + ` && s.textContent.includes(` + quote(text) + `); })()`
}

// passwordsCleared is a JavaScript test for the account panel's password
// fields all empty.
const passwordsCleared = `['#current-password', '#new-password', '#others-password'].every(s => document.querySelector(s).value === '')`

// TestBrowserAccount drives the chat page's Account panel against a route
// that lets a user log in once per platform: ida is on her desktop (the Go
// SDK) and on the page ("Keep me signed in" checked). "Log out other
// devices" with a wrong password says so and ends nothing; with the right
// one it reports the desktop's session ended and the desktop is kicked.
// Then she changes the password on the page: the old one no longer logs
// in, the new one does. The page stays online throughout and keeps each
// new resume token the route hands it.
func TestBrowserAccount(t *testing.T) {
	exe := chromium(t)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-policy", "platform"}})
	ctx := ctxT(t)
	desktop := c.Connect(t, "ida", func(cfg *client.Config) { cfg.Platform = "desktop" })
	ida := openPage(t, exe, "ida", c.Route.URL+"/", 1280, 800)
	ida.logIn("ida", true)
	kept := ida.keptToken()
	if kept == "" {
		t.Fatal("no token kept after a login with Keep me signed in")
	}
	// Every state #conn-state shows from now on.
	eval[bool](ida, `(() => { window.__states = []; const s = document.querySelector('#conn-state');
		new MutationObserver(() => window.__states.push(s.dataset.state)).observe(s, {attributes: true, childList: true, subtree: true});
		return true; })()`)

	ida.run("open the account panel",
		chromedp.Click(chromedp.CSS("#account-button")),
		chromedp.WaitVisible(chromedp.CSS("#account-panel")))
	if !eval[bool](ida, `document.querySelector('#account-button').getAttribute('aria-expanded') === 'true'`) {
		t.Fatal("#account-button is not aria-expanded with the panel open")
	}

	// A wrong password: refused, the field cleared, nobody logged out.
	ida.run("log out other devices with a wrong password",
		typeInto("#others-password", "not-the-password"),
		chromedp.Click(chromedp.CSS("#logout-others-button")))
	ida.until("the refusal", accountStatus("error", "Wrong password."))
	ida.until("the password field cleared", passwordsCleared)
	for _, e := range desktop.Seen() {
		if e.Kind == client.EventKicked {
			t.Fatalf("the desktop was kicked by a refused log-out of other devices: %s", e.Reason)
		}
	}
	if got := ida.keptToken(); got != kept {
		t.Fatalf("a refused log-out of other devices changed the kept token")
	}

	// The right one: the desktop's session (still there: it is the one
	// counted) ends and the desktop client is told.
	ida.run("log out other devices",
		typeInto("#others-password", harness.Password),
		chromedp.Click(chromedp.CSS("#logout-others-button")))
	ida.until("the outcome", accountStatus("ok", "1 other session ended"))
	ida.until("the password field cleared", passwordsCleared)
	desktop.WaitFor(t, 0, wait, "the desktop kicked", harness.IsKind(client.EventKicked))
	afterLogout := ida.keptToken()
	if afterLogout == "" || afterLogout == kept {
		t.Fatalf("after logging out the other devices the page keeps %q (before: %q), want the new token", afterLogout, kept)
	}

	// A new password, set on the page.
	const newPassword = "a-new-secret"
	ida.run("change the password",
		typeInto("#current-password", harness.Password),
		typeInto("#new-password", newPassword),
		chromedp.Click(chromedp.CSS("#change-password-button")))
	ida.until("the outcome", accountStatus("ok", "Password changed; 0 other sessions ended."))
	ida.until("the password fields cleared", passwordsCleared)
	if got := ida.keptToken(); got == "" || got == afterLogout {
		t.Fatalf("after the password change the page keeps %q (before: %q), want the new token", got, afterLogout)
	}
	var ae *client.APIError
	if _, err := client.NewAPI(c.Route.URL, nil).Login(ctx, "ida", harness.Password); !errors.As(err, &ae) || ae.Code != codes.BadAccount {
		t.Fatalf("login with the old password: %v, want code %d", err, codes.BadAccount)
	}
	if _, err := client.NewAPI(c.Route.URL, nil).Login(ctx, "ida", newPassword); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	// Online all along.
	ida.until("still online", `document.querySelector('#conn-state').dataset.state === 'online'`)
	states := eval[[]string](ida, `window.__states`)
	for _, s := range states {
		if s != "online" {
			t.Fatalf("the page's connection state went through %v", states)
		}
	}
	ida.screenshot("browser-account-ida")
	ida.run("close the account panel",
		chromedp.Click(chromedp.CSS("#account-close")),
		chromedp.WaitNotVisible(chromedp.CSS("#account-panel")))
}
