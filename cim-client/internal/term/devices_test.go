package term

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

func TestOwnDeviceFormats(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	ms := at.UnixMilli()
	private := &cimpb.Msg{From: "1", FromName: "alice", To: "2", Body: []byte("hi\nbob"), TimestampMs: ms}
	group := &cimpb.Msg{From: "1", FromName: "alice", Group: "7", Body: []byte("hi all"), TimestampMs: ms}
	edit := &cimpb.Msg{From: "1", To: "2", Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: "m1", Body: []byte("fixed"), TimestampMs: ms}
	gedit := &cimpb.Msg{From: "1", Group: "7", Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: "m1", Body: []byte("fixed"), TimestampMs: ms}
	recall := &cimpb.Msg{From: "1", To: "2", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgId: "m1"}
	grecall := &cimpb.Msg{From: "1", Group: "7", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgId: "m1"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"private", OutgoingMessage(private, "bob", "", time.UTC, at), "[07:08:09] me → bob: hi bob (from another device)"},
		{"private, name unknown", OutgoingMessage(private, "", "", time.UTC, at), "[07:08:09] me → 2: hi bob (from another device)"},
		{"group", OutgoingMessage(group, "", "team", time.UTC, at), "[07:08:09] me@team: hi all (from another device)"},
		{"group, name unknown", OutgoingMessage(group, "", "", time.UTC, at), "[07:08:09] me@#7: hi all (from another device)"},
		{"edited", OwnEdited(edit, "bob", "", "", time.UTC, at), "[07:08:09] me → bob (edited on another device): fixed"},
		{"edited in a group, was", OwnEdited(gedit, "", "team", "oops", time.UTC, at), "[07:08:09] me@team (edited on another device): fixed (was: oops)"},
		{"recalled", OwnRecalled(recall, "bob", "", ""), "* you recalled a message to bob on another device"},
		{"recalled in a group, known", OwnRecalled(grecall, "", "team", "hello"), "* you recalled a message in team on another device: hello"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestPrinterOtherDevices: what the user sent from another device is shown
// as its own line, naming the recipient by the name an earlier line told
// (else its id) and the group by its name; its recalls and edits apply to
// the messages shown; a READ made on another device prints nothing.
func TestPrinterOtherDevices(t *testing.T) {
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{UserID: "1"} })
	p.RememberGroup(client.Group{ID: "7", Name: "team"})
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	mine := func(m *cimpb.Msg) client.Event {
		m.From, m.FromName = "1", "alice"
		return client.Event{Kind: client.EventMessage, At: at, Msg: m, Outgoing: true}
	}
	for _, ev := range []client.Event{
		{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: "b1", From: "2", FromName: "bob", To: "1", Body: []byte("hi alice")}},
		mine(&cimpb.Msg{MsgId: "a1", To: "2", Body: []byte("hi bob")}),
		mine(&cimpb.Msg{MsgId: "a2", To: "5", Body: []byte("who are you?")}),
		mine(&cimpb.Msg{MsgId: "a3", Group: "7", Body: []byte("hi team")}),
		mine(&cimpb.Msg{MsgId: "a4", To: "2", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "x.png", Size: 5}}),
		mine(&cimpb.Msg{MsgId: "e1", To: "2", Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: "a1", Body: []byte("hello bob")}),
		mine(&cimpb.Msg{MsgId: "r1", Group: "7", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgId: "a3"}),
		{Kind: client.EventReadElsewhere, At: at, Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_READ, By: "1", Peer: "2", Items: []*cimpb.ReceiptItem{{MsgId: "b1"}}}},
	} {
		p.Event(ev)
	}
	want := strings.Join([]string{
		"[07:08:09] bob: hi alice",
		"[07:08:09] me → bob: hi bob (from another device)",
		"[07:08:09] me → 5: who are you? (from another device)",
		"[07:08:09] me@team: hi team (from another device)",
		"[07:08:09] me → bob: [file x.png, 5 bytes] (from another device) (:save 1)",
		"[07:08:09] me → bob (edited on another device): hello bob (was: hi bob)",
		"* you recalled a message in team on another device: hi team",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if _, ok := p.File(1); !ok {
		t.Error("a file sent from another device cannot be saved")
	}
}
