package router

// Messages to the app back-end (an uplink MSG with to_app, a device's data
// sent up over MQTT): stored in no inbox, handed to the webhooks as a
// device.data event. The sender's RECEIPT_SENT means the event is in every
// webhook URL's queue in Redis (event.Queue), so it is delivered at least
// once; a queue that cannot take it fails the message with ERROR
// Unavailable, and the sender sends it again. A route whose webhooks take
// no device.data refuses such messages with ERROR Forbidden.

import (
	"context"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// appQueue returns the webhooks' synchronous queue when they take
// device.data, else nil.
func (r *Router) appQueue() event.Queue {
	q, ok := r.cfg.Events.(event.Queue)
	if !ok || !r.wants(event.DeviceData) {
		return nil
	}
	return q
}

// appProblem says why a message to the app back-end is refused (its code
// and text), 0 when it is fine: it names no recipient, is a new text or
// binary message, and some webhook takes it.
func (r *Router) appProblem(m *cimpb.Msg) (codes.Code, string) {
	switch {
	case m.To != "" || m.Group != "" || m.Broadcast:
		return codes.BadArgument, "a message to the app back-end names no recipient, group or broadcast"
	case m.Kind != cimpb.Kind_KIND_TEXT && m.Kind != cimpb.Kind_KIND_BINARY, m.File != nil:
		return codes.BadArgument, "a message to the app back-end is text or binary"
	case m.Kind == cimpb.Kind_KIND_TEXT && !utf8.Valid(m.Body):
		return codes.BadArgument, "a text message's body must be UTF-8 (send bytes as KIND_BINARY)"
	case m.Op != cimpb.MsgOp_MSG_OP_NEW:
		return codes.BadArgument, "a message to the app back-end cannot be recalled or edited"
	case r.appQueue() == nil:
		return codes.Forbidden, "no app back-end configured (no webhook takes device.data)"
	}
	return 0, ""
}

// appData is the payload of the device.data event of it.
func appData(it *outgoing) event.AppMessage {
	m := it.msg
	d := event.AppMessage{MsgID: it.msgID, From: it.from, FromName: it.fromName, TimestampMs: it.ts,
		Kind: "text", ClientMsgID: m.ClientMsgId}
	if m.Kind == cimpb.Kind_KIND_BINARY {
		d.Kind, d.Body = "binary", m.Body
	} else {
		d.Text = string(m.Body)
	}
	return d
}

// sendToApp queues the device.data events of the batch's messages to the
// app back-end, in one call; when the queue does not take them, those
// messages fail with Unavailable (nothing else of the batch does).
func (j *job) sendToApp(ctx context.Context) {
	var its []*outgoing
	var evs []event.Event
	for _, it := range j.msgs {
		if it.code == 0 && it.msg.ToApp {
			its = append(its, it)
			evs = append(evs, event.New(event.DeviceData, j.now, appData(it)))
		}
	}
	if len(evs) == 0 {
		return
	}
	q := j.r.appQueue()
	if q == nil { // checked in prepare: only a configuration change gets here
		for _, it := range its {
			it.fail(codes.Forbidden, "no app back-end configured")
		}
		return
	}
	if err := q.Enqueue(ctx, evs); err != nil {
		j.r.log.Warn("messages to the app back-end not queued; their senders will retry", "count", len(evs), "err", err)
		for _, it := range its {
			it.fail(codes.Unavailable, "the app back-end's queue cannot take the message now; send it again later")
		}
	}
}
