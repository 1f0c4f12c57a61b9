package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

// scanCounter counts the inbox entries history reads, per call.
type scanCounter struct {
	Store
	most atomic.Int64 // the most entries one InboxBefore asked for
	read atomic.Int64 // entries answered since the last reset
}

func (s *scanCounter) InboxBefore(ctx context.Context, uid string, before uint64, n int) ([]model.Entry, error) {
	if int64(n) > s.most.Load() {
		s.most.Store(int64(n))
	}
	es, err := s.Store.InboxBefore(ctx, uid, before, n)
	s.read.Add(int64(len(es)))
	return es, err
}

// walkHistory follows Next from the newest page to the end and returns
// every message id, the pages' sizes and the most entries one page read.
func walkHistory(t *testing.T, e *env, sc *scanCounter, q HistoryQuery) (ids []string, sizes []int, mostRead int64) {
	t.Helper()
	for range 1000 {
		sc.read.Store(0)
		p, err := e.r.History(e.ctx, q)
		if err != nil {
			t.Fatalf("history before %q: %v", q.Before, err)
		}
		mostRead = max(mostRead, sc.read.Load())
		for _, m := range p.Messages {
			ids = append(ids, m.MsgID)
		}
		sizes = append(sizes, len(p.Messages))
		if p.Next == "" {
			return ids, sizes, mostRead
		}
		if p.Next == q.Before {
			t.Fatalf("page at %q did not move on", q.Before)
		}
		q.Before = p.Next
	}
	t.Fatal("history never ended")
	return nil, nil, 0
}

func withScanCounter(sc *scanCounter, l Limits) func(*Config) {
	return func(c *Config) {
		sc.Store = c.Store
		c.Store = sc
		c.Limits = l
	}
}

// TestHistoryBoundedConversation: with a small read budget the pages of a
// conversation (two inboxes merged) still come out complete, newest first,
// without repeats, and no request reads more than its budget per inbox.
func TestHistoryBoundedConversation(t *testing.T) {
	sc := &scanCounter{}
	e := newEnv(t, PolicyKick, 1, withScanCounter(sc, Limits{HistoryScan: 16}))
	alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
	var want []string
	for i := range 90 {
		from, to := alice, "bob"
		if i%3 == 1 {
			from, to = bob, "alice"
		}
		id, err := e.r.P2P(e.ctx, from.UserID, to, fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if i%4 == 0 { // noise in alice's inbox that is not the conversation
			if _, err := e.r.P2P(e.ctx, carol.UserID, "alice", "noise"); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(want) // history is ordered by msgId (send time, then random)
	slices.Reverse(want)
	got, _, most := walkHistory(t, e, sc, HistoryQuery{UserID: alice.UserID, SessionID: alice.SessionID, Peer: "bob", Limit: 7})
	if !slices.Equal(got, want) {
		t.Fatalf("walked %d messages, want %d in order:\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	if most > 2*16 || sc.most.Load() > 16 {
		t.Fatalf("a page read %d entries (one call asked for %d), budget 16 per inbox", most, sc.most.Load())
	}
}

// TestHistoryKeywordOverLargeInbox: a keyword that matches rarely no longer
// makes one request read the whole inbox: pages (some empty) go on by Next
// and find every match.
func TestHistoryKeywordOverLargeInbox(t *testing.T) {
	sc := &scanCounter{}
	e := newEnv(t, PolicyKick, 1, withScanCounter(sc, Limits{HistoryScan: 50}))
	alice, bob := e.connect("alice"), e.connect("bob")
	var want []string
	for i := range 200 {
		text := fmt.Sprintf("chatter %d", i)
		if i == 10 || i == 100 || i == 190 {
			text = fmt.Sprintf("the NEEDLE %d", i)
		}
		id, err := e.r.P2P(e.ctx, bob.UserID, "alice", text)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, "NEEDLE") {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	slices.Reverse(want)
	got, sizes, most := walkHistory(t, e, sc, HistoryQuery{UserID: alice.UserID, SessionID: alice.SessionID, Keyword: "needle"})
	if !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v", got, want)
	}
	if most > 50 {
		t.Fatalf("a page read %d entries, budget 50", most)
	}
	if len(sizes) < 4 || !slices.Contains(sizes, 0) {
		t.Fatalf("page sizes %v: want the 200 entries read in pages of at most 50, some without a match", sizes)
	}
}

// TestHistoryBytesBound: an answer carries about HistoryBytes of messages
// (at least one), whatever the limit asks for.
func TestHistoryBytesBound(t *testing.T) {
	sc := &scanCounter{}
	e := newEnv(t, PolicyKick, 1, withScanCounter(sc, Limits{HistoryBytes: 3000}))
	alice, bob := e.connect("alice"), e.connect("bob")
	big := strings.Repeat("x", 1000)
	for range 9 {
		if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", big); err != nil {
			t.Fatal(err)
		}
	}
	got, sizes, _ := walkHistory(t, e, sc, HistoryQuery{UserID: alice.UserID, SessionID: alice.SessionID, Limit: MaxHistoryLimit})
	if len(got) != 9 {
		t.Fatalf("walked %d messages, want 9", len(got))
	}
	for _, n := range sizes {
		if n > 2 { // each entry is over 1000 bytes
			t.Fatalf("page sizes %v: a page of more than 3000 bytes", sizes)
		}
	}
}

// TestUploadQuotaAndReferences: a user's uploads count against a daily
// quota (a failed upload is refunded); an upload is in use once someone
// other than its uploader fetched it, or its uploader sent it in a message.
func TestUploadQuotaAndReferences(t *testing.T) {
	fs := files.New(t.TempDir(), 1<<10)
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		c.Files = fs
		c.Limits.UploadQuota = 1000
	})
	alice, bob := e.connect("alice"), e.connect("bob")
	put := func(s Session, n int) (files.Info, error) {
		return e.r.Upload(e.ctx, s.UserID, s.SessionID, "f.bin", "", int64(n), strings.NewReader(strings.Repeat("x", n)))
	}
	a1, err := put(alice, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put(alice, 600); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("over the quota: %v, want ErrQuotaExceeded", err)
	}
	// A body shorter than announced is refunded the difference.
	short, err := e.r.Upload(e.ctx, alice.UserID, alice.SessionID, "f.bin", "", 300, strings.NewReader("xx"))
	if err != nil || short.Size != 2 {
		t.Fatalf("short upload: %+v %v", short, err)
	}
	if _, err := put(alice, 398); err != nil {
		t.Fatalf("the rest of the quota (600+2+398): %v", err)
	}
	if _, err := put(bob, 600); err != nil {
		t.Fatalf("bob's own quota: %v", err)
	}

	e.r.FileFetched(alice.UserID, a1) // its uploader: not a use
	if fs.Referenced(a1.Ref) {
		t.Fatal("marked in use by its uploader's download")
	}
	e.r.FileFetched(bob.UserID, a1)
	if !fs.Referenced(a1.Ref) {
		t.Fatal("not in use after bob fetched it")
	}
	file := func(ref string) *cimpb.Msg {
		return &cimpb.Msg{Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "f.bin", Ref: ref}}
	}
	e.r.FileSent(bob.UserID, file(short.Ref)) // not bob's upload
	if fs.Referenced(short.Ref) {
		t.Fatal("marked in use by a message of someone else")
	}
	e.r.FileSent(alice.UserID, file(short.Ref))
	if !fs.Referenced(short.Ref) {
		t.Fatal("not in use after its uploader sent it")
	}
}
