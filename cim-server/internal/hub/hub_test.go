package hub

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
)

type fakeConn struct {
	user string
	n    int
}

func (c *fakeConn) HubKey() string { return c.user }

func TestPutGetReplace(t *testing.T) {
	h := New[*fakeConn](4)
	a1 := &fakeConn{user: "1", n: 1}
	if old, replaced := h.Put(a1); replaced || old != nil {
		t.Fatalf("first Put replaced %v", old)
	}
	if got, ok := h.Get("1"); !ok || got != a1 {
		t.Fatalf("Get = %v %v, want a1", got, ok)
	}
	if _, ok := h.Get("2"); ok {
		t.Fatal("Get of unknown user found something")
	}
	// GetBytes finds the same entries (same shard, same key).
	for _, k := range []string{"1", "2", "x", "longer-user-id"} {
		h.Put(&fakeConn{user: k})
		want, _ := h.Get(k)
		if got, ok := h.GetBytes([]byte(k)); !ok || got != want {
			t.Fatalf("GetBytes(%q) = %v %v, want %v", k, got, ok, want)
		}
		h.Remove(want)
	}
	if _, ok := h.GetBytes([]byte("2")); ok {
		t.Fatal("GetBytes of unknown user found something")
	}
	h.Put(a1)
	a2 := &fakeConn{user: "1", n: 2}
	old, replaced := h.Put(a2)
	if !replaced || old != a1 {
		t.Fatalf("second Put returned %v %v, want a1 true", old, replaced)
	}
	if got, _ := h.Get("1"); got != a2 {
		t.Fatalf("Get after replace = %v, want a2", got)
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	// Putting the same connection again is not a replacement.
	if old, replaced := h.Put(a2); replaced || old != nil {
		t.Fatalf("re-Put of same entry returned %v %v", old, replaced)
	}
	if h.Len() != 1 {
		t.Fatalf("Len after re-Put = %d, want 1", h.Len())
	}
}

func TestRemoveOnlyIfSame(t *testing.T) {
	h := New[*fakeConn](4)
	old := &fakeConn{user: "u"}
	cur := &fakeConn{user: "u"}
	h.Put(old)
	h.Put(cur)
	// The replaced connection's late cleanup must not evict its successor.
	if h.Remove(old) {
		t.Fatal("Remove of replaced entry reported success")
	}
	if got, ok := h.Get("u"); !ok || got != cur {
		t.Fatalf("successor evicted: %v %v", got, ok)
	}
	if !h.Remove(cur) {
		t.Fatal("Remove of current entry failed")
	}
	if _, ok := h.Get("u"); ok {
		t.Fatal("entry still present after Remove")
	}
	if h.Remove(cur) {
		t.Fatal("second Remove reported success")
	}
	if h.Len() != 0 {
		t.Fatalf("Len = %d, want 0", h.Len())
	}
}

func TestRange(t *testing.T) {
	h := New[*fakeConn](8)
	want := map[string]bool{}
	for i := range 100 {
		id := strconv.Itoa(i)
		want[id] = true
		h.Put(&fakeConn{user: id})
	}
	got := map[string]bool{}
	h.Range(func(c *fakeConn) bool {
		if got[c.user] {
			t.Errorf("user %s seen twice", c.user)
		}
		got[c.user] = true
		// Calling back into the hub from fn must not deadlock.
		h.Remove(c)
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("Range saw %d users, want %d", len(got), len(want))
	}
	if h.Len() != 0 {
		t.Fatalf("Len after removing in Range = %d", h.Len())
	}
	n := 0
	for i := range 10 {
		h.Put(&fakeConn{user: strconv.Itoa(i)})
	}
	h.Range(func(*fakeConn) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Range did not stop: %d calls", n)
	}
}

// TestConcurrent hammers the hub from many goroutines; each worker owns a
// set of users and checks its own invariants, and the race detector checks
// the locking.
func TestConcurrent(t *testing.T) {
	h := New[*fakeConn](16)
	const workers, users, rounds = 8, 50, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for u := range users {
					id := fmt.Sprintf("w%d-u%d", w, u)
					c := &fakeConn{user: id, n: r}
					prev, _ := h.Get(id)
					old, replaced := h.Put(c)
					if replaced != (prev != nil) || old != prev {
						t.Errorf("Put(%s) returned %v %v, previous entry %v", id, old, replaced, prev)
						return
					}
					if r%3 == 0 && !h.Remove(c) {
						t.Errorf("Remove(%s) of current entry failed", id)
						return
					}
					if prev != nil && h.Remove(prev) {
						t.Errorf("Remove(%s) of stale entry succeeded", id)
						return
					}
				}
			}
		}()
	}
	// Readers run alongside.
	done := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			h.Range(func(c *fakeConn) bool { return c.user != "" })
			_ = h.Len()
		}
	}()
	wg.Wait()
	close(done)
	rwg.Wait()
	// Last round (r = rounds-1 = 199, 199%3 != 0) leaves every user present.
	if h.Len() != workers*users {
		t.Fatalf("Len = %d, want %d", h.Len(), workers*users)
	}
	count := 0
	h.Range(func(*fakeConn) bool { count++; return true })
	if count != workers*users {
		t.Fatalf("Range counted %d, want %d", count, workers*users)
	}
}

func BenchmarkGet(b *testing.B) {
	h := New[*fakeConn](0)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		h.Put(&fakeConn{user: ids[i]})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Get(ids[i%len(ids)])
			i++
		}
	})
}
