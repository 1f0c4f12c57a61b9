package client

import "sync"

// inbox tracks the inbox sequence numbers this client has shown. Every user's
// inbox entries carry a per-user seq that only grows; the client reports the
// highest one in LOGIN.last_seq so the cluster knows where it stands, and
// drops a push it has already shown.
//
// This is where gap detection, SYNC requests and cumulative ACKs belong: they
// all need the same "what have I shown" state and run on the reader
// goroutine's path. Safe for concurrent use.
type inbox struct {
	mu   sync.Mutex
	last uint64
}

// accept records a pushed message's seq and reports whether to deliver it.
// seq 0 marks something not stored in an inbox (CIM broadcast), always new.
func (in *inbox) accept(seq uint64) bool {
	if seq == 0 {
		return true
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if seq <= in.last {
		return false
	}
	in.last = seq
	return true
}

// lastSeq is the highest seq shown, for LOGIN.
func (in *inbox) lastSeq() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.last
}
