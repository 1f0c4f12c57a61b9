package router

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/proto/cimpb"
)

// The system user is the sender of POST /api/push messages that name no
// sender. It has no account (ids start at 1), never connects, and gets no
// receipts: nothing is ever stored in its inbox.
const (
	SystemUserID   = "0"
	SystemUserName = "system"
)

// Limits of HTTP-sent messages.
const (
	MaxText           = 4096  // bytes of a message text
	MaxPushRecipients = 10000 // entries of PushRequest.To
)

// PushRequest is an application back-end's message (POST /api/push): to
// the users in To (ids or names; stored in each inbox), to every member of
// Group (stored in each inbox), or, with All, live to everybody online (not
// stored). Exactly one of the three.
type PushRequest struct {
	To    []string
	Group string // a group id
	All   bool
	From  string // id or name of the sender; empty: the system user
	Text  string
}

// PushResult says what Push sent.
type PushResult struct {
	MsgIDs    map[string]string // To entry as given → its message id
	MsgID     string            // All or Group: the message's id
	Delivered int               // deliveries made live right away
}

// Push sends an application's message. Every recipient must exist: an
// unknown one fails the whole request (errs.ErrBadAccount naming them; an
// unknown group is errs.ErrNoGroup) and nothing is sent. A user named twice
// (even once by id, once by name) gets the message once. A group message
// goes to every member but the sender, who need not be a member.
func (r *Router) Push(ctx context.Context, req PushRequest) (PushResult, error) {
	if err := checkText(req.Text); err != nil {
		return PushResult{}, err
	}
	targets := 0
	for _, given := range []bool{req.All, len(req.To) > 0, req.Group != ""} {
		if given {
			targets++
		}
	}
	switch {
	case targets > 1:
		return PushResult{}, fmt.Errorf("%w: give one of to, group and all", errs.ErrBadArgument)
	case targets == 0:
		return PushResult{}, fmt.Errorf("%w: to (a list of users), group or all is required", errs.ErrBadArgument)
	case len(req.To) > MaxPushRecipients:
		return PushResult{}, fmt.Errorf("%w: at most %d recipients", errs.ErrBadArgument, MaxPushRecipients)
	}
	from, system := SystemUserID, true
	if req.From != "" && req.From != SystemUserID {
		if !isID(req.From) && !isName(req.From) {
			return PushResult{}, fmt.Errorf("%w: unknown sender %q", errs.ErrBadAccount, req.From)
		}
		id, err := r.resolveUser(ctx, req.From)
		if err != nil {
			return PushResult{}, err
		}
		from, system = id, false
	}

	j := r.newJob()
	if req.Group != "" {
		it := &outgoing{from: from, system: system, anyone: true, unshared: true,
			msg: &cimpb.Msg{Group: req.Group, Body: []byte(req.Text), Kind: cimpb.Kind_KIND_TEXT}}
		j.msgs = []*outgoing{it}
		if err := j.run(ctx); err != nil {
			return PushResult{}, err
		}
		return PushResult{MsgIDs: map[string]string{}, MsgID: it.msgID, Delivered: it.delivered}, it.err()
	}
	if req.All {
		it := &outgoing{from: from, system: system, unshared: true, msg: &cimpb.Msg{Body: []byte(req.Text), Kind: cimpb.Kind_KIND_TEXT, Broadcast: true}}
		j.msgs = []*outgoing{it}
		if err := j.run(ctx); err != nil {
			return PushResult{}, err
		}
		return PushResult{MsgIDs: map[string]string{}, MsgID: it.msgID, Delivered: it.delivered}, it.err()
	}

	ids, err := r.resolveUsers(ctx, req.To)
	if err != nil {
		return PushResult{}, err
	}
	byID := make(map[string]*outgoing, len(req.To))
	for _, to := range req.To {
		id := ids[to]
		if byID[id] == nil {
			it := &outgoing{from: from, system: system, unshared: true, msg: &cimpb.Msg{To: id, Body: []byte(req.Text), Kind: cimpb.Kind_KIND_TEXT}}
			byID[id] = it
			j.msgs = append(j.msgs, it)
		}
	}
	if err := j.run(ctx); err != nil {
		return PushResult{}, err
	}
	res := PushResult{MsgIDs: make(map[string]string, len(req.To))}
	for _, it := range j.msgs {
		if err := it.err(); err != nil {
			// Only a user deleted since resolving; the others are stored.
			return PushResult{}, err
		}
		res.Delivered += it.delivered
	}
	for _, to := range req.To {
		res.MsgIDs[to] = byID[ids[to]].msgID
	}
	return res, nil
}

// maxNamedUnknown bounds the unknown users an error names.
const maxNamedUnknown = 20

// resolveUsers returns the id of every user given by id or name, with one
// round trip for those the caches lack, or errs.ErrBadAccount naming the
// unknown ones.
func (r *Router) resolveUsers(ctx context.Context, users []string) (map[string]string, error) {
	out := make(map[string]string, len(users))
	var needIDs, needNames, unknown []string
	for _, u := range users {
		if _, seen := out[u]; seen {
			continue
		}
		out[u] = ""
		switch {
		case isID(u) && u != SystemUserID:
			if _, ok := r.names.Get(u); ok {
				out[u] = u
			} else {
				needIDs = append(needIDs, u)
			}
		case isName(u):
			if id, ok := r.ids.Get(u); ok {
				out[u] = id
			} else {
				needNames = append(needNames, u)
			}
		}
	}
	if len(needIDs)+len(needNames) > 0 {
		names, ids, err := r.st.Lookup(ctx, needIDs, needNames)
		if err != nil {
			return nil, err
		}
		for id, n := range names {
			out[id] = id
			r.remember(id, n)
		}
		for n, id := range ids {
			out[n] = id
			r.rememberName(n, id)
		}
	}
	seen := make(map[string]bool)
	for _, u := range users {
		if out[u] == "" && !seen[u] {
			seen[u] = true
			unknown = append(unknown, strconv.Quote(u))
		}
	}
	if len(unknown) == 0 {
		return out, nil
	}
	more := ""
	if len(unknown) > maxNamedUnknown {
		more = fmt.Sprintf(" and %d more", len(unknown)-maxNamedUnknown)
		unknown = unknown[:maxNamedUnknown]
	}
	return nil, fmt.Errorf("%w: unknown users %s%s; nothing sent", errs.ErrBadAccount, strings.Join(unknown, ", "), more)
}
