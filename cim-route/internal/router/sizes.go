package router

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// seqRoom is what the inbox seq adds to a stored frame when it goes down:
// a tag byte and a varint of at most ten.
const seqRoom = 11

// kindProblem says why a message's kind is refused, "" when it is fine:
// kinds the protocol does not define never pass (they would skip the
// checks of the kinds it does), and a broadcast carries text only.
func kindProblem(m *cimpb.Msg) string {
	if _, ok := cimpb.Kind_name[int32(m.Kind)]; !ok {
		return fmt.Sprintf("unknown message kind %d", m.Kind)
	}
	if m.Broadcast && m.Kind != cimpb.Kind_KIND_TEXT {
		return "a broadcast carries text only"
	}
	return ""
}

// checkSizes refuses, with ERROR 4131, every message whose delivery — the
// MSG as a recipient gets it, with the sender's id and name, the msgId,
// timestamp and seq the route adds — would be larger than a client's
// frame limit: stored, it would be a frame no client can take, which
// silences the recipient's inbox for good. Runs after resolve (the
// sender's name is part of the delivery).
func (j *job) checkSizes() {
	limit := j.r.cfg.MaxFrame
	for _, it := range j.msgs {
		if it.code != 0 {
			continue
		}
		to := it.toID
		if it.msg.Group != "" || it.msg.Broadcast {
			to = ""
		}
		// A throwaway delivery: a group resend may still change the msgId
		// (claimGroupMessages), never its length.
		if n := proto.Size(it.downlink(to)) + seqRoom; n > limit {
			it.fail(codes.TooLarge, fmt.Sprintf("message would be %d bytes delivered, over the %d-byte frame limit", n, limit))
		}
	}
}
