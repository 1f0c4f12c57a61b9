package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/config"
	"github.com/gocim/gocim/cim-route/internal/gatewaytest"
	"github.com/gocim/gocim/cim-route/internal/metrics"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/healthprobe"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

// getReady GETs /readyz at base and decodes its answer.
func getReady(t *testing.T, base string) (int, Readiness) {
	t.Helper()
	resp, err := http.Get(base + contract.PathReady)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s%s: HTTP %d, body not JSON: %v", base, contract.PathReady, resp.StatusCode, err)
	}
	return resp.StatusCode, r
}

// waitReadiness waits until /readyz at base answers status with exactly
// the failing checks given.
func waitReadiness(t *testing.T, base string, status int, failing ...string) Readiness {
	t.Helper()
	var r Readiness
	waitFor(t, base+"/readyz "+http.StatusText(status)+" failing "+strings.Join(failing, ","), func() bool {
		var st int
		st, r = getReady(t, base)
		return st == status && slices.Equal(r.Failing, failing)
	})
	return r
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrape reads the internal listener's /metrics: its text and its parsed
// families.
func scrape(t *testing.T, internal string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(internal + contract.PathMetrics) // no secret
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", contract.PathMetrics, resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s does not parse: %v", contract.PathMetrics, err)
	}
	return string(body), fams
}

// sample returns the sample of family name with labels (name, value
// pairs): a counter's or gauge's value, a histogram's count and sum.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) (value, sum float64) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), 0
		case m.Gauge != nil:
			return m.Gauge.GetValue(), 0
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), m.Histogram.GetSampleSum()
		}
	}
	t.Fatalf("no %s%v in /metrics", name, labels)
	return 0, 0
}

// uplink posts a batch to the internal listener as a gateway, and waits
// for the pushes it causes.
func uplink(t *testing.T, a *App, b *cimpb.UplinkBatch) *cimpb.PushBatch {
	t.Helper()
	body, _ := proto.Marshal(b)
	req, _ := http.NewRequest("POST", "http://"+a.InternalAddr()+contract.PathUplink, bytes.NewReader(body))
	req.Header.Set("Content-Type", contract.ProtobufType)
	req.Header.Set(contract.Header, internalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("uplink: HTTP %d %s", resp.StatusCode, raw)
	}
	var out cimpb.PushBatch
	if err := proto.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if err := a.router.WaitDeliveries(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestOps walks the route's operator endpoints against real ZooKeeper and
// Redis: readiness without a gateway, with one, without Redis and without
// ZooKeeper (on both listeners, and through `healthcheck`); liveness; and
// /metrics after real traffic — logins, a refused login, an uplink with a
// private and a group message, its pushes, a SYNC — with the counters and
// histograms where the traffic put them, and an exposition promtool
// accepts.
func TestOps(t *testing.T) {
	zks := testenv.StartZooKeeper(t)
	rds := testenv.StartRedis(t)
	gw := gatewaytest.Start(t, gatewaytest.WithSecret(internalSecret))

	cfg := config.Default()
	cfg.Listen, cfg.InternalListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.InternalSecret = internalSecret
	cfg.LoginRate = 1000
	cfg.ZK, cfg.Redis = zks.Addr, rds.Addr
	cfg.UploadDir = t.TempDir()
	cfg.TokenSecret = "app-test-secret-0123"
	cfg.BcryptCost = 4
	cfg.HealthInterval = 100 * time.Millisecond
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	base, internal := "http://"+a.Addr(), "http://"+a.InternalAddr()
	listeners := []string{base, internal}

	// No gateway registered: alive, serving /healthz, but not ready.
	for _, u := range listeners {
		if st, r := getReady(t, u); st != http.StatusServiceUnavailable || r.Status != StatusNotReady ||
			!slices.Equal(r.Failing, []string{checkGateways}) || !strings.Contains(r.Reason, "gateway") {
			t.Fatalf("%s/readyz without a gateway: HTTP %d %+v", u, st, r)
		}
		if st := getStatus(t, u+contract.PathLive); st != http.StatusOK {
			t.Fatalf("%s/livez: HTTP %d", u, st)
		}
		if st := getStatus(t, u+"/healthz"); st != http.StatusOK {
			t.Fatalf("%s/healthz: HTTP %d (it does not depend on gateways)", u, st)
		}
	}
	if code := healthprobe.Run([]string{internal + contract.PathReady}, "", io.Discard); code != 1 {
		t.Fatalf("healthcheck of /readyz without a gateway: exit %d, want 1", code)
	}
	req, _ := http.NewRequest("POST", internal+contract.PathReady, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The gateway registers: ready once its health check proved it.
	zc, _, err := zk.Connect([]string{zks.Addr}, 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	for _, p := range []string{"/cim", "/cim/servers", "/cim/servers/" + gw.ID} {
		flags := int32(0)
		if p == "/cim/servers/"+gw.ID {
			flags = zk.FlagEphemeral
		}
		if _, err := zc.Create(p, nil, flags, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	for _, u := range listeners {
		if r := waitReadiness(t, u, http.StatusOK); r.Status != StatusReady || r.Gateways != 1 || r.Reason != "" {
			t.Fatalf("%s/readyz with a gateway: %+v", u, r)
		}
	}
	if code := healthprobe.Run([]string{base + contract.PathReady}, "", io.Discard); code != 0 {
		t.Fatalf("healthcheck of /readyz with a gateway: exit %d, want 0", code)
	}

	// /metrics: on the internal listener only.
	if st := getStatus(t, base+contract.PathMetrics); st != http.StatusNotFound {
		t.Fatalf("public /metrics: HTTP %d, want 404", st)
	}
	_, before := scrape(t, internal)
	if n, _ := sample(t, before, "gocim_route_logins_total"); n != 0 {
		t.Fatalf("logins_total = %v before any login", n)
	}

	// Traffic: two logins, two refused, then alice and bob online here.
	type login struct{ UserID, SessionID, AccessToken string }
	var users [2]login
	for i, name := range []string{"alice", "bob"} {
		post(t, base+"/registerAccount", `{"userName":"`+name+`","password":"password1"}`, nil)
		if r := post(t, base+"/login", `{"userName":"`+name+`","password":"password1"}`, &users[i]); r.Code != 9000 {
			t.Fatalf("login %s: %+v", name, r)
		}
		l := users[i]
		online := `{"userId":"` + l.UserID + `","sessionId":"` + l.SessionID + `","gatewayId":"` + gw.ID + `"}`
		if r := post(t, internal+contract.PathOnline, online, nil, contract.Header, internalSecret); r.Code != 9000 {
			t.Fatalf("online %s: %+v", name, r)
		}
		gw.Connect(l.UserID, l.SessionID)
	}
	alice, bob := users[0], users[1]
	if r := post(t, base+"/login", `{"userName":"alice","password":"wrong"}`, nil); r.Code != 9100 {
		t.Fatalf("wrong password: %+v", r)
	}
	if r := post(t, base+"/login", `{"userName":`, nil); r.Code != 3000 {
		t.Fatalf("bad JSON: %+v", r)
	}
	// alice's open group, which bob joins.
	var g struct {
		GroupID string `json:"groupId"`
	}
	if r := post(t, base+"/groups", `{"name":"team","open":true}`, &g, "Authorization", "Bearer "+alice.AccessToken); r.Code != 9000 {
		t.Fatalf("create group: %+v", r)
	}
	if r := post(t, base+"/groups/"+g.GroupID+"/join", ``, nil, "Authorization", "Bearer "+bob.AccessToken); r.Code != 9000 {
		t.Fatalf("join group: %+v", r)
	}
	// One uplink with a private and a group message: both pushed to bob.
	out := uplink(t, a, &cimpb.UplinkBatch{GatewayId: gw.ID, Uplinks: []*cimpb.Uplink{
		{UserId: alice.UserID, SessionId: alice.SessionID, Frame: &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1,
			Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: []byte("hi bob")}}},
		{UserId: alice.UserID, SessionId: alice.SessionID, Frame: &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2,
			Msg: &cimpb.Msg{ClientMsgId: "c2", Group: g.GroupID, Body: []byte("hi team")}}},
	}})
	if len(out.Deliveries) != 2 {
		t.Fatalf("uplink answer %v", out)
	}
	if f := gw.Frames(bob.UserID); len(f) != 2 {
		t.Fatalf("bob got %v, want both messages", f)
	}
	// bob syncs: both messages are in his inbox.
	out = uplink(t, a, &cimpb.UplinkBatch{GatewayId: gw.ID, Uplinks: []*cimpb.Uplink{
		{UserId: bob.UserID, SessionId: bob.SessionID, Frame: &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: 3, Sync: &cimpb.Sync{}}},
	}})
	if len(out.Deliveries) != 3 {
		t.Fatalf("sync answer %v, want two entries and the SYNC", out)
	}

	text, fams := scrape(t, internal)
	counter := func(want float64, name string, labels ...string) {
		t.Helper()
		if v, _ := sample(t, fams, name, labels...); v != want {
			t.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
	}
	histogram := func(wantCount int, minSum float64, name string) {
		t.Helper()
		if n, sum := sample(t, fams, name); int(n) != wantCount || sum < minSum {
			t.Errorf("%s: %v observations summing to %v, want %d summing to at least %v", name, n, sum, wantCount, minSum)
		}
	}
	counter(2, "gocim_route_logins_total")
	counter(1, "gocim_route_login_failures_total", "reason", "bad_credentials")
	counter(1, "gocim_route_login_failures_total", "reason", "bad_request")
	for _, reason := range []string{"rate_limited", "banned", "policy_reject", "no_gateway", "busy", "unavailable", "internal", "resume_refused"} {
		counter(0, "gocim_route_login_failures_total", "reason", reason) // there before anything failed so
	}
	histogram(2, 3, "gocim_route_uplink_batch_messages") // 2 + 1 frames
	histogram(2, 0, "gocim_route_uplink_duration_seconds")
	histogram(1, 2, "gocim_route_sync_messages")
	histogram(1, 1, "gocim_route_fanout_recipients") // bob
	if n, _ := sample(t, fams, "gocim_route_inbox_append_duration_seconds"); n < 1 {
		t.Errorf("inbox_append_duration_seconds: %v observations", n)
	}
	// Pushes: at least the two messages to bob (other pushes, such as
	// group notices, may come along).
	if n, sum := sample(t, fams, "gocim_route_push_batch_frames"); n < 1 || sum < 2 {
		t.Errorf("push_batch_frames: %v requests of %v frames, want at least 2 frames", n, sum)
	}
	if n, _ := sample(t, fams, "gocim_route_push_duration_seconds"); n < 1 {
		t.Errorf("push_duration_seconds: %v observations", n)
	}
	counter(0, "gocim_route_push_errors_total")
	counter(1, "gocim_route_live_gateways")
	counter(0, "gocim_route_webhook_queue_depth") // no --webhook-url
	counter(0, "gocim_route_redis_errors_total")
	counter(0, "gocim_route_zookeeper_errors_total")
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	t.Run("promtool", func(t *testing.T) { testenv.CheckMetrics(t, text) })

	// A push the gateway refuses counts as a push error.
	gw.Close()
	if r := post(t, base+"/p2pRoute", `{"receiveUserId":"bob","msg":"lost"}`, nil, "Authorization", "Bearer "+alice.AccessToken); r.Code != 9000 {
		t.Fatalf("p2p to a dead gateway: %+v", r)
	}
	_, fams = scrape(t, internal)
	if n, _ := sample(t, fams, "gocim_route_push_errors_total"); n < 1 {
		t.Errorf("push_errors_total = %v after a push to a dead gateway", n)
	}

	// Redis stops: not ready, and the failed PINGs count.
	rds.Kill()
	<-rds.Done()
	for _, u := range listeners {
		r := waitReadiness(t, u, http.StatusServiceUnavailable, checkRedis, checkGateways)
		if !strings.Contains(r.Reason, "redis") || strings.Contains(r.Reason, rds.Addr) {
			t.Fatalf("%s/readyz without Redis: %+v (the reason must name redis and not its address)", u, r)
		}
	}
	_, fams = scrape(t, internal)
	if n, _ := sample(t, fams, "gocim_route_redis_errors_total"); n < 1 {
		t.Errorf("redis_errors_total = %v with Redis stopped", n)
	}

	// ZooKeeper stops: its session is lost.
	zks.Kill()
	<-zks.Done()
	waitReadiness(t, internal, http.StatusServiceUnavailable, checkRedis, checkZooKeeper, checkGateways)
	_, fams = scrape(t, internal)
	if n, _ := sample(t, fams, "gocim_route_zookeeper_errors_total"); n < 1 {
		t.Errorf("zookeeper_errors_total = %v with ZooKeeper stopped", n)
	}

	// Once shutdown began, the route says so.
	a.Shutdown(context.Background())
	if r := a.Readiness(context.Background()); r.Status != StatusNotReady || !slices.Contains(r.Failing, checkShutdown) {
		t.Fatalf("readiness once shutdown began: %+v", r)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestCountLogins: each /login answer counts under its reason, read from
// the result code; answers without an envelope fall back on the status,
// and other paths count nothing.
func TestCountLogins(t *testing.T) {
	m := metrics.New()
	var status int
	var body string
	h := countLogins(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}), m)
	serve := func(method, path string) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	}
	answers := []struct {
		status int
		body   string
		reason string // "" : a login
	}{
		{200, `{"code":9000,"message":"success","data":{}}`, ""},
		{400, `{"code":3000,"message":"bad JSON"}`, "bad_request"},
		{413, `{"code":4131,"message":"too large"}`, "bad_request"},
		{401, `{"code":9100,"message":"bad account"}`, "bad_credentials"},
		{401, `{"code":4010,"message":"unauthorized: resume token used or revoked"}`, "resume_refused"},
		{429, `{"code":4291,"message":"too many requests"}`, "rate_limited"},
		{403, `{"code":4030,"message":"forbidden: account banned"}`, "banned"},
		{409, `{"code":5000,"message":"user already logged in"}`, "policy_reject"},
		{503, `{"code":7100,"message":"no gateway available"}`, "no_gateway"},
		{503, `{"code":5032,"message":"busy"}`, "busy"},
		{503, `{"code":5030,"message":"storage unavailable"}`, "unavailable"},
		{500, `{"code":5001,"message":"internal"}`, "internal"},
		{404, `404 page not found`, "bad_request"},
		{502, ``, "internal"},
	}
	for _, a := range answers {
		status, body = a.status, a.body
		serve("POST", "/login")
	}
	status, body = 200, `{"code":9000}`
	serve("GET", "/login")
	serve("POST", "/registerAccount")

	fams := map[string]*dto.MetricFamily{}
	got, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		fams[f.GetName()] = f
	}
	want := map[string]float64{}
	for _, a := range answers {
		if a.reason != "" {
			want[a.reason]++
		}
	}
	if n, _ := sample(t, fams, "gocim_route_logins_total"); n != 1 {
		t.Errorf("logins_total = %v, want 1", n)
	}
	for reason, n := range want {
		if v, _ := sample(t, fams, "gocim_route_login_failures_total", "reason", reason); v != n {
			t.Errorf("login_failures_total{reason=%q} = %v, want %v", reason, v, n)
		}
	}
}
