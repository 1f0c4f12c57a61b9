package router

// What the router reports to the app back-end's webhooks besides presence
// (package event; docs/ARCHITECTURE.md, "Webhooks"): kicks, group changes,
// messages to app users (message.app) and messages stored for recipients
// who were offline (message.offline). A payload is built only for a type
// the sink wants, so a route without webhooks pays a type check per
// delivery and nothing else.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

// wants reports whether the webhooks take events of type typ.
func (r *Router) wants(typ event.Type) bool { return event.Wants(r.cfg.Events, typ) }

// emitGroup reports a group change that succeeded.
func (r *Router) emitGroup(typ event.Type, gid, name, by string, users ...string) {
	if r.wants(typ) {
		r.emit(typ, event.Group{GroupID: gid, Name: name, By: by, Users: users})
	}
}

// appUsersRetry spaces the lookups of app user names that had no account.
const appUsersRetry = 30 * time.Second

// AppUsers are the accounts a message to which is reported as message.app,
// given by id or name. Names become ids on first use, with one lookup
// (an account's id never changes); a name with no account yet is looked
// up again at most every 30 s. Safe for concurrent use.
type AppUsers struct {
	ids     atomic.Pointer[map[string]bool]
	pending atomic.Bool // names wait to be resolved

	mu    sync.Mutex // held while resolving
	names []string   // not resolved yet
	next  time.Time  // no lookup before
}

// NewAppUsers returns the app users among users (ids or names); nil for
// none.
func NewAppUsers(users []string) *AppUsers {
	if len(users) == 0 {
		return nil
	}
	a := &AppUsers{}
	ids := map[string]bool{}
	for _, u := range users {
		if isID(u) {
			ids[u] = true
		} else {
			a.names = append(a.names, u)
		}
	}
	a.ids.Store(&ids)
	a.pending.Store(len(a.names) > 0)
	return a
}

// set returns the app users' ids, first resolving the names not resolved
// yet (when it is time to and no other call is at it; the others go on
// with the ids known).
func (a *AppUsers) set(ctx context.Context, r *Router) map[string]bool {
	if a == nil {
		return nil
	}
	if !a.pending.Load() || !a.mu.TryLock() {
		return *a.ids.Load()
	}
	defer a.mu.Unlock()
	now := r.now()
	ids := *a.ids.Load()
	if now.Before(a.next) {
		return ids
	}
	a.next = now.Add(appUsersRetry)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, found, err := r.st.Lookup(ctx, nil, a.names)
	if err != nil {
		r.log.Warn("webhook app users not looked up; retrying later", "err", err)
		return ids
	}
	more := make(map[string]bool, len(ids)+len(found))
	for id := range ids {
		more[id] = true
	}
	var left []string
	for _, n := range a.names {
		if id := found[n]; id != "" {
			more[id] = true
		} else {
			left = append(left, n)
		}
	}
	if len(left) > 0 {
		r.log.Warn("webhook app users without an account; looking again later", "names", left)
	}
	a.names = left
	a.ids.Store(&more)
	a.pending.Store(len(left) > 0)
	return more
}

// maxRecipients bounds the offline members one message.offline of a
// timeline message names.
const maxRecipients = 1000

// msgHooks are the message events of one delivery: message.app for each
// new message stored for an app user, message.offline for each one stored
// for a recipient without an online route (none, not confirmed yet, on a
// gateway that is gone, or found gone by the push). A nil *msgHooks
// reports nothing.
type msgHooks struct {
	j       *job
	apps    map[string]bool // ids of the app users; nil: message.app not wanted
	offline bool            // message.offline wanted
	away    []away
	// reached: recipients a push reached on some device (several devices
	// per user: one may be missing while another got it).
	reached map[recipient]bool
}

// recipient names one recipient of j.msgs[item].
type recipient struct {
	item int
	uid  string
}

// away is a recipient of j.msgs[item] who was not reached; seq is its
// copy's seq when known.
type away struct {
	item int
	uid  string
	seq  uint64
}

// hooks returns the message events of j's delivery, nil when the webhooks
// want none.
func (j *job) hooks(ctx context.Context) *msgHooks {
	r := j.r
	offline := r.wants(event.MessageOffline)
	var apps map[string]bool
	if r.wants(event.MessageApp) {
		apps = r.cfg.AppUsers.set(ctx, r)
	}
	if !offline && len(apps) == 0 {
		return nil
	}
	return &msgHooks{j: j, apps: apps, offline: offline}
}

// reported says whether it is a message the webhooks hear about: stored
// by this attempt (not a resend), not a broadcast (stored nowhere), not
// from the system user (the back-end's own).
func reported(it *outgoing) bool {
	switch {
	case it.code != 0 || it.msg.Broadcast || it.system || it.resent:
		return false
	case it.group == nil:
		return it.stored != nil
	case it.group.sent:
		return false
	case it.group.timeline:
		return it.group.gseq != 0
	}
	return len(it.group.stored) > 0
}

// emitApps reports the messages stored for app users.
func (h *msgHooks) emitApps() {
	if h == nil || len(h.apps) == 0 {
		return
	}
	for _, it := range h.j.msgs {
		if !reported(it) {
			continue
		}
		switch g := it.group; {
		case g == nil:
			if h.apps[it.toID] {
				h.emit(event.MessageApp, it, it.toID, it.stored.GetMsg().GetSeq())
			}
		case g.timeline:
			for _, uid := range g.recipients {
				if h.apps[uid] {
					h.emit(event.MessageApp, it, uid, 0)
				}
			}
		default:
			for _, m := range g.stored {
				if h.apps[m.uid] {
					h.emit(event.MessageApp, it, m.uid, m.seq)
				}
			}
		}
	}
}

// missed notes that uid, a recipient of j.msgs[item], was not reached.
func (h *msgHooks) missed(item int, uid string, seq uint64) {
	if h != nil && h.offline && item >= 0 && reported(h.j.msgs[item]) && uid != h.j.msgs[item].from {
		h.away = append(h.away, away{item, uid, seq})
	}
}

// reach notes that a push reached uid, a recipient of j.msgs[item].
func (h *msgHooks) reach(item int, uid string) {
	if h != nil && h.offline && item >= 0 {
		if h.reached == nil {
			h.reached = map[recipient]bool{}
		}
		h.reached[recipient{item, uid}] = true
	}
}

// emitOffline reports the recipients not reached: one event per
// recipient, or for a timeline message one per thousand of them, each
// marking those who muted the conversation (one read of the mutes).
func (h *msgHooks) emitOffline(ctx context.Context) {
	if h == nil || len(h.away) == 0 {
		return
	}
	var single []away
	var timeline map[int][]string
	var items []int // timeline's keys, in order
	for _, a := range h.away {
		k := recipient{a.item, a.uid}
		if h.reached[k] {
			continue // on another device, or reported already
		}
		if h.reached == nil {
			h.reached = map[recipient]bool{}
		}
		h.reached[k] = true
		it := h.j.msgs[a.item]
		switch g := it.group; {
		case g == nil:
			a.seq = it.stored.GetMsg().GetSeq()
			single = append(single, a)
		case g.timeline:
			if timeline == nil {
				timeline = map[int][]string{}
			}
			if timeline[a.item] == nil {
				items = append(items, a.item)
			}
			timeline[a.item] = append(timeline[a.item], a.uid)
		default:
			for i := 0; a.seq == 0 && i < len(g.stored); i++ {
				if g.stored[i].uid == a.uid {
					a.seq = g.stored[i].seq
				}
			}
			single = append(single, a)
		}
	}
	muted := h.muted(ctx, single, timeline, items)
	for _, a := range single {
		d := messageData(h.j.msgs[a.item], a.uid, a.seq)
		d.Muted = muted[recipient{a.item, a.uid}]
		h.j.r.emit(event.MessageOffline, d)
	}
	for _, item := range items {
		it, uids := h.j.msgs[item], timeline[item]
		for len(uids) > 0 {
			n := min(len(uids), maxRecipients)
			d := messageData(it, "", 0)
			d.Recipients = uids[:n:n]
			for _, uid := range d.Recipients {
				if muted[recipient{item, uid}] {
					d.MutedRecipients = append(d.MutedRecipients, uid)
				}
			}
			h.j.r.emit(event.MessageOffline, d)
			uids = uids[n:]
		}
	}
}

// muted reads which of the recipients to report muted their message's
// conversation (the sender, or the group), in one round trip. Unread
// (Redis down): none, and the events still go.
func (h *msgHooks) muted(ctx context.Context, single []away, timeline map[int][]string, items []int) map[recipient]bool {
	var refs []model.MuteRef
	var of []recipient
	add := func(item int, uid string) {
		it := h.j.msgs[item]
		target := model.MutePeer(it.from)
		if it.group != nil {
			target = model.MuteGroup(it.msg.Group)
		}
		refs = append(refs, model.MuteRef{User: uid, Target: target})
		of = append(of, recipient{item, uid})
	}
	for _, a := range single {
		add(a.item, a.uid)
	}
	for _, item := range items {
		for _, uid := range timeline[item] {
			add(item, uid)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	until, err := h.j.r.st.MutedUntil(ctx, refs)
	if err != nil {
		h.j.r.log.Warn("mutes not read for the webhooks", "err", err)
		return nil
	}
	now := h.j.r.now()
	out := map[recipient]bool{}
	for i, u := range until {
		if u >= 0 && mutedNow(u, now) {
			out[of[i]] = true
		}
	}
	return out
}

func (h *msgHooks) emit(typ event.Type, it *outgoing, to string, seq uint64) {
	h.j.r.emit(typ, messageData(it, to, seq))
}

// messageData is the payload of a message event about it's copy for to
// (a timeline message's is for the group: to is empty).
func messageData(it *outgoing, to string, seq uint64) event.Message {
	m := it.msg
	d := event.Message{MsgID: it.msgID, From: it.from, FromName: it.fromName, To: to, Group: m.Group,
		Kind: "text", TimestampMs: it.ts, Seq: seq, RefMsgID: m.RefMsgId, ReplyTo: m.ReplyTo, Mentions: it.mentions}
	switch m.Kind {
	case cimpb.Kind_KIND_FILE:
		d.Kind = "file"
	case cimpb.Kind_KIND_BINARY:
		d.Kind = "binary"
	}
	if m.Kind != cimpb.Kind_KIND_BINARY && utf8.Valid(m.Body) {
		d.Text = string(m.Body)
	} else {
		d.Body = m.Body
	}
	if f := m.GetFile(); f != nil {
		d.FileName = f.Name
	}
	switch m.Op {
	case cimpb.MsgOp_MSG_OP_RECALL:
		d.Op = "recall"
	case cimpb.MsgOp_MSG_OP_EDIT:
		d.Op = "edit"
	case cimpb.MsgOp_MSG_OP_REACT:
		d.Op = "react"
	}
	if it.group != nil && it.group.timeline {
		d.GroupSeq = it.group.gseq
	}
	return d
}
