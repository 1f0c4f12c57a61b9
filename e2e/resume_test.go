package e2e

import (
	"errors"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// TestResumeToken: against the real route, a login's resume token logs in
// once without the password and hands out the next; a used one, and one a
// log-off came after, answer 401/4010, and the password still works.
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
	refused("a used token", first.ResumeToken)
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
	if _, err := client.NewAPI(c.Route.URL, nil).Login(ctx, "rita", harness.Password); err != nil {
		t.Fatalf("the password after a log-off: %v", err)
	}
}
