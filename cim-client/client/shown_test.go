package client

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"
	"weak"
)

// TestShownSetForgetsOldestFirst: the set keeps the last max ids, forgets
// the oldest as new ones come, and HasSeq sees only what it keeps.
func TestShownSetForgetsOldestFirst(t *testing.T) {
	s := newShownSet(3)
	for i := 1; i <= 3; i++ {
		if s.ContainsOrAdd(fmt.Sprint("m", i), shownMsg{seq: uint64(i)}) {
			t.Fatalf("m%d reported shown before it was added", i)
		}
	}
	if !s.ContainsOrAdd("m2", shownMsg{seq: 99}) {
		t.Fatal("m2 not reported shown")
	}
	if m, _ := s.Peek("m2"); m.seq != 2 {
		t.Errorf("m2 has seq %d after ContainsOrAdd, want 2 kept", m.seq)
	}
	for i := 4; i <= 7; i++ {
		s.ContainsOrAdd(fmt.Sprint("m", i), shownMsg{seq: uint64(i)})
		for j := 1; j <= i; j++ {
			id := fmt.Sprint("m", j)
			if want := j > i-3; s.Contains(id) != want || s.HasSeq(uint64(j)) != want {
				t.Fatalf("after m%d: Contains(%s) %v, HasSeq(%d) %v, want %v", i, id, s.Contains(id), j, s.HasSeq(uint64(j)), want)
			}
		}
	}
	s.Add("m6", shownMsg{group: "g", seq: 60})
	if m, ok := s.Peek("m6"); !ok || m.group != "g" || m.seq != 60 {
		t.Errorf("m6 after Add: %+v %v, want replaced", m, ok)
	}
	if s.HasSeq(6) || !s.HasSeq(60) {
		t.Error("HasSeq still sees the replaced seq")
	}
	if len(s.at) != 3 || len(s.ring) != 3 {
		t.Errorf("index %d, ring %d, want 3 each", len(s.at), len(s.ring))
	}
}

// TestShownSetKeepsNoIDs: the set remembers a msgId by its hash, so the
// strings it was given are garbage once the caller drops them (a busy
// client's set was thousands of them for the collector to trace).
func TestShownSetKeepsNoIDs(t *testing.T) {
	s := newShownSet(16)
	var ptrs []weak.Pointer[byte]
	for i := range 8 {
		b := []byte(fmt.Sprintf("msg-%d-0123456789abcdef", i))
		ptrs = append(ptrs, weak.Make(&b[0]))
		id := unsafe.String(&b[0], len(b))
		if i%2 == 0 {
			s.ContainsOrAdd(id, shownMsg{seq: uint64(i + 1)})
		} else {
			s.Add(id, shownMsg{seq: uint64(i + 1)})
		}
	}
	runtime.GC()
	for i, p := range ptrs {
		if p.Value() != nil {
			t.Errorf("msgId %d is still reachable: the set keeps its string", i)
		}
	}
	for i := range 8 {
		if m, ok := s.Peek(fmt.Sprintf("msg-%d-0123456789abcdef", i)); !ok || m.seq != uint64(i+1) {
			t.Errorf("msg-%d: %+v %v, want seq %d", i, m, ok, i+1)
		}
	}
	runtime.KeepAlive(s)
}
