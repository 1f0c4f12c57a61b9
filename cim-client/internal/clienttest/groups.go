package clienttest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// DefaultGroupMax is the fake's member limit, the route's default.
const DefaultGroupMax = 10000

// group is one group the fake route keeps.
type group struct {
	id, name, owner string
	open            bool
	members         []string // user ids, in the order they joined
	invited         map[string]bool
}

func (g *group) member(uid string) bool { return slices.Contains(g.members, uid) }

func (g *group) json() map[string]any {
	return map[string]any{"groupId": g.id, "name": g.name, "owner": g.owner, "open": g.open, "members": len(g.members)}
}

// GroupCount is what GET /groups/receipts answers for one msgId.
type GroupCount struct {
	Delivered int `json:"delivered"`
	Read      int `json:"read"`
}

// groupState is the fake route's group data, under Route.mu.
type groupState struct {
	groups map[string]*group
	nextID int
	max    int
	counts map[string]GroupCount // msgId → receipts
	sent   map[string]string     // "<uid>|<clientMsgId>" → msgId of group messages stored
}

func (r *Route) registerGroups(mux *http.ServeMux) {
	r.grp = groupState{groups: map[string]*group{}, max: DefaultGroupMax, counts: map[string]GroupCount{}, sent: map[string]string{}}
	mux.HandleFunc("POST /groups", r.createGroup)
	mux.HandleFunc("GET /groups", r.listGroups)
	mux.HandleFunc("GET /groups/receipts", r.groupReceipts)
	mux.HandleFunc("GET /groups/{gid}", r.getGroup)
	mux.HandleFunc("GET /groups/{gid}/members", r.groupMembers)
	mux.HandleFunc("POST /groups/{gid}/join", r.joinGroup)
	mux.HandleFunc("POST /groups/{gid}/invite", r.inviteToGroup)
	mux.HandleFunc("POST /groups/{gid}/leave", r.leaveGroup)
	mux.HandleFunc("POST /groups/{gid}/kick", r.kickFromGroup)
	mux.HandleFunc("POST /groups/{gid}/rename", r.renameGroup)
	mux.HandleFunc("POST /groups/{gid}/dissolve", r.dissolveGroup)
}

// AddGroup creates a group owned by the user with id owner, with members
// (ids) besides the owner, and returns its id.
func (r *Route) AddGroup(name, owner string, open bool, members ...string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.newGroupLocked(name, owner, open)
	for _, m := range members {
		if !g.member(m) {
			g.members = append(g.members, m)
		}
	}
	return g.id
}

func (r *Route) newGroupLocked(name, owner string, open bool) *group {
	r.grp.nextID++
	g := &group{id: strconv.Itoa(r.grp.nextID), name: name, owner: owner, open: open, members: []string{owner}, invited: map[string]bool{}}
	r.grp.groups[g.id] = g
	return g
}

// GroupMembers returns the member ids of group gid, in the order they
// joined; nil for an unknown group.
func (r *Route) GroupMembers(gid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.grp.groups[gid]; g != nil {
		return slices.Clone(g.members)
	}
	return nil
}

// GroupInvited reports whether user id uid is invited to group gid and
// has not joined.
func (r *Route) GroupInvited(gid, uid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.grp.groups[gid]
	return g != nil && g.invited[uid]
}

// GroupName returns group gid's name and whether it exists.
func (r *Route) GroupName(gid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.grp.groups[gid]; g != nil {
		return g.name, true
	}
	return "", false
}

// SetGroupMax changes the member limit (default DefaultGroupMax).
func (r *Route) SetGroupMax(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.grp.max = n
}

// SetGroupCount sets what GET /groups/receipts answers for msgID.
func (r *Route) SetGroupCount(msgID string, delivered, read int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.grp.counts[msgID] = GroupCount{Delivered: delivered, Read: read}
}

// groupLocked finds the group named by the request's {gid}, answering 404
// / 9200 when there is none.
func (r *Route) groupLocked(w http.ResponseWriter, req *http.Request) *group {
	g := r.grp.groups[req.PathValue("gid")]
	if g == nil {
		reply(w, http.StatusNotFound, codes.NoGroup, "no such group", nil)
	}
	return g
}

// groupCallLocked checks the bearer (recorded under the request's pattern,
// e.g. "POST /groups/{gid}/join") and finds the group; nil after a refusal.
func (r *Route) groupCallLocked(w http.ResponseWriter, req *http.Request) (*account, *group) {
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return nil, nil
	}
	g := r.groupLocked(w, req)
	if g == nil {
		return nil, nil
	}
	return me, g
}

func forbidden(w http.ResponseWriter, msg string) {
	reply(w, http.StatusForbidden, codes.Forbidden, msg, nil)
}

// userLocked resolves a user id or name.
func (r *Route) userLocked(s string) *account {
	if isNumber(s) {
		return r.byID[s]
	}
	return r.byName[s]
}

// groupName checks a group name as the route does: 1–64 characters of
// printable UTF-8.
func groupName(s string) bool {
	n := utf8.RuneCountInString(s)
	return utf8.ValidString(s) && n >= 1 && n <= 64 && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

// decode reads a JSON body into in; false after answering 400.
func decode(w http.ResponseWriter, req *http.Request, in any) bool {
	if err := json.NewDecoder(req.Body).Decode(in); err != nil {
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return false
	}
	return true
}

func (r *Route) createGroup(w http.ResponseWriter, req *http.Request) {
	var in struct {
		Name string `json:"name"`
		Open bool   `json:"open"`
	}
	if !decode(w, req, &in) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	if !groupName(in.Name) {
		reply(w, http.StatusBadRequest, codes.BadArgument, "group name must be 1-64 printable characters", nil)
		return
	}
	reply(w, http.StatusOK, codes.OK, "ok", r.newGroupLocked(in.Name, me.id, in.Open).json())
}

func (r *Route) listGroups(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	out := []map[string]any{}
	for id := 1; id <= r.grp.nextID; id++ {
		if g := r.grp.groups[itoa(id)]; g != nil && g.member(me.id) {
			out = append(out, g.json())
		}
	}
	reply(w, http.StatusOK, codes.OK, "ok", out)
}

func (r *Route) getGroup(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
	case !g.open && !g.member(me.id):
		forbidden(w, "not a member")
	default:
		reply(w, http.StatusOK, codes.OK, "ok", g.json())
	}
}

func (r *Route) groupMembers(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
	case !g.member(me.id):
		forbidden(w, "not a member")
	default:
		type user struct {
			UserID   string `json:"userId"`
			UserName string `json:"userName"`
		}
		out := []user{}
		for _, id := range g.members {
			name := ""
			if a := r.byID[id]; a != nil {
				name = a.name
			}
			out = append(out, user{id, name})
		}
		reply(w, http.StatusOK, codes.OK, "ok", out)
	}
}

func (r *Route) joinGroup(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
	case g.member(me.id):
		reply(w, http.StatusOK, codes.OK, "ok", g.json())
	case !g.open && !g.invited[me.id]:
		forbidden(w, "not invited")
	case len(g.members) >= r.grp.max:
		reply(w, http.StatusConflict, codes.GroupFull, "group is full", nil)
	default:
		delete(g.invited, me.id)
		g.members = append(g.members, me.id)
		reply(w, http.StatusOK, codes.OK, "ok", g.json())
	}
}

func (r *Route) inviteToGroup(w http.ResponseWriter, req *http.Request) {
	var in struct {
		Users []string `json:"users"`
	}
	if !decode(w, req, &in) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
		return
	case len(in.Users) == 0:
		reply(w, http.StatusBadRequest, codes.BadArgument, "users is required", nil)
		return
	case me.id != g.owner && !(g.open && g.member(me.id)):
		forbidden(w, "only the owner may invite")
		return
	}
	var unknown []string
	var invite []string
	for _, u := range in.Users {
		a := r.userLocked(u)
		if a == nil {
			unknown = append(unknown, u)
			continue
		}
		if !g.member(a.id) && !slices.Contains(invite, a.id) {
			invite = append(invite, a.id)
		}
	}
	if len(unknown) > 0 {
		reply(w, http.StatusUnauthorized, codes.BadAccount, "unknown users: "+strings.Join(unknown, ", "), nil)
		return
	}
	for _, id := range invite {
		g.invited[id] = true
	}
	reply(w, http.StatusOK, codes.OK, "ok", map[string]any{"invited": append([]string{}, invite...)})
}

func (r *Route) leaveGroup(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
	case me.id == g.owner:
		forbidden(w, "the owner cannot leave: dissolve instead")
	case !g.member(me.id):
		forbidden(w, "not a member")
	default:
		g.members = slices.DeleteFunc(g.members, func(id string) bool { return id == me.id })
		reply(w, http.StatusOK, codes.OK, "ok", nil)
	}
}

func (r *Route) kickFromGroup(w http.ResponseWriter, req *http.Request) {
	var in struct {
		UserID string `json:"userId"`
	}
	if !decode(w, req, &in) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	if g == nil {
		return
	}
	if me.id != g.owner {
		forbidden(w, "only the owner may kick")
		return
	}
	a := r.userLocked(in.UserID)
	if a == nil {
		reply(w, http.StatusUnauthorized, codes.BadAccount, "unknown user", nil)
		return
	}
	if a.id == g.owner {
		forbidden(w, "the owner cannot be kicked")
		return
	}
	g.members = slices.DeleteFunc(g.members, func(id string) bool { return id == a.id })
	delete(g.invited, a.id)
	reply(w, http.StatusOK, codes.OK, "ok", nil)
}

func (r *Route) renameGroup(w http.ResponseWriter, req *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if !decode(w, req, &in) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
	case me.id != g.owner:
		forbidden(w, "only the owner may rename")
	case !groupName(in.Name):
		reply(w, http.StatusBadRequest, codes.BadArgument, "group name must be 1-64 printable characters", nil)
	default:
		g.name = in.Name
		reply(w, http.StatusOK, codes.OK, "ok", g.json())
	}
}

func (r *Route) dissolveGroup(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, g := r.groupCallLocked(w, req)
	switch {
	case g == nil:
	case me.id != g.owner:
		forbidden(w, "only the owner may dissolve")
	default:
		delete(r.grp.groups, g.id)
		reply(w, http.StatusOK, codes.OK, "ok", nil)
	}
}

func (r *Route) groupReceipts(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if me, _, _ := r.bearerLocked(w, req, req.Pattern, false); me == nil {
		return
	}
	q := req.URL.Query().Get("msgIds")
	if q == "" {
		reply(w, http.StatusBadRequest, codes.BadArgument, "msgIds is required", nil)
		return
	}
	out := map[string]GroupCount{}
	for _, id := range strings.Split(q, ",") {
		if c, ok := r.grp.counts[id]; ok {
			out[id] = c
		}
	}
	reply(w, http.StatusOK, codes.OK, "ok", out)
}

// groupSend is the route's part of a group MSG from user uid: the frames
// to answer the sender with, and the MSG to store for each other member
// (nil for a resend of a message already stored, or a refusal).
func (r *Route) groupSend(uid string, m *cimpb.Msg) (answer *cimpb.Frame, fanout *cimpb.Frame, to []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	refuse := func(code codes.Code, text string) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(code), Text: text, ClientMsgId: m.GetClientMsgId()}}
	}
	g := r.grp.groups[m.GetGroup()]
	switch {
	case g == nil:
		return refuse(codes.NoGroup, "no such group"), nil, nil
	case !g.member(uid):
		return refuse(codes.Forbidden, "not a member of group "+g.id), nil, nil
	}
	for _, id := range g.members {
		if id != uid {
			to = append(to, id)
		}
	}
	key := uid + "|" + m.GetClientMsgId()
	msgID, resend := r.grp.sent[key]
	if !resend {
		msgID = "m-" + m.GetClientMsgId()
		r.grp.sent[key] = msgID
	}
	answer = &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{
		Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: msgID, ClientMsgId: m.GetClientMsgId(),
		Group: g.id, Count: uint32(len(to)),
	}}
	if resend {
		return answer, nil, nil
	}
	name := ""
	if a := r.byID[uid]; a != nil {
		name = a.name
	}
	fanout = &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{
		MsgId: msgID, From: uid, FromName: name, Group: g.id, Body: m.GetBody(), Kind: m.GetKind(),
		File: m.GetFile(), TimestampMs: time.Now().UnixMilli(), ReplyTo: m.GetReplyTo(), Mentions: r.mentionsLocked(g, m.GetMentions()),
	}}
	return answer, fanout, to
}

// mentionsLocked is what the route makes of a group message's mentions:
// the ids of the users named (by id or name) that are members of g, in
// order, once each; nil for none.
func (r *Route) mentionsLocked(g *group, named []string) []string {
	var ids []string
	for _, u := range named {
		a := r.byName[u]
		if isNumber(u) {
			a = r.byID[u]
		}
		if a != nil && g.member(a.id) && !slices.Contains(ids, a.id) {
			ids = append(ids, a.id)
		}
	}
	return ids
}

// GroupMsg is a group MSG frame from a member, for Inbox.Append.
func GroupMsg(msgID, from, fromName, gid, text string) *cimpb.Frame {
	f := TextMsg(msgID, from, fromName, text)
	f.Msg.Group = gid
	return f
}

// GroupReceipt is a live group RECEIPT frame: count members reached st
// for msgID, the latest being by.
func GroupReceipt(st cimpb.ReceiptStatus, msgID, gid string, count int, by string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{
		Status: st, MsgId: msgID, Group: gid, Count: uint32(count), By: by,
	}}
}
