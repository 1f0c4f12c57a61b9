package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestRouteReplicaKilled: two route replicas share ZooKeeper and Redis
// (uploads in Redis, each replica its own --upload-dir that nothing
// shares); the gateways and the clients are given both. Under a steady,
// bounded load of private messages one replica is SIGKILLed. Every message
// a client sent is acknowledged and delivered exactly once and in order,
// logins go on working through the survivor, and a file uploaded through
// the killed replica is still fetched through the other.
func TestRouteReplicaKilled(t *testing.T) {
	testRouteReplicaLost(t, "SIGKILL", func(r *harness.Route) { r.Kill() }, nil)
}

// TestRouteReplicaFrozen: as TestRouteReplicaKilled, but the replica is
// frozen (SIGSTOP): calls to it time out and move to the other, and when
// it thaws after the load, what it still held is not applied twice.
func TestRouteReplicaFrozen(t *testing.T) {
	testRouteReplicaLost(t, "SIGSTOP",
		func(r *harness.Route) { r.Signal(syscall.SIGSTOP) },
		func(r *harness.Route) { r.Signal(syscall.SIGCONT) })
}

func testRouteReplicaLost(t *testing.T, how string, lose, after func(*harness.Route)) {
	const perSender = 250
	began := time.Now()
	phase := func(what string) { t.Logf("%v: %s", time.Since(began).Round(time.Millisecond), what) }
	dir := t.TempDir()
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--upload-store", "redis", "--upload-dir", filepath.Join(dir, "route1-uploads"),
	}})
	r1 := c.Route
	r2 := c.AddRoute("--upload-dir", filepath.Join(dir, "route2-uploads"))
	// Gateways that know both replicas (r1 first: their calls go there
	// until it fails); the harness's first gateway knows only r1 and goes.
	internal := harness.RouteList(true, r1, r2)
	// A frozen replica holds each call for the attempt timeout before the
	// gateway tries the other.
	c.AddGateway("--route", internal, "--route-attempt-timeout", "2s")
	c.AddGateway("--route", internal, "--route-attempt-timeout", "2s")
	if err := c.Gateways[0].Stop(10 * time.Second); err != nil {
		t.Logf("first gateway: %v", err)
	}
	for _, r := range []*harness.Route{r1, r2} {
		harness.Eventually(t, 30*time.Second, func() error {
			n, err := liveAt(r.InternalURL)
			if err == nil && n != 2 {
				err = fmt.Errorf("route %s hands out %d gateways, want the 2 that know both replicas", r.Addr, n)
			}
			return err
		})
	}

	phase("two replicas, two gateways")
	public := harness.RouteList(false, r1, r2)
	tune := func(cfg *client.Config) {
		cfg.RouteURL = public
		cfg.ResendTimeout = time.Second
		cfg.ResendMax = 60 // a frozen replica holds calls for the gateway's attempt timeout
		cfg.EventBuffer = 1 << 15
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Second} // a frozen replica's login times out
	}
	names := []string{"ann", "ben", "cat", "dan"}
	users := make([]*harness.User, len(names))
	for i, n := range names {
		users[i] = c.Connect(t, n, tune)
	}
	c.Register(t, "eve") // logs in after the loss, when r1 may not answer

	// A file of three Redis pieces, uploaded through r1.
	file := make([]byte, 600<<10)
	rand.Read(file)
	up := client.NewAPI(r1.URL, nil)
	up.SetAccessToken(users[0].API().AccessToken())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref, err := up.Upload(ctx, "", "", "photo.bin", "application/octet-stream", bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatalf("upload through %s: %v", r1.Addr, err)
	}

	phase("clients connected, file uploaded")
	// Load: each user sends perSender numbered messages to the next one,
	// at most one every 2 ms.
	var progress atomic.Int64
	lost := make(chan struct{})
	sentIDs := make([]map[string]bool, len(users))
	var wg sync.WaitGroup
	for i := range users {
		sentIDs[i] = map[string]bool{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			from, to := users[i], users[(i+1)%len(users)]
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for n := range perSender {
				<-tick.C
				id, err := from.Send(ctx, to.Name, fmt.Sprintf("%s>%s#%05d", from.Name, to.Name, n))
				if err != nil {
					t.Errorf("%s send #%d: %v", from.Name, n, err)
					return
				}
				sentIDs[i][id] = true
				if progress.Add(1) == perSender*int64(len(users))/3 {
					close(lost)
				}
			}
		}(i)
	}
	<-lost
	t.Logf("%s route replica %s after %d messages", how, r1.Addr, progress.Load())
	lose(r1)
	if after != nil {
		t.Cleanup(func() { after(r1) }) // also when the test stops early
	}
	start := time.Now()

	// New logins keep working: a login API call per replica in turn, and a
	// whole client that then sends.
	for i := range 4 {
		lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := client.NewAPI(public, &http.Client{Timeout: 2 * time.Second}).Login(lctx, "eve", harness.Password)
		lcancel()
		if err != nil {
			t.Fatalf("login %d with %s lost: %v", i, r1.Addr, err)
		}
	}
	cfg := client.Config{UserName: "eve", Password: harness.Password, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}
	tune(&cfg)
	eve, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eve.Start(ctx); err != nil {
		t.Fatalf("eve's client with %s lost: %v", r1.Addr, err)
	}
	defer eve.Close(context.Background())
	eveEvents := harness.Record(eve.Events())
	t.Logf("new logins work %v after the loss", time.Since(start).Round(time.Millisecond))

	// The upload made through r1 is fetched through r2, and through the
	// SDK's list (failing over when it tries r1 first).
	down := client.NewAPI(r2.URL, nil)
	down.SetAccessToken(users[1].API().AccessToken())
	for _, api := range []*client.API{down, users[1].API()} {
		fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
		body, _, err := api.Download(fctx, ref.Ref)
		if err != nil {
			fcancel()
			t.Fatalf("download of %s after the loss of %s: %v", ref.Ref, r1.Addr, err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		fcancel()
		if err != nil || !bytes.Equal(got, file) {
			t.Fatalf("download of %s: %d bytes (want %d), equal %v, %v", ref.Ref, len(got), len(file), bytes.Equal(got, file), err)
		}
	}

	wg.Wait()
	phase("load sent")
	// The replica was lost under load: a gateway holding senders had a call
	// in flight to it, which failed and was retried on the other. (Not
	// every gateway need have had one at that instant: a gateway with none
	// in flight just sends its next calls to the other replica.)
	var gws []*harness.Gateway
	for _, u := range users {
		g := c.Gateway(u.Info().Gateway)
		if g == nil {
			t.Fatalf("%s is on %s, not one of the harness's gateways", u.Name, u.Info().Gateway)
		}
		if !slices.Contains(gws, g) {
			gws = append(gws, g)
		}
	}
	retried := false
	for _, g := range gws {
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := testenv.WaitLog(wctx, g.Process, "route call failed, retrying")
		wcancel()
		if err == nil {
			retried = true
			t.Logf("gateway %s retried a route call on the other replica", g.ID)
		}
	}
	if !retried {
		t.Fatalf("none of the senders' gateways %d retried a route call after the loss of %s", len(gws), r1.Addr)
	}
	if _, err := eve.Send(ctx, "ann", "eve>ann#00000"); err != nil {
		t.Fatal(err)
	}
	eveEvents.WaitFor(t, 0, 60*time.Second, "eve's SENT receipt", func(e client.Event) bool {
		return e.Kind == client.EventReceipt && e.Receipt.GetStatus() == cimpb.ReceiptStatus_RECEIPT_SENT
	})
	if after != nil {
		after(r1) // what the thawed replica still held must not show twice
	}
	if t.Failed() {
		return
	}

	phase("eve's message acknowledged")
	// Every message acknowledged (SENT) and received once, in order.
	for i, u := range users {
		harness.Eventually(t, 90*time.Second, func() error {
			if n := len(receipts(u)[cimpb.ReceiptStatus_RECEIPT_SENT]); n < len(sentIDs[i]) {
				return fmt.Errorf("%s has SENT receipts for %d of %d messages", u.Name, n, len(sentIDs[i]))
			}
			return nil
		})
	}
	for i, u := range users {
		want := perSender
		if i == 0 {
			want++ // eve's
		}
		harness.Eventually(t, 90*time.Second, func() error {
			if got := len(received(u)); got < want {
				return fmt.Errorf("%s has %d of %d messages", u.Name, got, want)
			}
			return nil
		})
	}
	if after != nil {
		// Give what the thawed replica may still push a chance to show:
		// one more message through each user, which follows anything
		// older on the same links.
		for i, u := range users {
			if _, err := u.Send(ctx, users[(i+1)%len(users)].Name, fmt.Sprintf("%s>%s#%05d", u.Name, users[(i+1)%len(users)].Name, perSender)); err != nil {
				t.Fatal(err)
			}
		}
		for i, u := range users {
			want := perSender + 1
			if i == 0 {
				want++
			}
			harness.Eventually(t, 60*time.Second, func() error {
				if got := len(received(u)); got < want {
					return fmt.Errorf("%s has %d of %d messages", u.Name, got, want)
				}
				return nil
			})
		}
	}
	phase("every message received")
	for _, u := range users {
		next := map[string]int{}
		for _, m := range received(u) {
			from, rest, _ := strings.Cut(string(m.Body), ">")
			_, num, _ := strings.Cut(rest, "#")
			var n int
			fmt.Sscanf(num, "%d", &n)
			switch {
			case n == next[from]:
				next[from]++
			case n < next[from]:
				t.Errorf("%s: from %s #%d again (duplicate)", u.Name, from, n)
			default:
				t.Errorf("%s: from %s got #%d, expected #%d (reordered or lost)", u.Name, from, n, next[from])
			}
		}
	}
	for i, u := range users {
		r := receipts(u)
		t.Logf("%s: sent %d, SENT %d, received %d", u.Name, len(sentIDs[i]), len(r[cimpb.ReceiptStatus_RECEIPT_SENT]), len(received(u)))
	}
}

// liveAt reads how many gateways the route at base (its internal URL)
// hands out.
func liveAt(base string) (int, error) {
	var body struct {
		Gateways *int `json:"gateways"`
		Data     struct {
			Gateways int `json:"gateways"`
		} `json:"data"`
	}
	if err := harness.GetJSON(base+"/healthz", &body); err != nil {
		return 0, err
	}
	if body.Gateways != nil {
		return *body.Gateways, nil
	}
	return body.Data.Gateways, nil
}

// TestUplinkRetriedOnOtherReplica: a gateway whose uplink call failed after
// the route applied it (the answer was lost with the replica) sends the
// same batch to another replica. The message is stored and delivered once:
// the second replica recognises the client message id (the dedup window
// is in Redis, shared) and answers with the same message id.
func TestUplinkRetriedOnOtherReplica(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	r2 := c.AddRoute()
	ann, ben := c.Connect(t, "ann"), c.Connect(t, "ben")
	batch := &cimpb.UplinkBatch{GatewayId: ann.Info().Gateway, Uplinks: []*cimpb.Uplink{{
		UserId: ann.ID, SessionId: ann.Info().SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{
			To: ben.ID, Body: []byte("only once"), Kind: cimpb.Kind_KIND_TEXT, ClientMsgId: "retried-1",
		}},
	}}}
	body, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range []*harness.Route{c.Route, r2} {
		req, err := http.NewRequest(http.MethodPost, r.InternalURL+contract.PathUplink, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contract.ProtobufType)
		req.Header.Set(contract.Header, harness.InternalSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("uplink to %s: HTTP %d %s", r.Addr, resp.StatusCode, raw)
		}
		var out cimpb.PushBatch
		if err := proto.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		id := ""
		for _, d := range out.Deliveries {
			if rc := d.GetFrame().GetReceipt(); rc != nil && rc.GetClientMsgId() == "retried-1" {
				id = rc.GetMsgId()
			}
		}
		if id == "" {
			t.Fatalf("uplink to %s: no receipt for the message in %v", r.Addr, &out)
		}
		ids = append(ids, id)
	}
	if ids[0] != ids[1] {
		t.Fatalf("the retry on the other replica stored a second message: ids %s and %s", ids[0], ids[1])
	}
	// A later message through the real path follows anything the retry
	// could have delivered; then "only once" must have come once.
	if _, err := ann.Send(ctxT(t), ben.Name, "after"); err != nil {
		t.Fatal(err)
	}
	ben.WaitFor(t, 0, 30*time.Second, "the later message", func(e client.Event) bool {
		return e.Kind == client.EventMessage && string(e.Msg.GetBody()) == "after"
	})
	n := 0
	for _, m := range received(ben) {
		if string(m.Body) == "only once" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("ben got the retried message %d times, want once", n)
	}
}
