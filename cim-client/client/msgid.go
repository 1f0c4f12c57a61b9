package client

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"
)

// msgIDs makes client_msg_id values: a random 64-bit prefix per Client plus a
// counter. The route deduplicates by (sender, client_msg_id), so ids must not
// repeat across restarts of the same user's program, which the random prefix
// ensures; the counter keeps them cheap and ordered within one run.
type msgIDs struct {
	prefix string
	n      atomic.Uint64
}

func newMsgIDs() *msgIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &msgIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (m *msgIDs) next() string {
	return m.prefix + strconv.FormatUint(m.n.Add(1), 10)
}

// ours reports whether id was made here: the echo of this Client's own
// send comes back with it (--login-policy platform).
func (m *msgIDs) ours(id string) bool { return strings.HasPrefix(id, m.prefix) }
