package e2e

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// TestResumeToken: against the real route, a login's resume token logs in
// without the password and hands out the next; the same token again
// within the grace (an answer lost on the way) logs in too, a token two
// uses back ends its chain, one a log-off came after answers 401/4010, and
// the password still works.
func TestResumeToken(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	c.Register(t, "rita")
	ctx := ctxT(t)
	api := client.NewAPI(c.Route.URL, nil)
	first, err := api.Login(ctx, "rita", harness.Password)
	if err != nil {
		t.Fatal(err)
	}
	if first.ResumeToken == "" || first.ResumeExpiresAt == 0 {
		t.Fatalf("login without a resume token: %+v", first)
	}
	refused := func(what, tok string) {
		t.Helper()
		var ae *client.APIError
		if _, err := client.NewAPI(c.Route.URL, nil).Resume(ctx, tok); !errors.As(err, &ae) || ae.Code != codes.Unauthorized || ae.HTTPStatus != 401 {
			t.Fatalf("%s: %v, want 401/4010", what, err)
		}
	}
	second, err := client.NewAPI(c.Route.URL, nil).Resume(ctx, first.ResumeToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.UserID != first.UserID || second.SessionID == first.SessionID || second.ResumeToken == first.ResumeToken {
		t.Fatalf("resumed %+v after %+v", second, first)
	}
	refused("a gateway token", second.Token)

	api2 := client.NewAPI(c.Route.URL, nil)
	third, err := api2.Resume(ctx, second.ResumeToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := api2.Offline(ctx, third.UserID, third.SessionID); err != nil {
		t.Fatal(err)
	}
	refused("a logged-off session's token", third.ResumeToken)
	fourth, err := client.NewAPI(c.Route.URL, nil).Login(ctx, "rita", harness.Password)
	if err != nil {
		t.Fatalf("the password after a log-off: %v", err)
	}
	if _, err := client.NewAPI(c.Route.URL, nil).Resume(ctx, fourth.ResumeToken); err != nil {
		t.Fatal(err)
	}
	retry, err := client.NewAPI(c.Route.URL, nil).Resume(ctx, fourth.ResumeToken)
	if err != nil {
		t.Fatalf("the same token again, as after a lost answer: %v", err)
	}
	sixth, err := client.NewAPI(c.Route.URL, nil).Resume(ctx, retry.ResumeToken)
	if err != nil {
		t.Fatalf("the token the retry got: %v", err)
	}
	refused("a token two uses back", fourth.ResumeToken)
	refused("the latest token of a chain an old one came back to", sixth.ResumeToken)
	if _, err := client.NewAPI(c.Route.URL, nil).Login(ctx, "rita", harness.Password); err != nil {
		t.Fatalf("the password after a reuse: %v", err)
	}
	// Refused resumes are told apart from wrong passwords (guessing).
	failures := func(reason string) float64 {
		return metric(t, c.Route.InternalURL, `gocim_route_login_failures_total{reason="`+reason+`"}`)
	}
	if r, b := failures("resume_refused"), failures("bad_credentials"); r != 4 || b != 0 {
		t.Fatalf("login failures: resume_refused %v, bad_credentials %v; want 4 and 0", r, b)
	}
}

// TestStaySignedIn: an app that ends its Client with Disconnect starts the
// next one with the token OnResumeToken heard and no password: it logs in
// without a password (the route counts a resumed login) and gets what was
// sent meanwhile. Close logs off, which OnResumeToken hears as "" and
// which revokes the last token: a Client started with it stops at once
// with ErrResumeRefused.
func TestStaySignedIn(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	tom := c.Connect(t, "tom")
	var mu sync.Mutex
	var heard []string
	keep := func(tok string, _ time.Time) {
		mu.Lock()
		heard = append(heard, tok)
		mu.Unlock()
	}
	latest := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(heard) == 0 {
			t.Fatal("OnResumeToken never called")
		}
		return heard[len(heard)-1]
	}
	sara := c.Connect(t, "sara", func(cfg *client.Config) { cfg.OnResumeToken = keep })
	first := latest()
	if first == "" {
		t.Fatal("no resume token after the password login")
	}
	if err := sara.Client.Disconnect(ctx); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if got := latest(); got != first {
		t.Fatalf("after Disconnect OnResumeToken heard %q, want the token kept", got)
	}
	if _, err := tom.Client.Send(ctx, "sara", "while you were away"); err != nil {
		t.Fatal(err)
	}

	resumed := metric(t, c.Route.InternalURL, "gocim_route_resumed_logins_total")
	again := c.Connect(t, "sara", func(cfg *client.Config) {
		cfg.Password, cfg.ResumeToken, cfg.OnResumeToken = "", first, keep
	})
	again.WaitFor(t, 0, wait, "the message sent while away", harness.IsMessage("while you were away"))
	if got := metric(t, c.Route.InternalURL, "gocim_route_resumed_logins_total"); got != resumed+1 {
		t.Fatalf("resumed logins %v, want %v: the second client did not log in with the kept token", got, resumed+1)
	}
	second := latest()
	if second == "" || second == first {
		t.Fatalf("the resumed login's token %q (the first %q)", second, first)
	}
	if err := again.Client.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := latest(); got != "" {
		t.Fatalf("after Close OnResumeToken heard %q, want \"\"", got)
	}

	cl, err := client.New(client.Config{RouteURL: c.Route.URL, UserName: "sara", ResumeToken: second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(ctx)
	if err := cl.Start(ctx); !errors.Is(err, client.ErrResumeRefused) || ctx.Err() != nil {
		t.Fatalf("Start with the token of a session that logged off: %v, want ErrResumeRefused at once", err)
	}
}

// TestSecureAccount: with --login-policy platform, a user on their phone
// logs their other devices out (the desktop online is kicked, the laptop
// that only remembers its login cannot come back with it) and changes
// the password; the phone stays connected, logs in again with the new
// password when it must, and its own remembered login still works.
func TestSecureAccount(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-policy", "platform"}})
	ctx := ctxT(t)
	var mu sync.Mutex
	laptopToken, phoneToken := "", ""
	laptop := c.Connect(t, "sam", func(cfg *client.Config) {
		cfg.Platform = "web"
		cfg.OnResumeToken = func(tok string, _ time.Time) { mu.Lock(); laptopToken = tok; mu.Unlock() }
	})
	if err := laptop.Client.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	desktop := c.Connect(t, "sam", func(cfg *client.Config) { cfg.Platform = "desktop" })
	phone := c.Connect(t, "sam", func(cfg *client.Config) {
		cfg.Platform = "mobile"
		cfg.OnResumeToken = func(tok string, _ time.Time) { mu.Lock(); phoneToken = tok; mu.Unlock() }
	})

	var ae *client.APIError
	if _, err := phone.Client.LogoutOthers(ctx, "not-the-password"); !errors.As(err, &ae) || ae.Code != codes.Forbidden {
		t.Fatalf("logout others with a wrong password: %v, want 4030", err)
	}
	n, err := phone.Client.LogoutOthers(ctx, harness.Password)
	if err != nil || n != 1 {
		t.Fatalf("logout others: %d ended, %v; want the desktop", n, err)
	}
	desktop.WaitFor(t, 0, wait, "the desktop kicked", func(e client.Event) bool { return e.Kind == client.EventKicked })
	mu.Lock()
	kept := laptopToken
	mu.Unlock()
	if _, err := client.NewAPI(c.Route.URL, nil).Resume(ctx, kept); !errors.As(err, &ae) || ae.Code != codes.Unauthorized {
		t.Fatalf("the laptop's remembered login after logout others: %v, want 4010", err)
	}

	const newPassword = "a-new-password"
	if _, err := phone.Client.ChangePassword(ctx, harness.Password, newPassword); err != nil {
		t.Fatalf("change password: %v", err)
	}
	if _, err := client.NewAPI(c.Route.URL, nil).Login(ctx, "sam", harness.Password); !errors.As(err, &ae) || ae.Code != codes.BadAccount {
		t.Fatalf("the old password: %v, want 9100", err)
	}
	// The phone is still connected and keeps a resume token that works.
	if _, err := c.Connect(t, "tom").Client.Send(ctx, "sam", "still here?"); err != nil {
		t.Fatal(err)
	}
	phone.WaitFor(t, 0, wait, "a message after the change", harness.IsMessage("still here?"))
	mu.Lock()
	tok := phoneToken
	mu.Unlock()
	if err := phone.Client.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	again := c.Connect(t, "sam", func(cfg *client.Config) { cfg.Platform, cfg.Password, cfg.ResumeToken = "mobile", "", tok })
	if again.ID == "" {
		t.Fatal("no user id after resuming")
	}
}
