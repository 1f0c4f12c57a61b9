package router

import (
	"context"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/codes"
	"google.golang.org/protobuf/proto"
)

// queueMessages queues the inbox entries of the messages, in batch order: a
// private message's for its recipient, a group message's for each member
// but the sender.
func (j *job) queueMessages() {
	for _, it := range j.msgs {
		switch {
		case it.code != 0 || it.msg.Broadcast || it.msg.ToApp:
		case it.group != nil:
			j.queueGroup(it)
		default:
			j.entries = append(j.entries, entry{to: it.toID, msg: it, frame: it.downlink(it.toID)})
			if j.r.devices() && !it.system && it.from != it.toID {
				// The sender's copy, for its other devices.
				j.entries = append(j.entries, entry{to: it.from, msg: it, frame: it.downlink(it.toID), copy: true})
			}
		}
	}
}

// appendEntries appends every entry of the batch (messages first, in order,
// then receipts), raises the acks (unless group receipts must be stored
// first) and reads the routes of everybody the stored frames go to, all in
// one pipeline (split per thousand commands); only stored frames are pushed.
// The senders' copies follow, once their messages are stored (appendCopies).
func (j *job) appendEntries(ctx context.Context) error {
	w := model.Write{Routes: j.deliveryTargets()}
	if len(j.receipts) == 0 {
		w.Acks, j.acksRaised = j.acksToRaise(), true
	}
	if len(j.entries)+len(w.Acks)+len(w.Routes) == 0 {
		return nil
	}
	in := make([]model.Append, 0, len(j.entries))
	of := make([]int, 0, len(j.entries)) // in[k] is entry of[k]'s
	var copies []int
	for i, e := range j.entries {
		if e.copy {
			copies = append(copies, i)
			continue
		}
		of = append(of, i)
		if e.raw != nil {
			// A group message: no per-member dedup (the sender's gdedup key
			// covers the message as a whole). A member's copy counts
			// against the sender's share of its inbox, as a private
			// message does: a group of two is no way around the share.
			a := model.Append{UserID: e.to, Frame: e.raw, TS: j.ts, MsgID: e.msg.msgID}
			if it := e.msg; !it.group.timeline && !it.system && !it.unshared && it.from != e.to {
				a.Sender = it.from
			}
			if g := e.msg.group; g.timeline {
				// One entry per message: a dedup key costs one key, and
				// an attempt after one that died stores nothing twice.
				a.Dedup = e.msg.dedupKey()
			} else {
				a.Once = g.again
			}
			in = append(in, a)
			continue
		}
		b, err := proto.Marshal(e.frame)
		if err != nil {
			return err
		}
		// A receipt never pushes a message out of a full inbox: then it
		// is not stored (Seq 0) and goes live only.
		a := model.Append{UserID: e.to, Frame: b, TS: j.ts, Droppable: e.msg == nil}
		if it := e.msg; it != nil {
			a.MsgID, a.Dedup = it.msgID, it.dedupKey()
			if !it.system && it.from != e.to {
				// Not stored when either blocked the other (blocks.go).
				a.From = it.from
				if !it.unshared {
					// A user's own message counts against its share of the
					// recipient's inbox (InboxLimits.PerSender).
					a.Sender = it.from
				}
			}
		}
		in = append(in, a)
	}
	w.Appends = in
	start := time.Now()
	written, err := j.r.st.Write(ctx, w)
	j.r.observer().InboxAppended(time.Since(start))
	if err != nil {
		return err
	}
	j.routes, j.routed = written.Routes, w.Routes
	for _, it := range j.msgs {
		if it.code == 0 && it.msg.GetFile().GetRef() != "" {
			j.r.FileSent(it.from, it.msg) // the upload is in use: it does not expire
		}
	}
	for k, a := range written.Appended {
		e := j.entries[of[k]]
		if e.raw != nil {
			g := e.msg.group
			switch {
			case g.timeline:
				g.gseq = a.Seq
			case a.Refused:
				// The member's inbox holds the sender's share unread: no
				// copy, no push, no missed-message hook. The message goes
				// on for the others; the sender is not told.
			default:
				g.stored = append(g.stored, member{e.to, a.Seq})
			}
			continue
		}
		f := e.frame
		if e.msg != nil && a.Refused {
			e.msg.fail(codes.QuotaExceeded, "the recipient has too many unread messages from you: send more once they read them")
			continue
		}
		switch a.Blocked {
		case model.BlockedBySender:
			e.msg.fail(codes.Forbidden, blockedText)
			continue
		case model.BlockedByRecipient:
			// Answered SENT as if stored; never pushed, never DELIVERED.
			// The sender's copy for its other devices is still kept.
			continue
		}
		if it := e.msg; it != nil && a.Resend {
			// The first copy's id and entry: pushed again in case the
			// first attempt stored it but never got that far.
			it.msgID, it.resent = a.MsgID, true
			f = nil
			if a.Stored.Seq != 0 {
				it.ts = a.Stored.TS
				if f = decodeEntry(a.Stored); f == nil {
					j.r.log.Warn("undecodable inbox entry", "user", e.to, "seq", a.Stored.Seq)
				}
			}
		} else {
			setSeq(f, a.Seq)
		}
		switch {
		case f == nil:
		case e.msg != nil:
			e.msg.stored = f
		default:
			j.live = append(j.live, live{uid: e.to, frame: f})
		}
	}
	return j.appendCopies(ctx, copies)
}

// appendCopies stores the senders' copies (--login-policy platform) of the
// batch's private messages that were stored, after them: a second round
// trip, so that a message refused for its recipient (its share) leaves no
// copy in the sender's history, and a resend's copy carries the id the
// recipient got. A copy is deduplicated in the sender's inbox as its message
// is in the recipient's: one stored by an earlier attempt is not pushed
// again (the sender's devices had it, or get it by SYNC). Copies are never
// refused (the sender's own inbox) and are pushed after the batch's other
// frames to the sender, in seq order.
func (j *job) appendCopies(ctx context.Context, copies []int) error {
	in := make([]model.Append, 0, len(copies))
	of := make([]int, 0, len(copies))
	for _, i := range copies {
		e := j.entries[i]
		it := e.msg
		if it.code != 0 {
			continue // refused for the recipient
		}
		// The first attempt's id and time, if the message was a resend.
		e.frame.Msg.MsgId, e.frame.Msg.TimestampMs = it.msgID, it.ts
		b, err := proto.Marshal(e.frame)
		if err != nil {
			return err
		}
		in = append(in, model.Append{UserID: e.to, Frame: b, TS: it.ts, MsgID: it.msgID, Dedup: it.dedupKey()})
		of = append(of, i)
	}
	if len(in) == 0 {
		return nil
	}
	start := time.Now()
	written, err := j.r.st.Write(ctx, model.Write{Appends: in})
	j.r.observer().InboxAppended(time.Since(start))
	if err != nil {
		return err
	}
	for k, a := range written.Appended {
		if a.Resend {
			continue
		}
		e := j.entries[of[k]]
		setSeq(e.frame, a.Seq)
		j.live = append(j.live, live{uid: e.to, frame: e.frame})
	}
	return nil
}
