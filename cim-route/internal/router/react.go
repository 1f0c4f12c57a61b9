package router

// Reactions (docs/ARCHITECTURE.md, "Reactions"). A reaction is a MSG with
// op REACT naming a message of its conversation (ref_msg_id) and carrying
// an emoji (or none, to take one's reaction back); it is stored and
// delivered exactly like a message, so every device of every member of the
// conversation gets it in order, offline ones later. The route also keeps
// each conversation's reactions (model.Reaction), which history shows with
// each message. It never looks the message up: a reaction is kept in the
// conversation it was sent in, so naming another conversation's message
// only adds a reaction nobody in that conversation will see.

import (
	"context"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// MaxReactionBytes bounds a reaction's emoji.
const MaxReactionBytes = 32

// reactProblem says why the reaction m is refused, "" when it is fine.
func reactProblem(m *cimpb.Msg, now time.Time) string {
	switch {
	case m.GetBroadcast():
		return "a broadcast cannot be reacted to"
	case m.GetToApp():
		return "a message to the app cannot be a reaction"
	case m.GetKind() != cimpb.Kind_KIND_TEXT || m.GetFile() != nil:
		return "a reaction is a text message"
	}
	if _, ok := pastMsgID(m.GetRefMsgId(), now); !ok {
		return "ref_msg_id is not a message id"
	}
	return emojiProblem(m.GetBody())
}

// emojiProblem says why b is no reaction's emoji, "" when it is one (or
// empty: no reaction).
func emojiProblem(b []byte) string {
	if len(b) > MaxReactionBytes || !utf8.Valid(b) {
		return fmt.Sprintf("a reaction is at most %d bytes of UTF-8", MaxReactionBytes)
	}
	for _, c := range string(b) {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return "a reaction has no spaces or control characters"
		}
	}
	return ""
}

// reaction is it's reaction record, or false when it is no reaction (or
// the message failed already).
func (it *outgoing) reaction() (model.Reaction, bool) {
	if it.code != 0 || it.system || it.msg.GetOp() != cimpb.MsgOp_MSG_OP_REACT {
		return model.Reaction{}, false
	}
	r := model.Reaction{MsgID: it.msg.RefMsgId, User: it.from, Emoji: string(it.msg.Body), RevID: it.msgID}
	switch {
	case it.group != nil:
		r.Conv = model.GroupConversation(it.msg.Group)
	case it.toID != "":
		r.Conv = model.PairConversation(it.from, it.toID)
	default:
		return model.Reaction{}, false
	}
	return r, true
}

// refuseCrowdedReactions refuses the batch's reactions with a new emoji on
// a message that has model.ReactionKinds different ones already (one round
// trip, only for a batch with reactions), before anything is stored.
func (j *job) refuseCrowdedReactions(ctx context.Context) error {
	var refs []model.ReactionRef
	var its []*outgoing
	for _, it := range j.msgs {
		if r, ok := it.reaction(); ok && r.Emoji != "" {
			refs = append(refs, model.ReactionRef{Conv: r.Conv, MsgID: r.MsgID})
			its = append(its, it)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	got, err := j.r.st.ReactionsOf(ctx, "", refs)
	if err != nil {
		return err
	}
	for i, it := range its {
		if crowded(got[i].Counts, string(it.msg.Body)) {
			it.fail(codes.BadArgument, fmt.Sprintf("message %s has %d different reactions already: add one of those", it.msg.RefMsgId, model.ReactionKinds))
		}
	}
	return nil
}

// crowded reports whether emoji would be one kind too many among counts.
func crowded(counts []model.EmojiCount, emoji string) bool {
	if len(counts) < model.ReactionKinds {
		return false
	}
	for _, c := range counts {
		if c.Emoji == emoji {
			return false
		}
	}
	return true
}

// storeReactions records the batch's stored reactions (one round trip, only
// for a batch with any), before the senders hear SENT. A private reaction
// that was not stored (its recipient blocked its sender) is not recorded.
// A resend carries its first attempt's msgId: it records the same reaction
// again (a no-op) or, after a later one of the same user, nothing.
func (j *job) storeReactions(ctx context.Context) error {
	var rs []model.Reaction
	for _, it := range j.msgs {
		r, ok := it.reaction()
		if !ok || (it.group == nil && it.stored == nil && !it.resent) {
			continue
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return nil
	}
	ok, err := j.r.st.React(ctx, rs)
	if err != nil {
		return err
	}
	for i, r := range rs {
		if !ok[i] {
			// Two new emoji raced past refuseCrowdedReactions: the
			// reaction went out but history leaves it out.
			j.r.log.Warn("reaction not kept: too many kinds", "conversation", r.Conv, "msgId", r.MsgID, "user", r.User)
		}
	}
	return nil
}

// historyReactions adds to a history page its messages' reactions, with
// the viewer's own (one round trip). A recalled message shows none.
func (r *Router) historyReactions(ctx context.Context, viewer string, page *HistoryPage) error {
	refs := make([]model.ReactionRef, 0, len(page.Messages))
	at := make([]int, 0, len(page.Messages))
	for i, m := range page.Messages {
		if m.Op == cimpb.MsgOp_MSG_OP_RECALL {
			continue
		}
		conv := model.PairConversation(m.From, m.To)
		if m.Group != "" {
			conv = model.GroupConversation(m.Group)
		}
		refs = append(refs, model.ReactionRef{Conv: conv, MsgID: m.MsgID})
		at = append(at, i)
	}
	if len(refs) == 0 {
		return nil
	}
	got, err := r.st.ReactionsOf(ctx, viewer, refs)
	if err != nil {
		return err
	}
	for k, i := range at {
		page.Messages[i].Reactions = got[k]
	}
	return nil
}
