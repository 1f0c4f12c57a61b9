package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/gwproof"
	"github.com/gocim/gocim/proto/cimpb"
)

const (
	currentSecret = "current-internal-secret"
	oldSecret     = "previous-internal-secret"
)

// secrets is what the tests' handlers accept: a current and a previous
// secret, as during a rotation.
var secrets = func() *contract.Secrets {
	s, err := contract.ParseSecrets([]string{currentSecret, oldSecret})
	if err != nil {
		panic(err)
	}
	return s
}()

func newAPI(g *fakeGateway) http.Handler { return New(g, g, nil, secrets, nil, Ops{}) }

// fakeGateway delivers to users whose id starts with "on".
type fakeGateway struct {
	pushed   []*cimpb.PushBatch
	conns    int
	stopping atomic.Bool
}

func (g *fakeGateway) PushWire(body []byte) (*cimpb.PushResult, error) {
	b := &cimpb.PushBatch{}
	if err := proto.Unmarshal(body, b); err != nil {
		return nil, err
	}
	return g.Push(b), nil
}

func (g *fakeGateway) Push(b *cimpb.PushBatch) *cimpb.PushResult {
	g.pushed = append(g.pushed, b)
	res := &cimpb.PushResult{}
	for i, d := range b.Deliveries {
		if strings.HasPrefix(d.UserId, "on") {
			res.Delivered++
		} else {
			res.Missing = append(res.Missing, uint32(i))
		}
	}
	return res
}

func (g *fakeGateway) Connections() int   { return g.conns }
func (g *fakeGateway) ShuttingDown() bool { return g.stopping.Load() }
func (g *fakeGateway) ID() string         { return fakeID }

const fakeID = "127.0.0.1:9000:9100"

// do sends a request with the current internal secret.
func do(t *testing.T, h http.Handler, method, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	return doWith(t, h, method, path, body, currentSecret)
}

// doWith sends a request with secret in X-CIM-Internal (none when empty).
func doWith(t *testing.T, h http.Handler, method, path string, body []byte, secret string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contract.ProtobufType)
	if secret != "" {
		req.Header.Set(contract.Header, secret)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPush(t *testing.T) {
	g := &fakeGateway{}
	h := newAPI(g)
	batch := &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "on1", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: []byte("hi")}}},
		{UserId: "off", Frame: &cimpb.Frame{Type: cimpb.Type_MSG}},
		{UserId: "on2", SessionId: "s", Frame: &cimpb.Frame{Type: cimpb.Type_KICK}},
	}}
	body, _ := proto.Marshal(batch)
	rec := do(t, h, http.MethodPost, "/push", body)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != contract.ProtobufType {
		t.Fatalf("status %d type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var res cimpb.PushResult
	if err := proto.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 2 || len(res.Missing) != 1 || res.Missing[0] != 1 {
		t.Fatalf("result %v, want delivered 2 missing [1]", &res)
	}
	if len(g.pushed) != 1 || !proto.Equal(g.pushed[0], batch) {
		t.Fatalf("gateway got %v", g.pushed)
	}
	// An empty body is an empty batch, not an error.
	if rec := do(t, h, http.MethodPost, "/push", nil); rec.Code != http.StatusOK {
		t.Fatalf("empty batch: %d %s", rec.Code, rec.Body)
	}
}

func TestPushBadBody(t *testing.T) {
	g := &fakeGateway{}
	h := newAPI(g)
	rec := do(t, h, http.MethodPost, "/push", []byte{0x0a, 0xff, 0xff, 0xff})
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", rec.Code)
	}
	var r struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("error body is not JSON: %s", rec.Body)
	}
	if r.Code != 3000 || !strings.Contains(r.Message, "PushBatch") {
		t.Fatalf("error body %+v", r)
	}
	if len(g.pushed) != 0 {
		t.Fatal("bad body reached the gateway")
	}
}

func TestPushTooLarge(t *testing.T) {
	g := &fakeGateway{}
	h := newHandler(g, g, nil, secrets, nil, 1000, Ops{})
	req := httptest.NewRequest(http.MethodPost, "/push", io.LimitReader(zeros{}, 1010))
	req.Header.Set(contract.Header, currentSecret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", rec.Code)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestPushNeedsInternalSecret: /push without the internal secret, or with a
// wrong one, is 401 with a JSON error and reaches no connection; the current
// and the previous secret both work.
func TestPushNeedsInternalSecret(t *testing.T) {
	body, _ := proto.Marshal(&cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "on1", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: []byte("forged")}}}}})
	for _, secret := range []string{"", "wrong-internal-secret!", currentSecret[:len(currentSecret)-1], currentSecret + "x"} {
		g := &fakeGateway{}
		rec := doWith(t, newAPI(g), http.MethodPost, "/push", body, secret)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("secret %q: status %d, want 401", secret, rec.Code)
		}
		var r struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Code != 4010 || !strings.Contains(r.Message, contract.Header) {
			t.Fatalf("secret %q: error body %s", secret, rec.Body)
		}
		if len(g.pushed) != 0 {
			t.Fatalf("secret %q: a push without the right secret reached the gateway", secret)
		}
	}
	for _, secret := range []string{currentSecret, oldSecret} {
		g := &fakeGateway{}
		if rec := doWith(t, newAPI(g), http.MethodPost, "/push", body, secret); rec.Code != http.StatusOK || len(g.pushed) != 1 {
			t.Fatalf("secret %q: status %d, %d pushes", secret, rec.Code, len(g.pushed))
		}
	}
	// Without configured secrets nothing gets in.
	g := &fakeGateway{}
	if rec := doWith(t, New(g, g, nil, nil, nil, Ops{}), http.MethodPost, "/push", body, currentSecret); rec.Code != http.StatusUnauthorized || len(g.pushed) != 0 {
		t.Fatalf("nil secrets: status %d, %d pushes", rec.Code, len(g.pushed))
	}
}

func TestHealthz(t *testing.T) {
	g := &fakeGateway{conns: 3}
	h := newAPI(g)
	// /healthz is open: no internal secret.
	rec := doWith(t, h, http.MethodGet, "/healthz", nil, "")
	var r struct {
		Status      string `json:"status"`
		Connections int    `json:"connections"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != 200 || r.Status != "ok" || r.Connections != 3 {
		t.Fatalf("healthz: %d %s", rec.Code, rec.Body)
	}
	g.stopping.Store(true)
	if rec := do(t, h, http.MethodGet, "/healthz", nil); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz while shutting down: %d", rec.Code)
	}
}

// TestHealthzProof: with a challenge, /healthz proves the gateway holds the
// current internal secret, bound to its own id, while healthy and while
// draining; the answer never contains the secret; a malformed challenge is
// refused.
func TestHealthzProof(t *testing.T) {
	g := &fakeGateway{conns: 1}
	h := newAPI(g)
	type answer struct {
		Status string `json:"status"`
		ID     string `json:"id"`
		Proof  string `json:"proof"`
	}
	probe := func(challenge string) (int, answer, string) {
		rec := doWith(t, h, http.MethodGet, "/healthz?"+gwproof.Param+"="+challenge, nil, "")
		var a answer
		_ = json.Unmarshal(rec.Body.Bytes(), &a)
		return rec.Code, a, rec.Body.String()
	}
	for _, stopping := range []bool{false, true} {
		g.stopping.Store(stopping)
		c := gwproof.NewChallenge()
		code, a, raw := probe(c)
		want := map[bool]int{false: http.StatusOK, true: http.StatusServiceUnavailable}[stopping]
		if code != want || a.ID != fakeID {
			t.Fatalf("stopping=%v: %d %s", stopping, code, raw)
		}
		if !gwproof.Verify([]string{currentSecret}, c, fakeID, a.Proof) {
			t.Fatalf("stopping=%v: proof %q does not verify", stopping, a.Proof)
		}
		if gwproof.Verify([]string{currentSecret}, c, "127.0.0.1:9001:9101", a.Proof) {
			t.Fatal("the proof is valid for another gateway id")
		}
		if strings.Contains(raw, currentSecret) || strings.Contains(raw, oldSecret) {
			t.Fatalf("the answer leaks a secret: %s", raw)
		}
	}
	g.stopping.Store(false)
	for _, bad := range []string{"", "xyz", strings.Repeat("a", 31), strings.Repeat("ab", 65), strings.Repeat("g", 64)} {
		if code, a, raw := probe(bad); code != http.StatusBadRequest || a.Proof != "" {
			t.Errorf("challenge %q: %d %s, want 400 without proof", bad, code, raw)
		}
	}
	// Without a challenge /healthz stays as load balancers know it.
	if rec := doWith(t, h, http.MethodGet, "/healthz", nil, ""); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "proof") {
		t.Fatalf("plain healthz: %d %s", rec.Code, rec.Body)
	}
}

func TestUnknownRoute(t *testing.T) {
	g := &fakeGateway{}
	if rec := do(t, newAPI(g), http.MethodGet, "/push", nil); rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /push: %d", rec.Code)
	}
}

// TestOps: /livez always answers; /readyz follows Ops.Ready with the
// reason in its 503; /metrics is open; /drain needs the secret and hands
// Ops.Drain the caller's address.
func TestOps(t *testing.T) {
	g := &fakeGateway{conns: 3}
	var notReady error
	var drains []string
	h := New(g, g, nil, secrets, nil, Ops{
		Ready:   func() error { return notReady },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("gocim_up 1\n")) }),
		Drain: func(remote string) contract.Drain {
			drains = append(drains, remote)
			return contract.Drain{Connections: g.conns, Already: len(drains) > 1}
		},
	})
	if rec := doWith(t, h, http.MethodGet, contract.PathLive, nil, ""); rec.Code != http.StatusOK {
		t.Fatalf("/livez: %d %s", rec.Code, rec.Body)
	}
	if rec := doWith(t, h, http.MethodGet, contract.PathReady, nil, ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ready"`) {
		t.Fatalf("/readyz: %d %s", rec.Code, rec.Body)
	}
	notReady = errors.New("draining")
	if rec := doWith(t, h, http.MethodGet, contract.PathReady, nil, ""); rec.Code != http.StatusServiceUnavailable ||
		rec.Body.String() != `{"status":"not ready","reason":"draining"}` {
		t.Fatalf("/readyz not ready: %d %s", rec.Code, rec.Body)
	}
	if rec := doWith(t, h, http.MethodGet, contract.PathMetrics, nil, ""); rec.Code != http.StatusOK || rec.Body.String() != "gocim_up 1\n" {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	for _, secret := range []string{"", "wrong"} {
		if rec := doWith(t, h, http.MethodPost, contract.PathDrain, nil, secret); rec.Code != http.StatusUnauthorized || len(drains) != 0 {
			t.Fatalf("/drain with secret %q: %d, %d drains", secret, rec.Code, len(drains))
		}
	}
	if rec := doWith(t, h, http.MethodGet, contract.PathDrain, nil, currentSecret); rec.Code == http.StatusOK || len(drains) != 0 {
		t.Fatalf("GET /drain: %d", rec.Code)
	}
	rec := do(t, h, http.MethodPost, contract.PathDrain, nil)
	if rec.Code != http.StatusOK || rec.Body.String() != `{"connections":3,"already":false}` || len(drains) != 1 || drains[0] != "192.0.2.1:1234" {
		t.Fatalf("/drain: %d %s, drains %q", rec.Code, rec.Body, drains)
	}
	if rec := do(t, h, http.MethodPost, contract.PathDrain, nil); !strings.Contains(rec.Body.String(), `"already":true`) {
		t.Fatalf("second /drain: %s", rec.Body)
	}
}
