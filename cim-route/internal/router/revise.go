package router

// Recall, edit and delete (issue 15; docs/ARCHITECTURE.md, "Recall, edit
// and delete"). A recall or an edit is a MSG with an op and a ref_msg_id,
// addressed like the message it changes, and stored and delivered exactly
// like a message (its own msgId and seq, dedup, receipts), so it reaches
// every device of every recipient in order, after the message. The route
// also records it as that message's revision under its own sender, which
// history applies: nobody can revise another sender's message in history,
// and clients apply a change only to a message with the same from. Deleting
// is per user: a set of msgIds that user's history leaves out.

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// MaxHistoryDelete bounds the msgIds of one DeleteHistory call.
const MaxHistoryDelete = 100

// maxClockSkew is how far in the future a msgId may be (another route
// replica's clock) and still name a message.
const maxClockSkew = time.Minute

// replyProblem says why m's reply_to is refused, "" when it is fine (or
// absent): a message id, not from the future, on a message that is stored
// for a user or a group.
func replyProblem(m *cimpb.Msg, now time.Time) string {
	ref := m.GetReplyTo()
	switch {
	case ref == "":
		return ""
	case m.GetBroadcast():
		return "a broadcast cannot be a reply"
	case m.GetToApp():
		return "a message to the app cannot be a reply"
	}
	if _, ok := pastMsgID(ref, now); !ok {
		return "reply_to is not a message id"
	}
	return ""
}

// pastMsgID is the time of message id, when it is a msgId not from the
// future (beyond another replica's clock skew).
func pastMsgID(id string, now time.Time) (time.Time, bool) {
	ms, ok := msgIDTime(id)
	at := time.UnixMilli(ms)
	return at, ok && !at.After(now.Add(maxClockSkew))
}

// opProblem says why m's op is refused, "" when it is fine: a recall or an
// edit names a message of at most Config.EditWindow ago, is text (an edit
// the new text, a recall none) and never a broadcast (nothing stores one,
// so nothing could apply the change later).
func (r *Router) opProblem(m *cimpb.Msg, now time.Time) string {
	op := m.GetOp()
	if _, ok := cimpb.MsgOp_name[int32(op)]; !ok {
		return fmt.Sprintf("unknown message op %d", op)
	}
	if p := mentionsProblem(m); p != "" {
		return p
	}
	if op == cimpb.MsgOp_MSG_OP_NEW {
		if m.GetRefMsgId() != "" {
			return "ref_msg_id is only for a recall, an edit or a reaction"
		}
		return replyProblem(m, now)
	}
	if m.GetReplyTo() != "" {
		return "reply_to is only for a new message (an edit keeps the original's)"
	}
	if op == cimpb.MsgOp_MSG_OP_REACT {
		return reactProblem(m, now)
	}
	window := r.cfg.EditWindow
	switch {
	case window <= 0:
		return "recall and edit are disabled on this server"
	case m.GetBroadcast():
		return "a broadcast cannot be recalled or edited"
	case m.GetKind() != cimpb.Kind_KIND_TEXT || m.GetFile() != nil:
		return "a recall or an edit is a text message"
	}
	at, ok := pastMsgID(m.GetRefMsgId(), now)
	if !ok {
		return "ref_msg_id is not a message id"
	}
	if now.Sub(at) > window {
		return fmt.Sprintf("message %s is older than the %v a message can be recalled or edited in", m.GetRefMsgId(), window)
	}
	switch {
	case op == cimpb.MsgOp_MSG_OP_RECALL && len(m.GetBody()) > 0:
		return "a recall has no body"
	case op == cimpb.MsgOp_MSG_OP_EDIT && len(m.GetBody()) == 0:
		return "an edit carries the new text (a recall takes a message back)"
	case !utf8.Valid(m.GetBody()):
		return "text is not valid UTF-8"
	}
	return ""
}

// refuseRecalled refuses the batch's edits of messages their senders
// recalled (one round trip, only for a batch with edits). A recall and an
// edit racing each other can both pass; the store keeps the recall (it is
// final), and clients ignore an edit of a message they saw recalled.
func (j *job) refuseRecalled(ctx context.Context) error {
	var refs []model.MsgRef
	var edits []*outgoing
	for _, it := range j.msgs {
		if it.code == 0 && it.msg.GetOp() == cimpb.MsgOp_MSG_OP_EDIT {
			refs = append(refs, model.MsgRef{Sender: it.from, MsgID: it.msg.RefMsgId})
			edits = append(edits, it)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	revs, _, err := j.r.st.RevisionsOf(ctx, "", refs)
	if err != nil {
		return err
	}
	for i, it := range edits {
		if revs[i].Recall {
			it.fail(codes.BadArgument, "message "+it.msg.RefMsgId+" was recalled")
		}
	}
	return nil
}

// storeRevisions records the batch's stored recalls and edits as their
// messages' revisions (one round trip, only for a batch with any), before
// the senders hear SENT. A resend records the same revision again, under
// the first attempt's msgId: a no-op.
func (j *job) storeRevisions(ctx context.Context) error {
	var rs []model.Revision
	for _, it := range j.msgs {
		op := it.msg.GetOp()
		if it.code != 0 || (op != cimpb.MsgOp_MSG_OP_RECALL && op != cimpb.MsgOp_MSG_OP_EDIT) {
			continue
		}
		rv := model.Revision{Sender: it.from, MsgID: it.msg.RefMsgId, RevID: it.msgID, Recall: op == cimpb.MsgOp_MSG_OP_RECALL}
		if !rv.Recall {
			rv.Text = it.msg.Body
		}
		rs = append(rs, rv)
	}
	if len(rs) == 0 {
		return nil
	}
	return j.r.st.Revise(ctx, rs)
}

// reviseHistory applies to a history page its messages' revisions and the
// viewer's deletions, read in one round trip: a deleted message leaves the
// page; a recalled one keeps its place without body or file (Op RECALL);
// an edited text message shows its latest text (Op EDIT). With a keyword
// (lower case), a message that no longer matches leaves the page too.
// Leaving the page changes nothing about its Next.
func (r *Router) reviseHistory(ctx context.Context, viewer, keyword string, page *HistoryPage) error {
	if len(page.Messages) == 0 {
		return nil
	}
	refs := make([]model.MsgRef, len(page.Messages))
	for i, m := range page.Messages {
		refs[i] = model.MsgRef{Sender: m.From, MsgID: m.MsgID}
	}
	revs, deleted, err := r.st.RevisionsOf(ctx, viewer, refs)
	if err != nil {
		return err
	}
	kept := page.Messages[:0]
	for i, m := range page.Messages {
		if i < len(deleted) && deleted[i] {
			continue
		}
		switch rv := revs[i]; {
		case rv.Recall:
			m.Op, m.Kind, m.Body, m.File = cimpb.MsgOp_MSG_OP_RECALL, cimpb.Kind_KIND_TEXT, nil, nil
			if keyword != "" {
				continue
			}
		case rv.Exists() && m.Kind == cimpb.Kind_KIND_TEXT:
			m.Op, m.Body = cimpb.MsgOp_MSG_OP_EDIT, rv.Text
			if keyword != "" && !strings.Contains(strings.ToLower(string(m.Body)), keyword) {
				continue
			}
		}
		kept = append(kept, m)
	}
	page.Messages = kept
	return nil
}

// DeleteHistory hides messages from uid's own history (POST
// /history/delete): at most MaxHistoryDelete msgIds per call; ids of
// messages not in uid's history are harmless. Nobody else's history
// changes. errs.ErrQuotaExceeded when uid deleted as many messages as an
// inbox holds (--inbox-max) within the inbox TTL.
func (r *Router) DeleteHistory(ctx context.Context, uid string, msgIDs []string) error {
	if err := checkUserID("userId", uid); err != nil {
		return err
	}
	if len(msgIDs) == 0 || len(msgIDs) > MaxHistoryDelete {
		return fmt.Errorf("%w: msgIds must name 1 to %d messages", errs.ErrBadArgument, MaxHistoryDelete)
	}
	limit := r.now().Add(maxClockSkew).UnixMilli()
	for _, id := range msgIDs {
		if at, ok := msgIDTime(id); !ok || at > limit {
			return fmt.Errorf("%w: msgIds must be message ids (32 hex digits)", errs.ErrBadArgument)
		}
	}
	return r.st.DeleteFromHistory(ctx, uid, msgIDs)
}
