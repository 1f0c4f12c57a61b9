package memstore

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// inbox is one user's inbox: the seq counter (never expires), the entries
// in seq order without gaps (expire as a whole), the acknowledged seq and
// the claimed read marks (expire with the inbox).
type inbox struct {
	seq      uint64
	entries  []model.Entry
	exp      time.Time // of entries
	ack      uint64
	reads    map[uint64]bool
	readsExp time.Time
	// shares counts senders' entries past the PerSender mark: sender ->
	// count and the ack it was counted at (expires with the entries).
	shares map[string]share
}

type share struct{ n, ack uint64 }

// inboxOf returns uid's inbox, created when missing, with expired parts
// dropped.
func (s *Store) inboxOf(uid string) *inbox {
	b := s.inboxes[uid]
	if b == nil {
		b = &inbox{}
		s.inboxes[uid] = b
	}
	if !b.exp.IsZero() && !s.alive(b.exp) {
		b.entries, b.exp, b.shares = nil, time.Time{}, nil
	}
	if !b.readsExp.IsZero() && !s.alive(b.readsExp) {
		b.reads, b.readsExp = nil, time.Time{}
	}
	return b
}

// at returns the entry with seq q, if retained.
func (b *inbox) at(q uint64) (model.Entry, bool) {
	if len(b.entries) == 0 || q < b.entries[0].Seq {
		return model.Entry{}, false
	}
	i := q - b.entries[0].Seq
	if i >= uint64(len(b.entries)) {
		return model.Entry{}, false
	}
	return b.entries[i], true
}

// size is the bytes of an entry as store keeps it ("<seq>|<ts>|<frame>"):
// range byte budgets count the same.
func size(e model.Entry) int {
	return len(strconv.FormatUint(e.Seq, 10)) + 1 + len(strconv.FormatInt(e.TS, 10)) + 1 + len(e.Frame)
}

// push appends one entry with the next seq, trims by length and age and
// renews the inbox's expiry.
func (s *Store) push(b *inbox, ts int64, frame []byte) uint64 {
	b.seq++
	b.entries = append(b.entries, model.Entry{Seq: b.seq, TS: ts, Frame: bytes.Clone(frame)})
	if n := len(b.entries) - s.inbox.MaxLen; n > 0 {
		b.entries = b.entries[n:]
	}
	cutoff := s.now().UnixMilli() - s.inbox.TTL.Milliseconds()
	i := 0
	for i < len(b.entries) && b.entries[i].TS < cutoff {
		i++
	}
	b.entries = b.entries[i:]
	b.exp = s.after(s.inbox.TTL)
	return b.seq
}

// Write stores w's appends in order (dedup, droppable receipts, trimming),
// then raises its acks, then reads its routes.
func (s *Store) Write(ctx context.Context, w model.Write) (model.Written, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(w.Appends)+len(w.Acks)+len(w.Routes) == 0 {
		return model.Written{}, nil
	}
	out := model.Written{Appended: make([]model.Appended, len(w.Appends))}
	now := s.now().UnixMilli()
	for i, a := range w.Appends {
		out.Appended[i] = s.append(a, now)
	}
	for _, a := range w.Acks {
		b := s.inboxOf(a.UserID)
		b.ack = max(b.ack, a.Seq)
	}
	if len(w.Routes) > 0 {
		out.Routes = s.routesOf(w.Routes)
	}
	return out, nil
}

func (s *Store) append(a model.Append, now int64) model.Appended {
	b := s.inboxOf(a.UserID)
	ts := a.TS
	if ts == 0 {
		ts = now
	}
	key := a.UserID + "\x00" + a.Dedup
	switch {
	case a.Dedup != "":
		if v, ok := s.get(s.dedup, key); ok {
			id, seqStr, _ := cut(v)
			seq, _ := strconv.ParseUint(seqStr, 10, 64)
			r := model.Appended{Seq: seq, MsgID: id, Resend: true}
			r.Stored, _ = b.at(seq)
			return r
		}
	case a.Droppable && len(b.entries) >= s.inbox.MaxLen:
		return model.Appended{MsgID: a.MsgID}
	}
	if a.Once {
		for i := len(b.entries) - 1; i >= max(len(b.entries)-64, 0); i-- {
			if bytes.Contains(b.entries[i].Frame, []byte(a.MsgID)) {
				return model.Appended{Seq: b.entries[i].Seq, MsgID: a.MsgID, Resend: true}
			}
		}
	}
	if a.From != "" {
		if bl := s.blockBetween(a.UserID, a.From); bl != model.NotBlocked {
			return model.Appended{MsgID: a.MsgID, Blocked: bl}
		}
	}
	if !s.admit(b, a.Sender) {
		return model.Appended{MsgID: a.MsgID, Refused: true}
	}
	seq := s.push(b, ts, a.Frame)
	if a.Dedup != "" {
		s.dedup[key] = expiring{v: a.MsgID + "|" + strconv.FormatUint(seq, 10), exp: s.after(s.inbox.DedupWindow)}
	}
	return model.Appended{Seq: seq, MsgID: a.MsgID}
}

// admit reports whether sender may add an entry to b: always below the
// PerSender mark of unread entries, else while its count is below it (a
// count taken at an older ack starts again from 0: the user read on).
func (s *Store) admit(b *inbox, sender string) bool {
	per := uint64(max(s.inbox.PerSender, 0))
	if sender == "" || per == 0 || b.ack >= b.seq || b.seq-b.ack < per {
		return true
	}
	c := b.shares[sender]
	if c.ack < b.ack {
		c.n = 0
	}
	if c.n >= per {
		return false
	}
	if b.shares == nil {
		b.shares = map[string]share{}
	}
	b.shares[sender] = share{n: c.n + 1, ack: b.ack}
	return true
}

func cut(v string) (string, string, bool) {
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == '|' {
			return v[:i], v[i+1:], true
		}
	}
	return v, "", false
}

// Ranges answers queries, each a consistent snapshot of one inbox.
func (s *Store) Ranges(ctx context.Context, qs []model.RangeQuery) ([]model.Range, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.Range, len(qs))
	for i, q := range qs {
		b := s.inboxOf(q.UserID)
		r := model.Range{After: q.After, Head: b.seq, First: b.seq + 1, Acked: b.ack, Entries: []model.Entry{}}
		if q.FromAcked && b.ack > r.After {
			r.After = b.ack
		}
		if q.AfterTS && r.After > 0 {
			if e, ok := b.at(r.After); ok {
				r.AfterTS = e.TS
			}
		}
		if len(b.entries) > 0 {
			r.First = b.entries[0].Seq
			last := b.entries[len(b.entries)-1].Seq
			if q.Upto != 0 {
				last = min(last, q.Upto)
			}
			from := max(r.After+1, r.First)
			last = min(last, from+uint64(max(q.Limit, 1))-1)
			budget := q.MaxBytes
			if budget <= 0 {
				budget = model.DefaultRangeBytes
			}
			for seq := from; seq <= last; seq++ {
				e, _ := b.at(seq)
				n := size(e)
				if len(r.Entries) > 0 && n > budget {
					break
				}
				budget -= n
				r.Entries = append(r.Entries, cloneEntry(e))
			}
		}
		out[i] = r
	}
	return out, nil
}

func cloneEntry(e model.Entry) model.Entry {
	e.Frame = bytes.Clone(e.Frame)
	return e
}

// RaiseAcks raises each user's acknowledged seq; it never goes down.
func (s *Store) RaiseAcks(ctx context.Context, acks []model.Ack) error {
	_, err := s.Write(ctx, model.Write{Acks: acks})
	return err
}

// ClaimReads answers, per query, per seq, the entry there when it names the
// msgId and was not claimed before (zero Seq otherwise), claiming it.
func (s *Store) ClaimReads(ctx context.Context, qs []model.ReadQuery) ([][]model.Entry, error) {
	for _, q := range qs {
		if len(q.Seqs) != len(q.MsgIDs) {
			return nil, fmt.Errorf("store: %d seqs for %d msg ids", len(q.Seqs), len(q.MsgIDs))
		}
	}
	if len(qs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]model.Entry, len(qs))
	for i, q := range qs {
		b := s.inboxOf(q.UserID)
		out[i] = make([]model.Entry, len(q.Seqs))
		for j, seq := range q.Seqs {
			e, ok := b.at(seq)
			if !ok || seq == 0 || b.reads[seq] || !names(e, q.MsgIDs[j]) {
				continue
			}
			if b.reads == nil {
				b.reads = map[uint64]bool{}
			}
			b.reads[seq] = true
			out[i][j] = cloneEntry(e)
		}
		if len(b.entries) > 0 {
			for seq := range b.reads {
				if seq < b.entries[0].Seq {
					delete(b.reads, seq)
				}
			}
		}
		b.readsExp = s.after(s.inbox.TTL)
	}
	return out, nil
}

// names is store's substring check of the msgId in the stored member.
func names(e model.Entry, msgID string) bool {
	m := strconv.FormatUint(e.Seq, 10) + "|" + strconv.FormatInt(e.TS, 10) + "|" + string(e.Frame)
	return bytes.Contains([]byte(m), []byte(msgID))
}

// InboxBefore returns up to n entries of uid's inbox with a seq below before
// (0: from the newest), newest first.
func (s *Store) InboxBefore(ctx context.Context, uid string, before uint64, n int) ([]model.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.inboxOf(uid)
	out := []model.Entry{}
	for i := len(b.entries) - 1; i >= 0 && len(out) < max(n, 1); i-- {
		if e := b.entries[i]; before == 0 || e.Seq < before {
			out = append(out, cloneEntry(e))
		}
	}
	return out, nil
}
