package router

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/cim-route/internal/webhook"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// appSink is a sink that also queues synchronously (event.Queue), or
// fails to when fail is set.
type appSink struct {
	*sink
	qmu    sync.Mutex
	queued []event.Event
	fail   error
}

func (s *appSink) Enqueue(_ context.Context, evs []event.Event) error {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.queued = append(s.queued, evs...)
	return nil
}

func (s *appSink) take() []event.Event {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	out := s.queued
	s.queued = nil
	return out
}

func (s *appSink) setFail(err error) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.fail = err
}

// appFrame is an uplink MSG to the app back-end.
func appFrame(reqID uint64, cmid string, kind cimpb.Kind, body []byte) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: reqID, Msg: &cimpb.Msg{ClientMsgId: cmid, ToApp: true, Kind: kind, Body: body}}
}

// errorCode is the code of an ERROR answer (0 for anything else).
func errorCode(f *cimpb.Frame) codes.Code {
	if f.Type != cimpb.Type_ERROR {
		return 0
	}
	return codes.Code(f.Error.Code)
}

// TestDeviceData: a MSG with to_app becomes a device.data event queued
// before the sender's RECEIPT_SENT, with the exact message; nothing is
// stored in any inbox; a queue that fails answers ERROR Unavailable (no
// SENT), and other messages of the batch go on; malformed ones are
// refused.
func TestDeviceData(t *testing.T) {
	hooks := &appSink{sink: &sink{t: t}}
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) { c.Events = hooks })
	d := e.newDevice("sensor-1")
	dev, _ := e.connectDevice(d, e.gws[0].ID, false)
	alice := e.connect("alice")
	bin := []byte{0, 0xff, 0xfe, 'x'}
	ds := e.uplink(dev, appFrame(1, "d1", cimpb.Kind_KIND_BINARY, bin), appFrame(2, "d2", cimpb.Kind_KIND_TEXT, []byte("temp=21.5")))
	ids := sentIDs(t, ds)
	evs := hooks.take()
	if len(evs) != 2 {
		t.Fatalf("%d events queued, want 2", len(evs))
	}
	ts := ds[0].Frame.Receipt.TimestampMs
	want := []event.AppMessage{
		{MsgID: ids[0], From: d.ID, FromName: "sensor-1", TimestampMs: ts, Kind: "binary", Body: bin, ClientMsgID: "d1"},
		{MsgID: ids[1], From: d.ID, FromName: "sensor-1", TimestampMs: ts, Kind: "text", Text: "temp=21.5", ClientMsgID: "d2"},
	}
	for i, ev := range evs {
		if ev.Type != event.DeviceData || ev.ID == "" || ev.TimeMs != ts || !reflect.DeepEqual(ev.Data, want[i]) {
			t.Fatalf("event %d = %+v, want data %+v", i, ev, want[i])
		}
	}
	for _, uid := range []string{d.ID, alice.UserID} {
		if in := e.inbox(uid); len(in) != 0 {
			t.Fatalf("inbox of %s holds %v", uid, in)
		}
	}
	if f := e.frames(alice); len(f) != 0 {
		t.Fatalf("alice got %v", f)
	}

	// The queue fails: no SENT for the app's messages, the others go on.
	hooks.setFail(webhook.ErrQueueFull)
	ds = e.uplink(dev, appFrame(3, "d3", cimpb.Kind_KIND_TEXT, []byte("temp=22")), msgFrame(4, "c4", "alice"))
	if f := ds[0].Frame; errorCode(f) != codes.Unavailable || f.Error.ClientMsgId != "d3" || f.ReqId != 3 {
		t.Fatalf("answer with the queue failing: %v, want ERROR Unavailable", f)
	}
	if f := ds[1].Frame; f.Type != cimpb.Type_RECEIPT || f.Receipt.Status != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("the batch's other message: %v, want SENT", f)
	}
	if evs := hooks.take(); len(evs) != 0 {
		t.Fatalf("queued %v", evs)
	}
	// The device sends it again once the queue takes it.
	hooks.setFail(nil)
	sentIDs(t, e.uplink(dev, appFrame(5, "d3", cimpb.Kind_KIND_TEXT, []byte("temp=22"))))
	if evs := hooks.take(); len(evs) != 1 || evs[0].Data.(event.AppMessage).Text != "temp=22" {
		t.Fatalf("queued %v", evs)
	}

	// Malformed: a recipient besides, a file, text that is no UTF-8, an
	// edit.
	for i, f := range []*cimpb.Frame{
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "x1", ToApp: true, To: "alice", Body: []byte("x")}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "x2", ToApp: true, Group: "1", Body: []byte("x")}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "x3", ToApp: true, Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "a"}}},
		appFrame(0, "x4", cimpb.Kind_KIND_TEXT, []byte{0xff}),
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "x5", ToApp: true, Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: ids[1], Body: []byte("x")}},
	} {
		if ds := e.uplink(dev, f); errorCode(ds[0].Frame) != codes.BadArgument {
			t.Errorf("malformed %d: %v, want ERROR BadArgument", i, ds[0].Frame)
		}
	}
	if evs := hooks.take(); len(evs) != 0 {
		t.Fatalf("queued %v", evs)
	}
}

// TestDeviceDataNoBackEnd: without webhooks, or with webhooks that take no
// device.data, a message to the app back-end is refused with Forbidden.
func TestDeviceDataNoBackEnd(t *testing.T) {
	for name, events := range map[string]event.Sink{
		"no webhooks":    nil,
		"other types":    &appSink{sink: &sink{t: t, only: map[event.Type]bool{event.MessageApp: true}}},
		"no sync queue":  &sink{t: t},
		"discard events": event.Discard{},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Events = events })
			dev, _ := e.connectDevice(e.newDevice("sensor-1"), e.gws[0].ID, false)
			ds := e.uplink(dev, appFrame(1, "d1", cimpb.Kind_KIND_TEXT, []byte("x")))
			if f := ds[0].Frame; errorCode(f) != codes.Forbidden || f.Error.Text == "" {
				t.Fatalf("answer %v, want ERROR Forbidden", f)
			}
		})
	}
}

// TestDeviceDataWebhook: through the real webhook queue in Redis, the app
// back-end receives the device.data event with exactly the message sent;
// a full queue answers ERROR Unavailable and nothing is SENT.
func TestDeviceDataWebhook(t *testing.T) {
	secret := []byte("webhook-secret-0123456789")
	bodies := make(chan []byte, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), b, time.Now(), time.Minute); err != nil ||
			r.Header.Get(webhook.HeaderEvent) != string(event.DeviceData) {
			t.Errorf("request %v: %v", r.Header, err)
		}
		bodies <- b
	}))
	t.Cleanup(rcv.Close)
	redis := testenv.StartRedis(t)
	rdb := store.NewClient(store.ClientConfig{Addrs: []string{redis.Addr}})
	t.Cleanup(func() { rdb.Close() })
	d, err := webhook.New(webhook.Config{Redis: rdb, Prefix: "cim:", URLs: []string{rcv.URL}, Secret: secret,
		QueueMax: 1, Poll: 10 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Events = d })
	dev, _ := e.connectDevice(e.newDevice("sensor-1"), e.gws[0].ID, false)
	body := []byte{1, 2, 3, 0xff, 0}

	// Nothing delivers yet: the queue holds the first message and refuses
	// the second.
	ds := e.uplink(dev, appFrame(1, "d1", cimpb.Kind_KIND_BINARY, body))
	ids := sentIDs(t, ds)
	if ds := e.uplink(dev, appFrame(2, "d2", cimpb.Kind_KIND_TEXT, []byte("second"))); errorCode(ds[0].Frame) != codes.Unavailable {
		t.Fatalf("answer with the queue full: %v, want ERROR Unavailable", ds[0].Frame)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	got := receive(t, bodies)
	want := map[string]any{
		"msgId": ids[0], "from": dev.UserID, "fromName": "sensor-1", "kind": "binary",
		"body": base64.StdEncoding.EncodeToString(body), "clientMsgId": "d1",
		"timestampMs": float64(ds[0].Frame.Receipt.TimestampMs),
	}
	if got["type"] != string(event.DeviceData) || got["id"] == "" || !reflect.DeepEqual(got["data"], want) {
		t.Fatalf("webhook body %v, want data %v", got, want)
	}

}

// receive decodes the next webhook body, failing after a generous time.
func receive(t *testing.T, bodies <-chan []byte) map[string]any {
	t.Helper()
	select {
	case b := <-bodies:
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("webhook body %q: %v", b, err)
		}
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook request in 30s")
	}
	return nil
}
