package store

import (
	"errors"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// TestDelayedMessages: scheduled messages come out once due, in due order,
// each claimed by one caller for its lease; one not confirmed sent is due
// again when the lease ends; a user has at most max pending.
func TestDelayedMessages(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	t0 := time.UnixMilli(1_800_000_000_000)
	s.now = func() time.Time { return t0 }
	sched := func(from, text string, after time.Duration) DelayedMsg {
		t.Helper()
		m, err := s.ScheduleMessage(ctx, DelayedMsg{From: from, To: "9", Text: text, Due: t0.Add(after)}, 3)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	late := sched("1", "late one", 20*time.Second)
	early := sched("1", "early, with spaces", 10*time.Second)
	sched("2", "other user", 10*time.Second)
	sched("1", "third", time.Hour)
	if _, err := s.ScheduleMessage(ctx, DelayedMsg{From: "1", To: "9", Text: "fourth", Due: t0.Add(time.Minute)}, 3); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("a fourth pending message: %v, want ErrQuotaExceeded", err)
	}

	if due, err := s.ClaimDueMessages(ctx, t0.Add(5*time.Second), 10, time.Minute); err != nil || len(due) != 0 {
		t.Fatalf("nothing due yet: %v, %v", due, err)
	}
	due, err := s.ClaimDueMessages(ctx, t0.Add(25*time.Second), 10, time.Minute)
	if err != nil || len(due) != 3 || due[2].ID != late.ID {
		t.Fatalf("due at +25s: %+v, %v; want the two at +10s, then late", due, err)
	}
	got := map[string]DelayedMsg{}
	for _, m := range due {
		got[m.ID] = m
	}
	if m := got[early.ID]; m.Text != "early, with spaces" || m.From != "1" || m.To != "9" || !m.Due.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("early came back as %+v", m)
	}
	// Claimed: not due again for another caller during the lease...
	if again, _ := s.ClaimDueMessages(ctx, t0.Add(30*time.Second), 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed messages handed out again during the lease: %+v", again)
	}
	// ...sent ones are gone, and free a slot of their sender.
	if err := s.DelayedSent(ctx, []DelayedMsg{got[early.ID], got[late.ID]}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScheduleMessage(ctx, DelayedMsg{From: "1", To: "9", Text: "fits again", Due: t0.Add(time.Hour)}, 3); err != nil {
		t.Fatalf("after two were sent: %v", err)
	}
	// The one not confirmed sent is due again after the lease.
	again, err := s.ClaimDueMessages(ctx, t0.Add(25*time.Second+2*time.Minute), 10, time.Minute)
	if err != nil || len(again) != 1 || again[0].Text != "other user" {
		t.Fatalf("after the lease: %+v, %v; want the unconfirmed one", again, err)
	}
}
