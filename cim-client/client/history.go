package client

import (
	"context"
	"encoding/base64"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gocim/gocim/proto/cimpb"
)

// HistoryQuery selects one page of a user's stored messages.
type HistoryQuery struct {
	// Peer limits the page to the conversation with this user (id or name):
	// what peer sent me and what I sent peer. "" means every conversation.
	Peer string
	// Group (a group id; not with Peer) limits the page to that group's
	// messages, for a member; a large group's timeline (docs/ARCHITECTURE.md,
	// "Group timelines") is read only this way.
	Group string
	// Keyword keeps messages whose text contains it (case-insensitive).
	Keyword string
	// Before is the cursor of the previous page (HistoryPage.Next), or a
	// msg id (messages older than it); "" for the newest messages.
	Before string
	// Limit is the page size (0: the route's default, 20; at most 100).
	Limit int
}

// HistoryPage is one page of history, newest first.
type HistoryPage struct {
	// Messages are MSGs as the route stored them (msg_id, seq, from,
	// from_name, to, group, kind, body, file, timestamp_ms set, reply_to
	// for a reply, mentions (user ids) for a group message mentioning
	// members; a message read from a group's timeline has group_seq
	// instead of seq), newest first. Recalls, edits and reactions are not
	// messages of their own here: Op says a message's state instead,
	// MSG_OP_EDIT (Body is its latest text) or MSG_OP_RECALL (no Body, no
	// File), and Reactions its reactions. Messages deleted with
	// DeleteHistory are left out.
	Messages []*cimpb.Msg
	// Reactions are the reactions on the page's messages, by msgId: each
	// emoji with how many reacted with it, in the order the emoji first
	// came, the viewer's own marked Mine. A message without reactions (a
	// recalled one, say) has no entry; nil when no message has any.
	Reactions map[string][]Reaction
	// Next is the cursor for the next, older page; "" when there is none.
	// A page may hold fewer messages than asked (even none) and still have a
	// Next: the route reads a bounded part of the inbox per request (a rare
	// keyword over a large inbox takes several). HistoryAll and HistoryFill
	// follow it.
	Next string
}

// maxFillPages bounds the requests of one HistoryFill.
const maxFillPages = 10

// History asks the route for a page of the user's history (GET /history),
// with the access token. userID and sessionID, when not empty, must be the
// token's (the latest Login's), else the route answers 403.
func (a *API) History(ctx context.Context, userID, sessionID string, q HistoryQuery) (HistoryPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"userId": userID, "sessionId": sessionID, "peer": q.Peer, "group": q.Group, "keyword": q.Keyword, "before": q.Before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base()+"/history?"+v.Encode(), nil)
	if err != nil {
		return HistoryPage{}, err
	}
	a.authorize(req)
	var d struct {
		Messages []historyMsg `json:"messages"`
		Next     string       `json:"next"`
	}
	if err := a.do(req, "/history", &d); err != nil {
		return HistoryPage{}, err
	}
	page := HistoryPage{Next: d.Next, Messages: make([]*cimpb.Msg, len(d.Messages))}
	for i, m := range d.Messages {
		page.Messages[i] = m.msg()
		if rs := reactions(m.Reactions); rs != nil && m.MsgID != "" {
			if page.Reactions == nil {
				page.Reactions = map[string][]Reaction{}
			}
			page.Reactions[string(m.MsgID)] = rs
		}
	}
	return page, nil
}

// History asks the route for a page of this user's history, as the latest
// login (its access token, user and session).
func (c *Client) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	uid, sid, err := c.session()
	if err != nil {
		return HistoryPage{}, err
	}
	return c.api.History(ctx, uid, sid, q)
}

// HistoryAll iterates over this user's messages matching q, newest first,
// from q.Before on, asking the route for pages of q.Limit as it goes and
// following their cursors to the end of the history. Break out of the loop
// to stop. An error (e.g. the route's 429 when asked too fast) is yielded
// with a nil message and ends the iteration. It yields no reactions:
// History and HistoryFill have them (HistoryPage.Reactions).
func (c *Client) HistoryAll(ctx context.Context, q HistoryQuery) iter.Seq2[*cimpb.Msg, error] {
	return historyAll(ctx, q, c.History)
}

// HistoryAll is Client.HistoryAll for userID and sessionID (see History).
func (a *API) HistoryAll(ctx context.Context, userID, sessionID string, q HistoryQuery) iter.Seq2[*cimpb.Msg, error] {
	return historyAll(ctx, q, func(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
		return a.History(ctx, userID, sessionID, q)
	})
}

// HistoryFill is History that follows the route's cursor until it has n
// messages (n <= 0: q.Limit, or the route's default of 20), the history
// ends, or it made 10 requests; Next goes on from there ("" at the end).
func (c *Client) HistoryFill(ctx context.Context, q HistoryQuery, n int) (HistoryPage, error) {
	return historyFill(ctx, q, n, c.History)
}

// HistoryFill is Client.HistoryFill for userID and sessionID.
func (a *API) HistoryFill(ctx context.Context, userID, sessionID string, q HistoryQuery, n int) (HistoryPage, error) {
	return historyFill(ctx, q, n, func(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
		return a.History(ctx, userID, sessionID, q)
	})
}

type historyFunc func(ctx context.Context, q HistoryQuery) (HistoryPage, error)

func historyAll(ctx context.Context, q HistoryQuery, page historyFunc) iter.Seq2[*cimpb.Msg, error] {
	return func(yield func(*cimpb.Msg, error) bool) {
		for {
			p, err := page(ctx, q)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, m := range p.Messages {
				if !yield(m, nil) {
					return
				}
			}
			if p.Next == "" || p.Next == q.Before {
				return
			}
			q.Before = p.Next
		}
	}
}

func historyFill(ctx context.Context, q HistoryQuery, n int, page historyFunc) (HistoryPage, error) {
	if n <= 0 {
		n = cmpOr(q.Limit, 20)
	}
	var out HistoryPage
	for range maxFillPages {
		q.Limit = min(n-len(out.Messages), 100)
		p, err := page(ctx, q)
		if err != nil {
			return out, err
		}
		out.Messages = append(out.Messages, p.Messages...)
		if len(p.Reactions) > 0 {
			if out.Reactions == nil {
				out.Reactions = map[string][]Reaction{}
			}
			maps.Copy(out.Reactions, p.Reactions)
		}
		out.Next = p.Next
		if p.Next == "" || p.Next == q.Before || len(out.Messages) >= n {
			break
		}
		q.Before = p.Next
	}
	return out, nil
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// session returns the user and session of the latest login, which the
// API's access token belongs to. While reconnecting that may be a newer
// session than Info's: the route already considers it the current one.
func (c *Client) session() (uid, sid string, err error) {
	info := c.Info()
	if info.UserID == "" || info.SessionID == "" {
		return "", "", ErrNotLoggedIn
	}
	if uid, sid := c.api.loggedIn(); uid != "" && sid != "" {
		return uid, sid, nil
	}
	return info.UserID, info.SessionID, nil
}

// historyMsg is one message of a /history answer. Numbers may come as
// strings and kind as a number or a name; body is the text, and for a file
// sent inline its bytes in standard base64.
type historyMsg struct {
	MsgID       flexString        `json:"msgId"`
	Seq         flexInt           `json:"seq"`
	From        flexString        `json:"from"`
	FromName    flexString        `json:"fromName"`
	To          flexString        `json:"to"`
	Group       flexString        `json:"group"`
	GroupSeq    flexInt           `json:"groupSeq"` // read from a group's timeline
	Kind        flexKind          `json:"kind"`
	Body        string            `json:"body"`
	TimestampMs flexInt           `json:"timestampMs"`
	Op          string            `json:"op"`        // "edited", "recalled" or absent
	ReplyTo     string            `json:"replyTo"`   // the msgId it answers, if a reply
	Mentions    []flexString      `json:"mentions"`  // the mentioned members' ids; absent when none
	Reactions   []historyReaction `json:"reactions"` // absent when there are none
	File        *struct {
		Name        string  `json:"name"`
		Size        flexInt `json:"size"`
		ContentType string  `json:"contentType"`
		Ref         string  `json:"ref"`
	} `json:"file"`
}

func (h historyMsg) msg() *cimpb.Msg {
	m := &cimpb.Msg{
		MsgId:       string(h.MsgID),
		Seq:         uint64(max(h.Seq, 0)),
		From:        string(h.From),
		FromName:    string(h.FromName),
		To:          string(h.To),
		Group:       string(h.Group),
		Kind:        cimpb.Kind(h.Kind),
		Body:        []byte(h.Body),
		TimestampMs: int64(h.TimestampMs),
		ReplyTo:     h.ReplyTo,
	}
	for _, id := range h.Mentions {
		m.Mentions = append(m.Mentions, string(id))
	}
	switch h.Op {
	case "edited":
		m.Op = cimpb.MsgOp_MSG_OP_EDIT
	case "recalled":
		m.Op = cimpb.MsgOp_MSG_OP_RECALL
	}
	if h.GroupSeq > 0 { // a timeline entry: its seq is the group's, not the inbox's
		m.Seq, m.GroupSeq = 0, uint64(h.GroupSeq)
	}
	if f := h.File; f != nil {
		m.File = &cimpb.FileInfo{Name: f.Name, Size: int64(f.Size), ContentType: f.ContentType, Ref: f.Ref}
		if m.Kind == cimpb.Kind_KIND_TEXT {
			m.Kind = cimpb.Kind_KIND_FILE
		}
	}
	if m.Kind == cimpb.Kind_KIND_FILE && h.Body != "" {
		if b, err := base64.StdEncoding.DecodeString(h.Body); err == nil {
			m.Body = b
		}
	}
	return m
}

// flexKind accepts 0/1, "0"/"1", or a name such as "KIND_FILE" or "file".
type flexKind cimpb.Kind

func (k *flexKind) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	v := strings.TrimPrefix(strings.ToUpper(string(s)), "KIND_")
	switch {
	case v == "" || v == "TEXT":
		*k = flexKind(cimpb.Kind_KIND_TEXT)
	case v == "FILE":
		*k = flexKind(cimpb.Kind_KIND_FILE)
	default:
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*k = flexKind(n)
	}
	return nil
}
