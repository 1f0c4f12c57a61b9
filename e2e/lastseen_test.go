package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
)

// TestLastSeen: bob logs in and out; alice's GET /presence (the SDK's
// Presence) then has him offline with his last seen, the time his session
// ended by the route's clock, while a user who never logged in has none.
// A terminal watching bob prints his going as news (no time) and a :watch
// answer with the time; nothing for the user never seen.
func TestLastSeen(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	ctx := ctxT(t)
	alice := c.Connect(t, "alice")
	daveID := c.Register(t, "dave") // never logs in
	carol := c.Terminal(t, "carol")
	n, _ := carol.Expect(t, 0, `^\* logged in as carol`)
	bob := c.Connect(t, "bob")

	// bob online: no last seen.
	ps, err := alice.API().Presence(ctx, "bob", "dave")
	if err != nil || len(ps) != 2 || !ps[0].Online || ps[0].UserID != bob.ID || ps[0].LastSeen != 0 {
		t.Fatalf("Presence = %+v, %v: want bob online without a last seen", ps, err)
	}
	if d := ps[1]; d.UserID != daveID || d.Online || d.LastSeen != 0 {
		t.Fatalf("dave (never logged in) %+v, want offline without a last seen", d)
	}
	carol.Send(t, ":watch bob")
	n, _ = carol.Expect(t, n, `^\* watching: bob online$`)

	// bob goes: his last seen is when, by the route's clock (this
	// machine's), between the Close and the first answer that has it.
	before := time.Now().UnixMilli()
	if err := bob.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var seen client.UserPresence
	var after int64
	harness.Eventually(t, 10*time.Second, func() error { // less than ctx: a failure says why
		ps, err := alice.API().Presence(ctx, "bob")
		after = time.Now().UnixMilli()
		if err != nil {
			return err
		}
		if len(ps) != 1 || ps[0].Online || ps[0].LastSeen == 0 {
			return fmt.Errorf("Presence(bob) = %+v, want offline with a last seen", ps)
		}
		seen = ps[0]
		return nil
	})
	if seen.UserID != bob.ID || seen.Since != 0 || seen.LastSeen < before || seen.LastSeen > after {
		t.Fatalf("Presence(bob) = %+v, want his id and a last seen within [%d, %d]", seen, before, after)
	}
	if ps, err := alice.API().Presence(ctx, "dave"); err != nil || len(ps) != 1 || ps[0].Online || ps[0].LastSeen != 0 {
		t.Fatalf("Presence(dave) = %+v, %v: want offline without a last seen", ps, err)
	}

	// The live change is news: no time.
	n, _ = carol.Expect(t, n, `^\* bob is offline$`)

	// A :watch answer has the time, in the terminal's zone (the harness
	// runs it with TZ=UTC): HH:MM on the day the terminal prints it, with
	// the date on another (only when midnight passed since bob left).
	at := time.UnixMilli(seen.LastSeen).In(time.UTC)
	asked := time.Now().In(time.UTC)
	carol.Send(t, ":watch bob dave")
	_, line := carol.Expect(t, n, `^\* watching: bob offline \(last seen (\d{4}-\d\d-\d\d )?`+at.Format("15:04")+`\), dave offline$`)
	printed := time.Now().In(time.UTC)
	day := at.Format("2006-01-02")
	date := regexp.MustCompile(`last seen (\d{4}-\d\d-\d\d) `).FindStringSubmatch(line)
	switch {
	case date == nil && day != asked.Format("2006-01-02"):
		t.Fatalf("%q: no date for a last seen on %s, printed on another day", line, day)
	case date != nil && (date[1] != day || day == printed.Format("2006-01-02")):
		t.Fatalf("%q: a date for a last seen on %s, printed on %s", line, day, printed.Format("2006-01-02"))
	}
}
