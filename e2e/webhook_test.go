package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
)

const webhookSecret = "e2e-webhook-secret-0123456789"

// hookEvent is a webhook body as an app back-end reads it.
type hookEvent struct {
	ID     string   `json:"id"`
	Type   string   `json:"type"`
	TimeMs int64    `json:"timeMs"`
	Data   hookData `json:"data"`
}

// hookData holds the fields of every payload the test looks at.
type hookData struct {
	UserID    string   `json:"userId"`
	UserName  string   `json:"userName"`
	SessionID string   `json:"sessionId"`
	Reason    string   `json:"reason"`
	MsgID     string   `json:"msgId"`
	From      string   `json:"from"`
	FromName  string   `json:"fromName"`
	To        string   `json:"to"`
	Text      string   `json:"text"`
	Body      []byte   `json:"body"` // a binary body (device.data), base64 in JSON
	Kind      string   `json:"kind"`
	Seq       uint64   `json:"seq"`
	GroupID   string   `json:"groupId"`
	Name      string   `json:"name"`
	By        string   `json:"by"`
	Users     []string `json:"users"`
	// whom to notify (message.offline)
	Recipients      []string `json:"recipients"`
	Muted           bool     `json:"muted"`
	MutedRecipients []string `json:"mutedRecipients"`
	Mentions        []string `json:"mentions"`
}

// hookReceiver is an app back-end on loopback: it checks each request's
// signature (its own HMAC, as a back-end in any language would), fails
// every third request with 500 (every request with 503 while down), and
// records each event id once, at its first 2xx answer.
type hookReceiver struct {
	t    *testing.T
	srv  *httptest.Server
	seen chan hookEvent // every request, failed or not
	*harness.Recorder[hookEvent]
	accepted chan hookEvent

	mu   sync.Mutex
	n    int
	down bool
	oks  map[string]bool   // ids answered 2xx
	ids  map[string]string // msgId+type -> event id, to check ids are stable
	bad  []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t, seen: make(chan hookEvent, 10000), accepted: make(chan hookEvent, 10000),
		oks: map[string]bool{}, ids: map[string]string{}}
	r.Recorder = harness.Record(r.accepted)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// verifySignature checks X-Gocim-Signature: t=<unix>,v1=<hex HMAC-SHA256(
// secret, "<t>.<body>")>, the time within 5 minutes.
func verifySignature(header string, body []byte) error {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("malformed signature %q", header)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("signature time %s is %v off", ts, d)
	}
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("signature does not match")
	}
	return nil
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	var ev hookEvent
	if err := verifySignature(req.Header.Get("X-Gocim-Signature"), body); err != nil {
		r.t.Errorf("webhook %s: %v", body, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.TimeMs == 0 ||
		req.Header.Get("Idempotency-Key") != ev.ID || req.Header.Get("X-Gocim-Event") != ev.Type ||
		req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("webhook %v with body %s (%v)", req.Header, body, err)
	}
	r.mu.Lock()
	r.n++
	status := http.StatusOK
	switch {
	case r.down:
		status = http.StatusServiceUnavailable
	case r.n%3 == 0:
		status = http.StatusInternalServerError
	}
	first := status == http.StatusOK && !r.oks[ev.ID]
	if first {
		r.oks[ev.ID] = true
	}
	if ev.Data.MsgID != "" {
		k := ev.Type + " " + ev.Data.MsgID + " " + ev.Data.To
		if id, ok := r.ids[k]; ok && id != ev.ID {
			r.t.Errorf("%s reported as two events, %s and %s", k, id, ev.ID)
		}
		r.ids[k] = ev.ID
	}
	r.mu.Unlock()
	w.WriteHeader(status)
	r.seen <- ev
	if first { // a repeat of a delivered id is dropped: delivery is at least once
		r.accepted <- ev
	}
}

func (r *hookReceiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// wait waits for an accepted event of typ that match accepts.
func (r *hookReceiver) wait(t *testing.T, typ, what string, match func(hookData) bool) hookEvent {
	t.Helper()
	i := r.WaitFor(t, 0, wait, what, func(ev hookEvent) bool { return ev.Type == typ && match(ev.Data) })
	return r.Seen()[i]
}

// TestWebhooks: a route with --webhook-url reports to a back-end that
// fails now and then: a message to an offline user (message.offline), to
// the app user (message.app), group changes, a kick by a second login;
// and events queued while the back-end was down outlive a route restart.
func TestWebhooks(t *testing.T) {
	rcv := newHookReceiver(t)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--webhook-url", rcv.srv.URL + "/gocim/events",
		"--webhook-secret", webhookSecret,
		"--webhook-app-users", "hookbot",
		// Events refused while the back-end is down come back within 2 s
		// of its return, whatever the machine's load (default: up to 5 min).
		"--webhook-retry-max", "2s",
	}})
	ctx := ctxT(t)
	alice := c.Connect(t, "alice")
	bob := c.Register(t, "bob") // never connects
	bot := c.Connect(t, "hookbot")

	if _, err := alice.Send(ctx, "bob", "hello bob"); err != nil {
		t.Fatal(err)
	}
	off := rcv.wait(t, "message.offline", "message.offline to bob", func(d hookData) bool { return d.Text == "hello bob" })
	if d := off.Data; d.To != bob || d.From != alice.ID || d.FromName != "alice" || d.Kind != "text" || d.Seq == 0 || d.MsgID == "" {
		t.Fatalf("message.offline %+v", d)
	}
	if _, err := alice.Send(ctx, "hookbot", "hello bot"); err != nil {
		t.Fatal(err)
	}
	app := rcv.wait(t, "message.app", "message.app to hookbot", func(d hookData) bool { return d.Text == "hello bot" })
	if d := app.Data; d.To != bot.ID || d.From != alice.ID {
		t.Fatalf("message.app %+v", d)
	}

	g, err := alice.CreateGroup(ctx, "hooked", true)
	if err != nil {
		t.Fatal(err)
	}
	rcv.wait(t, "group.created", "group.created", func(d hookData) bool {
		return d.GroupID == g.ID && d.Name == "hooked" && d.By == alice.ID
	})
	if _, err := bot.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	rcv.wait(t, "group.joined", "group.joined", func(d hookData) bool {
		return d.GroupID == g.ID && d.By == bot.ID && len(d.Users) == 1 && d.Users[0] == bot.ID
	})

	// The default --login-policy kick: a second login kicks the first.
	carl := c.Connect(t, "carl")
	first := carl.Info().SessionID
	c.Connect(t, "carl")
	carl.WaitFor(t, 0, wait, "carl's first client kicked", harness.IsKind(client.EventKicked))
	rcv.wait(t, "user.kicked", "user.kicked of carl's first session", func(d hookData) bool {
		return d.UserID == carl.ID && d.SessionID == first && d.Reason == "logged in elsewhere"
	})

	// The back-end goes down; events queue up in Redis and are tried
	// (and refused) before the route restarts.
	rcv.setDown(true)
	const n = 5
	want := map[string]bool{}
	for i := range n {
		text := fmt.Sprintf("queued %d", i)
		want[text] = true
		if _, err := alice.Send(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
	}
	seenIDs := map[string]bool{}
	tried := map[string]bool{}
	deadline := time.After(wait)
	for len(tried) < n {
		select {
		case ev := <-rcv.seen:
			seenIDs[ev.ID] = true
			if ev.Type == "message.offline" && want[ev.Data.Text] {
				tried[ev.Data.Text] = true
			}
		case <-deadline:
			t.Fatalf("the queued messages were not tried while the back-end was down: %v", tried)
		}
	}
	if err := c.Route.Stop(20 * time.Second); err != nil {
		t.Logf("route stop: %v", err)
	}
	c.StartRoute()
	rcv.setDown(false)
	for text := range want {
		rcv.wait(t, "message.offline", text+" after the restart", func(d hookData) bool { return d.Text == text && d.To == bob })
	}
	// Every event the back-end was offered arrives after all.
	harness.Eventually(t, wait, func() error {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for id := range seenIDs {
			if !rcv.oks[id] {
				return fmt.Errorf("event %s never answered 2xx", id)
			}
		}
		return nil
	})
}
