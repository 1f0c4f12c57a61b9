package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gocim/gocim/proto/cimpb"
)

// A nil *Gateway and a nil *Transport count nothing and do not panic:
// components built without metrics need no special case.
func TestNilIsANoOp(t *testing.T) {
	var m *Gateway
	tr := m.Transport(TCP)
	if tr != nil {
		t.Fatal("nil Gateway returned a Transport")
	}
	tr.LoggedIn()
	tr.LoggedOut()
	tr.LoginFailed(BadToken)
	tr.SlowConsumer()
	tr.FrameIn(cimpb.Type_MSG)
	tr.FrameOut(cimpb.Type_MSG)
	m.Uplink(3, 0)
	m.Push(3, 0)
	m.RouteError()
	m.ZooKeeperError()
	if m.Registry() != nil || m.Handler() == nil {
		t.Fatal("nil Gateway: want no registry and a handler")
	}
}

// Every label value exists from the start (a dashboard sees zeros, not
// gaps), the frame types are the protocol's in lower case, and the state
// gauges read their functions at scrape time.
func TestLabelsAndState(t *testing.T) {
	draining := false
	m := New(nil, func() bool { return draining })
	if m.Transport("udp") != nil {
		t.Fatal("unknown transport has metrics")
	}
	tcp, ws := m.Transport(TCP), m.Transport(WS)
	tcp.LoggedIn()
	tcp.LoggedIn()
	tcp.LoggedOut()
	ws.LoginFailed(Timeout)
	ws.LoginFailed(numReasons) // out of range: ignored
	tcp.FrameIn(cimpb.Type_LOGIN)
	tcp.FrameOut(cimpb.Type(999))
	ws.SlowConsumer()

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, f := range mfs {
		series[f.GetName()] = len(f.Metric)
	}
	for name, want := range map[string]int{
		"gocim_gateway_connections":                3,
		"gocim_gateway_logins_total":               3,
		"gocim_gateway_login_failures_total":       3 * int(numReasons),
		"gocim_gateway_slow_consumer_closes_total": 3,
		"gocim_gateway_frames_received_total":      len(cimpb.Type_name) + 1,
		"gocim_gateway_frames_sent_total":          len(cimpb.Type_name) + 1,
		"gocim_gateway_zookeeper_registered":       1,
		"gocim_gateway_draining":                   1,
	} {
		if series[name] != want {
			t.Errorf("%s has %d series, want %d", name, series[name], want)
		}
	}
	expect := `
# HELP gocim_gateway_connections Logged-in client connections, by transport.
# TYPE gocim_gateway_connections gauge
gocim_gateway_connections{transport="mqtt"} 0
gocim_gateway_connections{transport="tcp"} 1
gocim_gateway_connections{transport="ws"} 0
# HELP gocim_gateway_draining 1 once the gateway began draining (POST /drain or shutdown).
# TYPE gocim_gateway_draining gauge
gocim_gateway_draining 1
`
	draining = true
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(expect),
		"gocim_gateway_connections", "gocim_gateway_draining"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(tcp.logins), 2, "tcp logins"},
		{testutil.ToFloat64(ws.failures[Timeout]), 1, "ws timeout failures"},
		{testutil.ToFloat64(ws.slow), 1, "ws slow consumers"},
		{testutil.ToFloat64(tcp.in.byType[cimpb.Type_LOGIN]), 1, "login frames in"},
		{testutil.ToFloat64(tcp.out.unknown), 1, "unknown frames out"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// Counting on the hot path does not allocate.
func TestHotPathDoesNotAllocate(t *testing.T) {
	tr := New(nil, nil).Transport(MQTT)
	if n := testing.AllocsPerRun(1000, func() {
		tr.FrameIn(cimpb.Type_MSG)
		tr.FrameOut(cimpb.Type_RECEIPT)
		tr.LoggedIn()
		tr.LoggedOut()
		tr.LoginFailed(Closed)
	}); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}
