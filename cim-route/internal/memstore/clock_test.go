package memstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClocked(lim model.InboxLimits) (*Store, *clock) {
	c := &clock{t: time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC)}
	return New(WithClock(c.now), WithInbox(lim)), c
}

// What expires in Redis expires here by the injected clock: pending routes,
// cleared markers, dedup keys, idle inboxes (not their seq or ack), group
// dedup keys, receipt sets, a day's upload quota.
func TestExpiryByClock(t *testing.T) {
	ctx := context.Background()
	s, c := newClocked(model.InboxLimits{TTL: time.Hour, DedupWindow: 10 * time.Minute})

	// A pending route expires; an online one does not.
	s.ClaimRoute(ctx, "1", model.Claim{Gateway: "g", Session: "p", TTL: time.Minute})
	s.ClaimRoute(ctx, "2", model.Claim{Gateway: "g", Session: "o", TTL: time.Minute})
	if err := s.Online(ctx, "2", "o", "g"); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Routes(ctx, []string{"1", "2"}); len(r) != 2 || r["2"].Since != c.now().UnixMilli() {
		t.Fatalf("routes = %+v", r)
	}
	c.advance(time.Minute)
	if r, _ := s.Routes(ctx, []string{"1", "2"}); len(r) != 1 || !r["2"].Online() {
		t.Fatalf("routes after the pending TTL = %+v", r)
	}
	if err := s.Online(ctx, "1", "p", "g"); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("confirming an expired route: %v", err)
	}

	// A cleared marker lasts clearedTTL.
	s.ClearGateway(ctx, "g")
	c.advance(clearedTTL)
	if ok, _ := s.Reclaim(ctx, "g", []model.SessionRef{{UserID: "2", Session: "o"}}); ok[0] {
		t.Fatal("reclaimed after the marker expired")
	}

	// Dedup keys last the dedup window; an idle inbox goes as a whole after
	// its TTL, its seq and ack stay.
	ts := c.now().UnixMilli()
	w, _ := s.Write(ctx, model.Write{Appends: []model.Append{{UserID: "u", Frame: []byte("a"), TS: ts, MsgID: "m1", Dedup: "x:1"}}, Acks: []model.Ack{{UserID: "u", Seq: 1}}})
	if w.Appended[0].Seq != 1 {
		t.Fatalf("append = %+v", w.Appended[0])
	}
	c.advance(10 * time.Minute)
	w, _ = s.Write(ctx, model.Write{Appends: []model.Append{{UserID: "u", Frame: []byte("a"), TS: c.now().UnixMilli(), MsgID: "m2", Dedup: "x:1"}}})
	if a := w.Appended[0]; a.Resend || a.Seq != 2 {
		t.Fatalf("append after the dedup window = %+v", a)
	}
	c.advance(time.Hour)
	r, _ := s.Ranges(ctx, []model.RangeQuery{{UserID: "u", Limit: 10}})
	if r[0].Head != 2 || r[0].First != 3 || len(r[0].Entries) != 0 || r[0].Acked != 1 {
		t.Fatalf("idle inbox after its TTL = %+v", r[0])
	}
	w, _ = s.Write(ctx, model.Write{Appends: []model.Append{{UserID: "u", Frame: []byte("b"), MsgID: "m3"}}})
	if a := w.Appended[0]; a.Seq != 3 {
		t.Fatalf("append to an expired inbox = %+v", a)
	}
	if e, _ := s.InboxBefore(ctx, "u", 0, 10); len(e) != 1 || e[0].TS != c.now().UnixMilli() {
		t.Fatalf("entry without TS = %+v", e)
	}

	// Group dedup keys and receipt sets.
	s.ClaimGroupMessages(ctx, []model.GroupDedup{{Sender: "1", ClientMsgID: "c", MsgID: "g1"}})
	s.AddGroupReceipts(ctx, []model.GroupReceipt{{Sender: "1", MsgID: "g1", Members: []string{"2"}}})
	c.advance(10 * time.Minute)
	if got, _ := s.ClaimGroupMessages(ctx, []model.GroupDedup{{Sender: "1", ClientMsgID: "c", MsgID: "g2"}}); !got[0].Claimed {
		t.Fatalf("group dedup after the window = %+v", got)
	}
	c.advance(time.Hour)
	if n, _ := s.GroupReceiptCounts(ctx, "1", []string{"g1"}); n[0].Delivered != 0 {
		t.Fatalf("receipts after the inbox TTL = %+v", n)
	}

	// Upload quotas are per UTC day.
	if _, err := s.ChargeUpload(ctx, "1", 100, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChargeUpload(ctx, "1", 1, 100); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("over quota: %v", err)
	}
	c.advance(24 * time.Hour)
	if _, err := s.ChargeUpload(ctx, "1", 100, 100); err != nil {
		t.Fatalf("next day: %v", err)
	}
}

// Age trimming uses the clock too.
func TestAgeTrimByClock(t *testing.T) {
	ctx := context.Background()
	s, c := newClocked(model.InboxLimits{TTL: time.Hour})
	s.Write(ctx, model.Write{Appends: []model.Append{{UserID: "u", Frame: []byte("a"), MsgID: "1"}}})
	c.advance(30 * time.Minute)
	s.Write(ctx, model.Write{Appends: []model.Append{{UserID: "u", Frame: []byte("b"), MsgID: "2"}}})
	c.advance(31 * time.Minute)
	s.Write(ctx, model.Write{Appends: []model.Append{{UserID: "u", Frame: []byte("c"), MsgID: "3"}}})
	r, _ := s.Ranges(ctx, []model.RangeQuery{{UserID: "u", Limit: 10}})
	if r[0].First != 2 || len(r[0].Entries) != 2 {
		t.Fatalf("after age trimming = %+v", r[0])
	}
}
