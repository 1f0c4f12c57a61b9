package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gocim/gocim/cim-server/internal/wsconn"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// scrape reads /metrics: its text and its parsed families.
func scrape(t *testing.T, g *Gateway) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + g.HTTPAddr().String() + contract.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", contract.PathMetrics, resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s does not parse: %v", contract.PathMetrics, err)
	}
	return string(body), fams
}

// metricValue returns the value of the sample of family name with labels
// (name=value pairs; a histogram's sample count), and whether it exists.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
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
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// wantMetric fails unless the sample is there with value want.
func wantMetric(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := metricValue(fams, name, labels...)
	if !ok || got != want {
		t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
	}
}

// getJSON GETs path on the HTTP listener and decodes its JSON answer.
func getJSON(t *testing.T, g *Gateway, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + g.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s: %d, body not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

// waitReady waits until /readyz answers want, and returns its body.
func waitReady(t *testing.T, g *Gateway, want int) map[string]any {
	t.Helper()
	var body map[string]any
	waitFor(t, "/readyz "+http.StatusText(want), func() bool {
		var status int
		status, body = getJSON(t, g, contract.PathReady)
		return status == want
	})
	return body
}

// postDrain POSTs /drain with internal secret key (none when empty).
func postDrain(t *testing.T, g *Gateway, key string) (int, contract.Drain) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+g.HTTPAddr().String()+contract.PathDrain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(contract.Header, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d contract.Drain
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, d
}

// TestMetricsAfterTraffic: logins over TCP and WebSocket, a refused login,
// a message with its receipt and a push move the gateway's counters under
// the right labels, and the exposition passes promtool.
func TestMetricsAfterTraffic(t *testing.T) {
	g, route := startWSGateway(t, nil)
	tcp := login(t, g, "1", "s1")
	ws := wsLogin(t, g, wsconn.Binary, "2", "s2")

	bad := dial(t, g)
	bad.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: "not-a-token"}})
	if f := bad.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Unauthorized {
		t.Fatalf("bad token: got %v", f)
	}
	bad.expectEOF()

	tcp.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 7, Msg: &cimpb.Msg{To: "2", Kind: cimpb.Kind_KIND_TEXT, Body: []byte("hi"), ClientMsgId: "c1"}})
	if f := tcp.recv(); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "c1" {
		t.Fatalf("got %v, want RECEIPT", f)
	}
	res := push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "2",
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{From: "1", To: "2", Kind: cimpb.Kind_KIND_TEXT, Body: []byte("hi"), Seq: 1}}}}})
	if res.Delivered != 1 {
		t.Fatalf("push: %v", res)
	}
	if f := ws.recv(); f.Type != cimpb.Type_MSG || f.Msg.Seq != 1 {
		t.Fatalf("WebSocket client got %v, want the pushed MSG", f)
	}
	// The refused connection is counted once the gateway is done with it.
	waitFor(t, "the refused login counted", func() bool {
		_, fams := scrape(t, g)
		v, _ := metricValue(fams, "gocim_gateway_login_failures_total", "transport", "tcp", "reason", "bad_token")
		return v == 1
	})

	text, fams := scrape(t, g)
	const p = "gocim_gateway_"
	wantMetric(t, fams, 1, p+"logins_total", "transport", "tcp")
	wantMetric(t, fams, 1, p+"logins_total", "transport", "ws")
	wantMetric(t, fams, 0, p+"logins_total", "transport", "mqtt")
	wantMetric(t, fams, 1, p+"connections", "transport", "tcp")
	wantMetric(t, fams, 1, p+"connections", "transport", "ws")
	wantMetric(t, fams, 0, p+"login_failures_total", "transport", "ws", "reason", "bad_token")
	wantMetric(t, fams, 3, p+"frames_received_total", "type", "login")
	wantMetric(t, fams, 1, p+"frames_received_total", "type", "msg")
	wantMetric(t, fams, 2, p+"frames_sent_total", "type", "login_ack")
	wantMetric(t, fams, 1, p+"frames_sent_total", "type", "receipt")
	wantMetric(t, fams, 1, p+"frames_sent_total", "type", "msg")
	wantMetric(t, fams, 1, p+"frames_sent_total", "type", "error")
	wantMetric(t, fams, 0, p+"frames_sent_total", "type", "unknown")
	wantMetric(t, fams, 1, p+"push_batch_frames")
	wantMetric(t, fams, 1, p+"push_duration_seconds")
	wantMetric(t, fams, 0, p+"route_errors_total")
	wantMetric(t, fams, 0, p+"slow_consumer_closes_total", "transport", "tcp")
	wantMetric(t, fams, 0, p+"draining")
	wantMetric(t, fams, 0, p+"zookeeper_registered")
	wantMetric(t, fams, 0, p+"zookeeper_errors_total")
	// The MSG's batch was counted before its RECEIPT was delivered; the
	// logins' SYNCs may still be on their way.
	if n, _ := metricValue(fams, p+"uplink_batch_messages"); n < 1 {
		t.Errorf("uplink_batch_messages counts %v batches, want at least 1", n)
	}
	if n, _ := metricValue(fams, p+"uplink_duration_seconds"); n < 1 {
		t.Errorf("uplink_duration_seconds counts %v calls, want at least 1", n)
	}
	if s := fams[p+"push_batch_frames"].Metric[0].Histogram.GetSampleSum(); s != 1 {
		t.Errorf("push_batch_frames sum %v, want 1 frame", s)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing: no Go or process collector", name)
		}
	}
	route.mu.Lock()
	uplinks := len(route.uplinks)
	route.mu.Unlock()
	if uplinks != 1 {
		t.Errorf("route got %d uplinks, want the MSG", uplinks)
	}

	t.Run("promtool", func(t *testing.T) { testenv.CheckMetrics(t, text) })
}

// TestReadiness: /livez answers while the process serves; /readyz answers
// 200 once the route answered, and 503 with the reason when the route is
// gone.
func TestReadiness(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	if status, body := getJSON(t, g, contract.PathLive); status != http.StatusOK || body["status"] != contract.HealthOK {
		t.Fatalf("/livez: %d %v", status, body)
	}
	if body := waitReady(t, g, http.StatusOK); body["status"] != "ready" {
		t.Fatalf("/readyz: %v", body)
	}

	route.srv.Close()
	g.probeRoute(time.Second)
	if body := waitReady(t, g, http.StatusServiceUnavailable); body["reason"] != errNotReadyRoute.Error() {
		t.Fatalf("/readyz without a route: %v, want reason %q", body, errNotReadyRoute)
	}
	_, fams := scrape(t, g)
	if n, _ := metricValue(fams, "gocim_gateway_route_errors_total"); n < 1 {
		t.Errorf("route_errors_total %v after a failed probe", n)
	}
	if status, _ := getJSON(t, g, contract.PathLive); status != http.StatusOK {
		t.Fatalf("/livez without a route: %d", status)
	}
}

// TestReadinessFollowsZooKeeper: registered, the gateway is ready; once its
// ZooKeeper session is lost it is not, and it is again after ZooKeeper is
// back.
func TestReadinessFollowsZooKeeper(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	route := newFakeRoute(t)
	g := startRegistered(t, z, route)
	waitReady(t, g, http.StatusOK)
	_, fams := scrape(t, g)
	wantMetric(t, fams, 1, "gocim_gateway_zookeeper_registered")

	z.Kill()
	if body := waitReady(t, g, http.StatusServiceUnavailable); body["reason"] != errNotReadyUnregistered.Error() {
		t.Fatalf("/readyz without ZooKeeper: %v, want reason %q", body, errNotReadyUnregistered)
	}
	_, fams = scrape(t, g)
	wantMetric(t, fams, 0, "gocim_gateway_zookeeper_registered")
	if n, _ := metricValue(fams, "gocim_gateway_zookeeper_errors_total"); n < 1 {
		t.Errorf("zookeeper_errors_total %v after the connection was lost", n)
	}

	z.Restart()
	waitReady(t, g, http.StatusOK)
}

// TestAdminDrain: POST /drain needs the internal secret; with it, the
// gateway leaves ZooKeeper, refuses new clients on TCP and WebSocket,
// closes its clients with ERROR GoingAway, and stays up reporting not
// ready; a second call answers Already.
func TestAdminDrain(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.WSListen = "127.0.0.1:0"
		c.ZK = z.Addr
		c.ZKRoot = "/gwdrain"
		c.Drain = 200 * time.Millisecond
	})
	<-g.Registered()
	waitReady(t, g, http.StatusOK)
	tcp := login(t, g, "1", "s1")
	ws := wsLogin(t, g, wsconn.JSON, "2", "s2")

	for _, key := range []string{"", "wrong-secret-0123456789"} {
		if status, _ := postDrain(t, g, key); status != http.StatusUnauthorized {
			t.Fatalf("/drain with secret %q: %d, want 401", key, status)
		}
	}
	if status, _ := getJSON(t, g, contract.PathReady); status != http.StatusOK || g.Draining() {
		t.Fatalf("refused /drain drained anyway: /readyz %d", status)
	}

	status, d := postDrain(t, g, internalSecret)
	if status != http.StatusOK || d.Already || d.Connections != 2 {
		t.Fatalf("/drain: %d %+v, want 2 connections", status, d)
	}
	if f := tcp.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.GoingAway {
		t.Fatalf("TCP client got %v, want ERROR GoingAway", f)
	}
	tcp.expectEOF()
	if f := ws.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.GoingAway {
		t.Fatalf("WebSocket client got %v, want ERROR GoingAway", f)
	}
	ws.expectClose()

	if body := waitReady(t, g, http.StatusServiceUnavailable); body["reason"] != errNotReadyDraining.Error() {
		t.Fatalf("/readyz while draining: %v", body)
	}
	if nc, err := net.DialTimeout("tcp", g.Addr().String(), 5*time.Second); err == nil {
		nc.Close()
		t.Fatal("a TCP connection was accepted while draining")
	}
	if _, _, err := dialWS(t, g.WSURL(), wsconn.JSON, nil, nil); err == nil {
		t.Fatal("a WebSocket was accepted while draining")
	}
	obs, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	if ok, _, err := obs.Exists("/gwdrain/servers/" + g.ID()); err != nil || ok {
		t.Fatalf("ZooKeeper node still there while draining (%v)", err)
	}
	waitFor(t, "both sessions reported offline", func() bool {
		route.mu.Lock()
		defer route.mu.Unlock()
		return len(route.offline) == 2
	})
	_, fams := scrape(t, g)
	wantMetric(t, fams, 1, "gocim_gateway_draining")
	wantMetric(t, fams, 0, "gocim_gateway_zookeeper_registered")
	wantMetric(t, fams, 0, "gocim_gateway_connections", "transport", "tcp")
	wantMetric(t, fams, 0, "gocim_gateway_connections", "transport", "ws")
	// /healthz is unchanged: the process still serves pushes.
	if status, _ := healthz(t, g); status != http.StatusOK {
		t.Fatalf("/healthz while draining: %d", status)
	}

	if status, d := postDrain(t, g, internalSecret); status != http.StatusOK || !d.Already || d.Connections != 0 {
		t.Fatalf("second /drain: %d %+v, want Already", status, d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after a drain: %v", err)
	}
}
