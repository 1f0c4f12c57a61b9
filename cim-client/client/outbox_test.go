package client

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func TestAckBatching(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type op struct {
		show     uint64 // show entries up to this seq (one each)
		skip     uint64 // show up to this seq without entries (trimmed)
		sent     uint64 // an ACK for this seq was written
		due      int    // call due at this many ms
		at       int    // time of show / sent in ms
		urgent   bool
		wantSeq  uint64 // due: 0 means nothing due
		wantNext int    // due: next deadline in ms, -1 for none
	}
	for _, tc := range []struct {
		name     string
		ops      []op
		interval time.Duration // between ACKs (0: none)
	}{
		{"delay after the first entry", []op{
			{show: 1, urgent: true},
			{show: 2, at: 10},
			{due: 50, wantNext: 100},
			{due: 100, wantSeq: 2},
			{sent: 2, at: 100},
			{due: 500, wantNext: -1},
		}, 0},
		{"every entries at once", []op{
			{show: 1, urgent: true},
			{show: 2},
			{show: 3, urgent: true},
			{due: 1, wantSeq: 3},
		}, 0},
		{"entries shown while the ACK was written start a new batch", []op{
			{show: 1, urgent: true},
			{due: 100, wantSeq: 1},
			{show: 2, at: 101},
			{sent: 1, at: 102},
			{due: 150, wantNext: 202},
			{due: 202, wantSeq: 2},
		}, 0},
		{"skipped seqs are acknowledged too", []op{
			{skip: 40, urgent: true},
			{due: 100, wantSeq: 40},
		}, 0},
		{"a busy inbox waits out the interval after an ACK", []op{
			{show: 1, urgent: true},
			{due: 100, wantSeq: 1},
			{sent: 1, at: 100},
			{show: 2, at: 150, urgent: true},
			{due: 250, wantNext: 600},
			{due: 599, wantNext: 600},
			{due: 600, wantSeq: 2},
		}, 500 * time.Millisecond},
		{"a quiet inbox is acknowledged after the delay", []op{
			{show: 1, urgent: true},
			{due: 100, wantSeq: 1},
			{sent: 1, at: 100},
			{show: 2, at: 1000, urgent: true},
			{due: 1050, wantNext: 1100},
			{due: 1100, wantSeq: 2},
		}, 500 * time.Millisecond},
		{"every entries at once despite the interval", []op{
			{show: 1, urgent: true},
			{due: 100, wantSeq: 1},
			{sent: 1, at: 100},
			{show: 3, at: 110, urgent: false},
			{show: 4, at: 120, urgent: true},
			{due: 120, wantSeq: 4},
		}, 500 * time.Millisecond},
		{"old seqs change nothing", []op{
			{show: 5, urgent: true},
			{sent: 5},
			{show: 3},
			{due: 1000, wantNext: -1},
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &acks{delay: 100 * time.Millisecond, interval: tc.interval, every: 3}
			shown := uint64(0)
			for i, o := range tc.ops {
				switch {
				case o.show != 0:
					var urgent bool
					for s := shown + 1; s <= o.show; s++ {
						urgent = a.show(s, 1, ms(o.at))
					}
					if o.show <= shown {
						urgent = a.show(o.show, 1, ms(o.at))
					}
					shown = max(shown, o.show)
					if urgent != o.urgent {
						t.Fatalf("op %d: urgent %v, want %v", i, urgent, o.urgent)
					}
				case o.skip != 0:
					if urgent := a.show(o.skip, 0, ms(o.at)); urgent != o.urgent {
						t.Fatalf("op %d: urgent %v, want %v", i, urgent, o.urgent)
					}
				case o.sent != 0:
					a.sent(o.sent, ms(o.at))
				default:
					seq, ok, next := a.due(ms(o.due))
					if ok != (o.wantSeq != 0) || seq != o.wantSeq {
						t.Fatalf("op %d: due = %d, %v; want %d", i, seq, ok, o.wantSeq)
					}
					if o.wantSeq == 0 {
						want := time.Time{}
						if o.wantNext >= 0 {
							want = ms(o.wantNext)
						}
						if !next.Equal(want) {
							t.Fatalf("op %d: next %v, want %v", i, next, want)
						}
					}
				}
			}
		})
	}
}

func outMsg(id, to string) (*cimpb.Msg, []byte) {
	m := &cimpb.Msg{ClientMsgId: id, To: to, Body: []byte("hi " + to), Broadcast: to == ""}
	return m, []byte("frame-" + id)
}

func TestOutboxResendSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name      string
		tries     int
		broadcast bool
		want      []time.Duration // timeout of each try
	}{
		{"defaults double", 5, false, []time.Duration{5, 10, 20, 40, 80}},
		{"doubling is capped", 8, false, []time.Duration{5, 10, 20, 40, 80, 80, 80, 80}},
		{"one try", 1, false, []time.Duration{5}},
		{"a broadcast is never resent", 5, true, []time.Duration{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutbox(5*time.Second, tc.tries)
			to := "bob"
			if tc.broadcast {
				to = ""
			}
			m, b := outMsg("c1", to)
			o.add(m, string(m.GetBody()), b, t0)
			if !o.written("c1", t0) {
				t.Fatal("the first deadline did not poke the control loop")
			}
			now := t0
			for i, d := range tc.want {
				d *= time.Second
				if again, failed, next := o.expire(now.Add(d - 1)); len(again)+len(failed) != 0 || !next.Equal(now.Add(d)) {
					t.Fatalf("try %d: early expire gave %d/%d, next %v; want nothing before %v", i+1, len(again), len(failed), next, now.Add(d))
				}
				now = now.Add(d)
				again, failed, _ := o.expire(now)
				if i == len(tc.want)-1 {
					if len(again) != 0 || len(failed) != 1 {
						t.Fatalf("after the last try: %d resends, %d failures; want one failure", len(again), len(failed))
					}
					e := failed[0]
					if codes.Code(e.GetCode()) != codes.Unavailable || e.GetClientMsgId() != "c1" ||
						!strings.Contains(e.GetText(), "not sent: no answer after "+tries(len(tc.want))) {
						t.Fatalf("final error %v", e)
					}
					break
				}
				if len(again) != 1 || string(again[0].frame) != "frame-c1" || len(failed) != 0 {
					t.Fatalf("try %d timed out: %d resends, %d failures", i+1, len(again), len(failed))
				}
				o.wrote(again[0].rec, now)
			}
			if st, _ := o.get("c1"); st.Status != StatusFailed || st.Tries != len(tc.want) || st.Err == nil {
				t.Errorf("status %+v, want failed after %d tries", st, len(tc.want))
			}
			if again, failed, next := o.expire(now.Add(time.Hour)); len(again)+len(failed) != 0 || !next.IsZero() {
				t.Error("a failed message is still scheduled")
			}
		})
	}
}

func TestOutboxAnswers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	unavailable := func(id string) *cimpb.Error {
		return &cimpb.Error{Code: int32(codes.Unavailable), Text: "route unavailable", ClientMsgId: id}
	}
	receipt := func(st cimpb.ReceiptStatus, msgID, id string) *cimpb.Receipt {
		return &cimpb.Receipt{Status: st, MsgId: msgID, ClientMsgId: id}
	}
	const sent, delivered, read = cimpb.ReceiptStatus_RECEIPT_SENT, cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ

	o := newOutbox(time.Second, 3)
	for _, id := range []string{"a", "b", "c", "d"} {
		m, b := outMsg(id, "bob")
		o.add(m, string(m.GetBody()), b, t0)
		o.written(id, t0)
	}

	// a: SENT, repeated receipts told once, READ by msg id, DELIVERED late.
	for i, tc := range []struct {
		r    *cimpb.Receipt
		emit bool
		want SendStatus
	}{
		{receipt(sent, "m-a", "a"), true, StatusSent},
		{receipt(sent, "m-a", "a"), false, StatusSent},
		{receipt(read, "m-a", ""), true, StatusRead},
		{receipt(read, "m-a", ""), false, StatusRead},
		{receipt(delivered, "m-a", "a"), true, StatusRead},
	} {
		if emit, sent := o.receipt(tc.r); emit != tc.emit || sent != nil {
			t.Errorf("receipt %d: emit %v (implied SENT %v), want %v and no implied SENT", i, emit, sent, tc.emit)
		}
		if st, _ := o.get("a"); st.Status != tc.want || st.MsgID != "m-a" {
			t.Errorf("receipt %d: %+v, want %v", i, st, tc.want)
		}
	}
	if failFinal(o, unavailable("a")) != nil {
		t.Error("an error for a message SENT already was reported")
	}
	if emit, _ := o.receipt(receipt(delivered, "m-x", "x")); !emit {
		t.Error("a receipt for an unknown message was not reported")
	}

	// b: Unavailable is retried until every try got it.
	if failFinal(o, unavailable("b")) != nil {
		t.Fatal("Unavailable on the first try is final")
	}
	now := t0
	for range 2 {
		now = now.Add(time.Minute)
		again, _, _ := o.expire(now)
		for _, r := range again {
			o.wrote(r.rec, now)
		}
	}
	if st, _ := o.get("b"); st.Tries != 3 || st.Status != StatusPending {
		t.Fatalf("b: %+v, want 3 tries, pending", st)
	}
	if failFinal(o, unavailable("b")) != nil || failFinal(o, unavailable("b")) == nil {
		t.Fatal("b: want the error final once all 3 tries got Unavailable")
	}
	if st, _ := o.get("b"); st.Status != StatusFailed || codes.Code(st.Err.GetCode()) != codes.Unavailable {
		t.Errorf("b: %+v", st)
	}

	// c: another code is final at once.
	if e := failFinal(o, &cimpb.Error{Code: int32(codes.BadAccount), ClientMsgId: "c"}); e == nil {
		t.Fatal("BadAccount was not final")
	}
	if failFinal(o, &cimpb.Error{Code: int32(codes.BadAccount), ClientMsgId: "c"}) != nil {
		t.Error("a repeated final error was reported twice")
	}
	if e := failFinal(o, &cimpb.Error{Code: int32(codes.BadAccount), ClientMsgId: "zz"}); e == nil {
		t.Error("an error for an unknown message was not reported")
	}

	// Only d still waits: it is the only one replayed on a new link.
	if ids := replayIDs(o); !slices.Equal(ids, []string{"d"}) {
		t.Errorf("replay %v, want [d]", ids)
	}
	if o.pendingCount() != 1 {
		t.Errorf("pending %d, want 1", o.pendingCount())
	}
	var got []string
	for _, r := range o.recent(0) {
		got = append(got, r.ClientMsgID+":"+r.Status.String())
	}
	if want := []string{"a:read", "b:failed", "c:failed", "d:pending"}; !slices.Equal(got, want) {
		t.Errorf("recent %v, want %v", got, want)
	}
	if r := o.recent(2); len(r) != 2 || r[1].ClientMsgID != "d" {
		t.Errorf("recent(2) = %+v", r)
	}
}

func replayIDs(o *outbox) []string {
	var ids []string
	for _, r := range o.replay() {
		ids = append(ids, r.rec.ClientMsgID)
	}
	return ids
}

func TestOutboxReplayAndCancel(t *testing.T) {
	t0 := time.Unix(1000, 0)
	o := newOutbox(time.Second, 5)
	for _, id := range []string{"w1", "bc", "w2", "unwritten"} {
		to := "bob"
		if id == "bc" {
			to = ""
		}
		m, b := outMsg(id, to)
		o.add(m, string(m.GetBody()), b, t0)
		if id != "unwritten" {
			o.written(id, t0)
		}
	}
	// Written messages come back in order; the broadcast and the one SendMsg
	// still writes itself do not.
	if ids := replayIDs(o); !slices.Equal(ids, []string{"w1", "w2"}) {
		t.Fatalf("replay %v", ids)
	}
	// A replay is the same try; a replay after a timeout is the next one.
	r := o.replay()
	o.wrote(r[0].rec, t0)
	again, _, _ := o.expire(t0.Add(time.Second))
	if len(again) != 2 {
		t.Fatalf("%d resends due, want 2", len(again))
	}
	o.wrote(r[0].rec, t0.Add(time.Second))
	// w2's new try was not written (no usable link): it stays due, as the
	// same try, until it is.
	again, _, next := o.expire(t0.Add(2 * time.Second))
	if len(again) != 1 || again[0].rec.ClientMsgID != "w2" || !next.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("still due: %d resends, next %v", len(again), next)
	}
	if w1, _ := o.get("w1"); w1.Tries != 2 {
		t.Errorf("w1 tries %d, want 2", w1.Tries)
	}
	if w2, _ := o.get("w2"); w2.Tries != 2 {
		t.Errorf("w2 tries %d, want 2: the resend is a new try even before it is written", w2.Tries)
	}

	o.cancel("w1") // written once: too late to forget
	o.cancel("unwritten")
	if _, ok := o.get("unwritten"); ok {
		t.Error("cancelled message still known")
	}
	if _, ok := o.get("w1"); !ok {
		t.Error("cancel forgot a written message")
	}
}

func TestOutboxForgetsOldAnsweredOnes(t *testing.T) {
	o := newOutbox(time.Second, 5)
	t0 := time.Unix(1000, 0)
	m, b := outMsg("keep", "bob") // pending: never forgotten
	o.add(m, string(m.GetBody()), b, t0)
	for i := range DefaultSentKept + 10 {
		id := "x" + strings.Repeat("y", i%3) + string(rune('a'+i%26)) + time.Duration(i).String()
		m, b := outMsg(id, "bob")
		o.add(m, string(m.GetBody()), b, t0)
		_, _ = o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, ClientMsgId: id, MsgId: "m" + id})
	}
	if len(o.order) != DefaultSentKept || len(o.recs) != DefaultSentKept || len(o.byMsgID) >= DefaultSentKept {
		t.Errorf("kept %d / %d / %d records, want %d", len(o.order), len(o.recs), len(o.byMsgID), DefaultSentKept)
	}
	if _, ok := o.get("keep"); !ok {
		t.Error("a pending message was forgotten")
	}
}

// TestOutboxDropsAnsweredFrames: a remembered message keeps its status, not
// its encoded frame, once answered (a receipt or a final error): a client
// remembers up to DefaultSentKept of them, and a busy one's heap (every GC's
// marking) need not hold them all encoded. A pending one keeps its frame for
// resends and replays, and a send again of an answered one brings a new one.
func TestOutboxDropsAnsweredFrames(t *testing.T) {
	o := newOutbox(time.Second, 1)
	t0 := time.Unix(1000, 0)
	for _, id := range []string{"sent", "timedout"} {
		m, b := outMsg(id, "bob")
		o.add(m, string(m.GetBody()), b, t0)
		o.written(id, t0)
	}
	_, _ = o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, ClientMsgId: "sent", MsgId: "m1"})
	if _, failed, _ := o.expire(t0.Add(2 * time.Second)); len(failed) != 1 {
		t.Fatalf("%d final errors after the only try timed out, want 1", len(failed))
	}
	for _, id := range []string{"sent", "timedout"} {
		if f := o.recs[id].frame; f != nil {
			t.Errorf("%s: answered, still holds its %d-byte frame", id, len(f))
		}
	}
	m, b := outMsg("sent", "bob")
	o.add(m, string(m.GetBody()), b, t0)
	o.written("sent", t0)
	p, again := outMsg("again", "bob")
	o.add(p, string(p.GetBody()), again, t0)
	o.written("again", t0)
	rs := o.replay()
	if len(rs) != 2 || !bytes.Equal(rs[0].frame, b) || !bytes.Equal(rs[1].frame, again) {
		t.Fatalf("replay after a send again = %d frames, want the 2 pending ones with their frames", len(rs))
	}
}

// TestOutboxDeliveredImpliesSent: when a message's SENT answer was lost (its
// link died) and its DELIVERED receipt comes first, through a sync, the
// application still sees SENT before DELIVERED, and only once.
func TestOutboxDeliveredImpliesSent(t *testing.T) {
	o := newOutbox(time.Second, 3)
	m, b := outMsg("d", "bob")
	o.add(m, string(m.GetBody()), b, time.Unix(1000, 0))
	o.written("d", time.Unix(1000, 0))
	emit, implied := o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED, MsgId: "m-d", ClientMsgId: "d"})
	if !emit || implied == nil || implied.Status != cimpb.ReceiptStatus_RECEIPT_SENT || implied.ClientMsgId != "d" || implied.MsgId != "m-d" {
		t.Fatalf("DELIVERED before SENT: emit %v, implied %v; want a SENT for d first", emit, implied)
	}
	if emit, implied := o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m-d", ClientMsgId: "d"}); emit || implied != nil {
		t.Fatal("the late SENT answer was reported again")
	}
	if st, _ := o.get("d"); st.Status != StatusDelivered {
		t.Fatalf("status %v, want delivered", st.Status)
	}
}

// TestOutboxKeepsANewMessageWhenAllArePending: with DefaultSentKept messages
// still pending (a link down for a while), a new message must not be
// forgotten at once: it is written, replayed on the next link and resent.
func TestOutboxKeepsANewMessageWhenAllArePending(t *testing.T) {
	o := newOutbox(time.Second, 5)
	t0 := time.Unix(1000, 0)
	for i := range DefaultSentKept {
		id := "p" + time.Duration(i).String()
		m, b := outMsg(id, "bob")
		o.add(m, string(m.GetBody()), b, t0)
		o.written(id, t0)
	}
	m, b := outMsg("new", "bob")
	o.add(m, string(m.GetBody()), b, t0)
	o.written("new", t0)
	st, ok := o.get("new")
	if !ok || st.Status != StatusPending {
		t.Fatalf("new message: known %v, status %v; want pending", ok, st.Status)
	}
	if ids := replayIDs(o); len(ids) != DefaultSentKept+1 || ids[len(ids)-1] != "new" {
		t.Fatalf("replay has %d messages, last %q; want %d ending with new", len(ids), ids[len(ids)-1], DefaultSentKept+1)
	}
	again, _, _ := o.expire(t0.Add(time.Second))
	if len(again) != DefaultSentKept+1 {
		t.Fatalf("%d resends due, want %d", len(again), DefaultSentKept+1)
	}
	// Once answered, the oldest ones are forgotten again.
	for i := range 10 {
		id := "p" + time.Duration(i).String()
		o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, ClientMsgId: id, MsgId: "m" + id})
	}
	m, b = outMsg("newer", "bob")
	o.add(m, string(m.GetBody()), b, t0)
	if len(o.recs) != DefaultSentKept {
		t.Errorf("%d records kept, want %d", len(o.recs), DefaultSentKept)
	}
	if _, ok := o.get("newer"); !ok {
		t.Error("newer message forgotten")
	}
}

// failFinal is o.fail's final error, for tests about codes that never
// produce a notice.
func failFinal(o *outbox, e *cimpb.Error) *cimpb.Error {
	final, _ := o.fail(e)
	return final
}

// TestOutboxRateLimited: ERROR RateLimited keeps the message for the next
// try of the resend schedule (the application hears of it once); only on
// the last try is it final. Other codes are final at once.
func TestOutboxRateLimited(t *testing.T) {
	t0 := time.Unix(1000, 0)
	limited := func(id string) *cimpb.Error {
		return &cimpb.Error{Code: int32(codes.RateLimited), Text: "rate limited", ClientMsgId: id}
	}
	for _, tc := range []struct {
		name string
		to   string // "" for a broadcast
	}{{"private", "bob"}, {"broadcast", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutbox(5*time.Second, 3)
			m, b := outMsg("r", tc.to)
			o.add(m, string(m.GetBody()), b, t0)
			o.written("r", t0)
			final, notice := o.fail(limited("r"))
			if final != nil || notice == nil || notice.GetClientMsgId() != "r" {
				t.Fatalf("first RateLimited: final %v notice %v, want a notice only", final, notice)
			}
			if again, _, next := o.expire(t0.Add(time.Second)); len(again) != 0 || !next.Equal(t0.Add(5*time.Second)) {
				t.Fatalf("resent before the timer (%d) or next %v", len(again), next)
			}
			now := t0.Add(5 * time.Second)
			again, failed, _ := o.expire(now)
			if len(again) != 1 || string(again[0].frame) != "frame-r" || len(failed) != 0 {
				t.Fatalf("timer: %d resends, %d failures; want the same frame again", len(again), len(failed))
			}
			o.wrote(again[0].rec, now)
			if final, notice := o.fail(limited("r")); final != nil || notice != nil {
				t.Fatalf("second RateLimited: final %v notice %v, want neither (told once)", final, notice)
			}
			now = now.Add(10 * time.Second) // the backoff doubles
			if again, _, _ := o.expire(now.Add(-time.Millisecond)); len(again) != 0 {
				t.Fatal("the second resend did not wait for the doubled timeout")
			}
			again, _, _ = o.expire(now)
			if len(again) != 1 {
				t.Fatalf("third try: %d resends", len(again))
			}
			o.wrote(again[0].rec, now)
			if st, _ := o.get("r"); st.Status != StatusPending || st.Tries != 3 {
				t.Fatalf("status %+v, want pending after 3 tries", st)
			}
			// The last try rate-limited too: that answer is final.
			final, notice = o.fail(limited("r"))
			if final == nil || codes.Code(final.GetCode()) != codes.RateLimited || notice != nil {
				t.Fatalf("RateLimited on the last try: final %v notice %v", final, notice)
			}
			if st, _ := o.get("r"); st.Status != StatusFailed || codes.Code(st.Err.GetCode()) != codes.RateLimited {
				t.Errorf("status %+v", st)
			}
			if again, failed, _ := o.expire(now.Add(time.Hour)); len(again)+len(failed) != 0 {
				t.Error("a failed message is still scheduled")
			}
		})
	}

	t.Run("then sent", func(t *testing.T) {
		o := newOutbox(5*time.Second, 3)
		m, b := outMsg("s", "bob")
		o.add(m, string(m.GetBody()), b, t0)
		o.written("s", t0)
		o.fail(limited("s"))
		again, _, _ := o.expire(t0.Add(5 * time.Second))
		o.wrote(again[0].rec, t0.Add(5*time.Second))
		sent := &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m-s", ClientMsgId: "s"}
		if emit, _ := o.receipt(sent); !emit {
			t.Fatal("SENT after a rate limit not reported")
		}
		if st, _ := o.get("s"); st.Status != StatusSent || st.Tries != 2 || st.Err != nil {
			t.Errorf("status %+v, want sent on the second try", st)
		}
	})

	t.Run("a broadcast resent after a rate limit gets no more tries without an answer", func(t *testing.T) {
		o := newOutbox(5*time.Second, 3)
		m, b := outMsg("bc", "")
		o.add(m, string(m.GetBody()), b, t0)
		o.written("bc", t0)
		o.fail(limited("bc"))
		now := t0.Add(5 * time.Second)
		again, _, _ := o.expire(now)
		if len(again) != 1 {
			t.Fatalf("%d resends of the rate-limited broadcast", len(again))
		}
		o.wrote(again[0].rec, now)
		// Unanswered: it may have gone out, so it is not sent a third time.
		again, failed, _ := o.expire(now.Add(time.Hour))
		if len(again) != 0 || len(failed) != 1 {
			t.Errorf("unanswered second try: %d resends, %d failures; want a failure", len(again), len(failed))
		}
	})

	for _, code := range []codes.Code{codes.BadArgument, codes.BadAccount, codes.TooLarge} {
		o := newOutbox(5*time.Second, 3)
		m, b := outMsg("f", "bob")
		o.add(m, string(m.GetBody()), b, t0)
		o.written("f", t0)
		final, notice := o.fail(&cimpb.Error{Code: int32(code), ClientMsgId: "f"})
		if final == nil || notice != nil {
			t.Errorf("code %d: final %v notice %v, want final", code, final, notice)
		}
		if again, _, _ := o.expire(t0.Add(time.Hour)); len(again) != 0 {
			t.Errorf("code %d: resent", code)
		}
	}
}

// TestOutboxReceiptFromOthersIgnored: a DELIVERED or READ receipt for a
// private message counts only when its By is the user the message went to.
func TestOutboxReceiptFromOthersIgnored(t *testing.T) {
	o := newOutbox(time.Second, 1)
	now := time.Now()
	o.add(&cimpb.Msg{ClientMsgId: "c1", To: "5", Body: []byte("hi")}, "hi", []byte("frame"), now)
	o.written("c1", now)
	o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m1", ClientMsgId: "c1"})
	if emit, _ := o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_READ, MsgId: "m1", By: "6"}); emit {
		t.Error("a READ by user 6 for a message to user 5 was shown")
	}
	if st, _ := o.get("c1"); st.Status != StatusSent {
		t.Errorf("status %v after a stranger's READ, want sent", st.Status)
	}
	if emit, _ := o.receipt(&cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_READ, MsgId: "m1", By: "5"}); !emit {
		t.Error("the recipient's READ was not shown")
	}
	if st, _ := o.get("c1"); st.Status != StatusRead {
		t.Errorf("status %v after the recipient's READ, want read", st.Status)
	}
}

// TestSendRecSize: an outbox record fits the 256-byte size class; a client
// keeps up to DefaultSentKept of them, and a process with many clients (a
// load generator, a bot host) many thousands.
func TestSendRecSize(t *testing.T) {
	if n := unsafe.Sizeof(sendRec{}); n > 256 {
		t.Fatalf("sendRec is %d bytes, want at most 256", n)
	}
}
