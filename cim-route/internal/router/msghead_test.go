package router

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
)

func TestPeekMsg(t *testing.T) {
	full := &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 9, Msg: &cimpb.Msg{
		ClientMsgId: "c1", MsgId: "m1", Seq: 7, From: "12", FromName: "alice", To: "13", Group: "4",
		Body: []byte("hello"), Kind: cimpb.Kind_KIND_FILE, TimestampMs: 99, Broadcast: true,
		File: &cimpb.FileInfo{Name: "a.txt", Size: 3},
	}}
	raw, _ := proto.Marshal(full)
	h, ok := peekMsg(raw)
	if want := (msgHead{from: "12", msgID: "m1", clientMsgID: "c1", group: "4", broadcast: true}); !ok || h != want {
		t.Fatalf("peekMsg = %+v, %v; want %+v", h, ok, want)
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"receipt", mustMarshal(t, &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{MsgId: "m1"}})},
		{"msg type without msg", mustMarshal(t, &cimpb.Frame{Type: cimpb.Type_MSG})},
		{"truncated", raw[:len(raw)-3]},
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"empty", nil},
	} {
		if h, ok := peekMsg(tc.raw); ok {
			t.Errorf("%s: peekMsg = %+v, true; want false", tc.name, h)
		}
	}
	// Whatever proto.Unmarshal reads as a MSG, peekMsg reads the same.
	for _, f := range []*cimpb.Frame{
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{From: "1", MsgId: "x"}},
		{Msg: &cimpb.Msg{From: "1"}, Type: cimpb.Type_MSG, Sync: &cimpb.Sync{AfterSeq: 3}},
	} {
		b := mustMarshal(t, f)
		h, ok := peekMsg(b)
		m := f.Msg
		if !ok || h.from != m.From || h.msgID != m.MsgId || h.clientMsgID != m.ClientMsgId || h.group != m.Group || h.broadcast != m.Broadcast {
			t.Errorf("peekMsg(%v) = %+v, %v", f, h, ok)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
