package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gocim/gocim/proto/cimpb"
)

// Group is a named group as the route describes it (docs/ARCHITECTURE.md,
// "Groups").
type Group struct {
	ID      string // decimal group id
	Name    string
	Owner   string // the owner's user id; the owner is a member
	Open    bool   // anyone may join; otherwise only invited users
	Members int    // how many members it has
}

// GroupCount is how many members received (Delivered) and read (Read) one
// of our group messages.
type GroupCount struct {
	Delivered int
	Read      int
}

// receiptsPerCall bounds the msgIds of one GET /groups/receipts, keeping
// its URL short.
const receiptsPerCall = 100

// groupJSON is a group in the route's answers.
type groupJSON struct {
	ID      flexString `json:"groupId"`
	Name    string     `json:"name"`
	Owner   flexString `json:"owner"`
	Open    flexBool   `json:"open"`
	Members flexInt    `json:"members"`
}

func (g groupJSON) group() Group {
	return Group{ID: string(g.ID), Name: g.Name, Owner: string(g.Owner), Open: bool(g.Open), Members: int(g.Members)}
}

// groupPath is the path of group gid's resource, plus suffix.
func groupPath(gid, suffix string) string {
	return "/groups/" + url.PathEscape(gid) + suffix
}

// groupCall is call with the access token: every group call acts for the
// session's user.
func (a *API) groupCall(ctx context.Context, method, path string, in, out any) error {
	return a.call(ctx, method, path, in, out, a.authorize)
}

// CreateGroup creates a group named name (POST /groups); the caller becomes
// its owner and first member. open lets anyone join without an invitation.
func (a *API) CreateGroup(ctx context.Context, name string, open bool) (Group, error) {
	var d groupJSON
	err := a.groupCall(ctx, http.MethodPost, "/groups", map[string]any{"name": name, "open": open}, &d)
	return d.group(), err
}

// Groups lists the groups the caller is a member of (GET /groups).
func (a *API) Groups(ctx context.Context) ([]Group, error) {
	var d []groupJSON
	if err := a.groupCall(ctx, http.MethodGet, "/groups", nil, &d); err != nil {
		return nil, err
	}
	out := make([]Group, len(d))
	for i, g := range d {
		out[i] = g.group()
	}
	return out, nil
}

// Group describes group gid (GET /groups/:gid): members may ask, and anyone
// for an open group.
func (a *API) Group(ctx context.Context, gid string) (Group, error) {
	if gid == "" {
		return Group{}, ErrNoGroup
	}
	var d groupJSON
	err := a.groupCall(ctx, http.MethodGet, groupPath(gid, ""), nil, &d)
	return d.group(), err
}

// GroupMembers lists the members of group gid (GET /groups/:gid/members);
// only members may ask. It is the first page, by id, of at most 1000
// (GroupMembersAfter goes on).
func (a *API) GroupMembers(ctx context.Context, gid string) ([]User, error) {
	return a.GroupMembersAfter(ctx, gid, "", 0)
}

// GroupMembersAfter is the page of group gid's members after the user id
// after ("": from the first), at most limit of them (0 or more than 1000:
// 1000). A full page means there may be more after its last member.
func (a *API) GroupMembersAfter(ctx context.Context, gid, after string, limit int) ([]User, error) {
	if gid == "" {
		return nil, ErrNoGroup
	}
	var d []struct {
		UserID   flexString `json:"userId"`
		UserName flexString `json:"userName"`
	}
	if err := a.groupCall(ctx, http.MethodGet, groupPath(gid, "/members")+pageQuery(after, limit), nil, &d); err != nil {
		return nil, err
	}
	out := make([]User, len(d))
	for i, u := range d {
		out[i] = User{UserID: string(u.UserID), UserName: string(u.UserName)}
	}
	return out, nil
}

// JoinGroup makes the caller a member of group gid (POST
// /groups/:gid/join): an open group, or one it was invited to. Joining a
// group one is in already succeeds.
func (a *API) JoinGroup(ctx context.Context, gid string) (Group, error) {
	if gid == "" {
		return Group{}, ErrNoGroup
	}
	var d groupJSON
	err := a.groupCall(ctx, http.MethodPost, groupPath(gid, "/join"), nil, &d)
	return d.group(), err
}

// InviteToGroup invites users (ids or names) to group gid (POST
// /groups/:gid/invite) and returns the ids the route invited; each gets a
// system message naming the group. The owner may invite, and any member of
// an open group.
func (a *API) InviteToGroup(ctx context.Context, gid string, users ...string) ([]string, error) {
	if gid == "" {
		return nil, ErrNoGroup
	}
	if len(users) == 0 {
		return nil, ErrNoRecipient
	}
	var d struct {
		Invited []flexString `json:"invited"`
	}
	if err := a.groupCall(ctx, http.MethodPost, groupPath(gid, "/invite"), map[string]any{"users": users}, &d); err != nil {
		return nil, err
	}
	out := make([]string, len(d.Invited))
	for i, id := range d.Invited {
		out[i] = string(id)
	}
	return out, nil
}

// LeaveGroup takes the caller out of group gid (POST /groups/:gid/leave).
// The owner cannot leave (codes.Forbidden): it hands the group to a member
// first (TransferGroup), or dissolves it.
func (a *API) LeaveGroup(ctx context.Context, gid string) error {
	if gid == "" {
		return ErrNoGroup
	}
	return a.groupCall(ctx, http.MethodPost, groupPath(gid, "/leave"), nil, nil)
}

// KickFromGroup removes user (id or name) from group gid (POST
// /groups/:gid/kick); only the owner may.
func (a *API) KickFromGroup(ctx context.Context, gid, user string) error {
	if gid == "" {
		return ErrNoGroup
	}
	if user == "" {
		return ErrNoRecipient
	}
	return a.groupCall(ctx, http.MethodPost, groupPath(gid, "/kick"), map[string]string{"userId": user}, nil)
}

// RenameGroup renames group gid (POST /groups/:gid/rename); only the owner
// may.
func (a *API) RenameGroup(ctx context.Context, gid, name string) (Group, error) {
	if gid == "" {
		return Group{}, ErrNoGroup
	}
	var d groupJSON
	err := a.groupCall(ctx, http.MethodPost, groupPath(gid, "/rename"), map[string]string{"name": name}, &d)
	return d.group(), err
}

// TransferGroup hands group gid to user (id or name), a member of it (POST
// /groups/:gid/owner), and returns the group with its new owner; only the
// owner may (codes.Forbidden, as for a user who is not a member; an unknown
// user is codes.BadAccount). The former owner stays a member, free to leave.
// Naming the owner changes nothing.
func (a *API) TransferGroup(ctx context.Context, gid, user string) (Group, error) {
	if gid == "" {
		return Group{}, ErrNoGroup
	}
	if user == "" {
		return Group{}, ErrNoRecipient
	}
	var d groupJSON
	err := a.groupCall(ctx, http.MethodPost, groupPath(gid, "/owner"), map[string]string{"userId": user}, &d)
	return d.group(), err
}

// DissolveGroup deletes group gid (POST /groups/:gid/dissolve); only the
// owner may.
func (a *API) DissolveGroup(ctx context.Context, gid string) error {
	if gid == "" {
		return ErrNoGroup
	}
	return a.groupCall(ctx, http.MethodPost, groupPath(gid, "/dissolve"), nil, nil)
}

// GroupReceipts asks how many members received and read each of the
// caller's group messages, by msgId (GET /groups/receipts). Ids the route
// does not know are missing from the map. Many ids are asked in several
// calls.
func (a *API) GroupReceipts(ctx context.Context, msgIDs ...string) (map[string]GroupCount, error) {
	out := make(map[string]GroupCount, len(msgIDs))
	for len(msgIDs) > 0 {
		n := min(len(msgIDs), receiptsPerCall)
		var d map[string]struct {
			Delivered flexInt `json:"delivered"`
			Read      flexInt `json:"read"`
		}
		path := "/groups/receipts?msgIds=" + url.QueryEscape(strings.Join(msgIDs[:n], ","))
		if err := a.groupCall(ctx, http.MethodGet, path, nil, &d); err != nil {
			return nil, err
		}
		for id, c := range d {
			out[id] = GroupCount{Delivered: int(c.Delivered), Read: int(c.Read)}
		}
		msgIDs = msgIDs[n:]
	}
	return out, nil
}

// SendGroup sends text to group gid and returns the client_msg_id that
// RECEIPT and ERROR events will carry. Like Send it is kept and resent
// with the same client_msg_id until the route answers RECEIPT_SENT (whose
// Receipt.Count is the number of members it went to) or a final ERROR:
// codes.Forbidden when the user is not a member, codes.NoGroup for an
// unknown group. Later RECEIPT_DELIVERED / RECEIPT_READ events carry
// Receipt.Group and Receipt.Count, the number of members so far.
func (c *Client) SendGroup(ctx context.Context, gid, text string) (string, error) {
	if gid == "" {
		return "", ErrNoGroup
	}
	m := &cimpb.Msg{Group: gid, Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT}
	err := c.SendMsg(ctx, m)
	return m.GetClientMsgId(), err
}

// CreateGroup is API.CreateGroup as this client's user.
func (c *Client) CreateGroup(ctx context.Context, name string, open bool) (Group, error) {
	return c.api.CreateGroup(ctx, name, open)
}

// Groups is API.Groups as this client's user.
func (c *Client) Groups(ctx context.Context) ([]Group, error) { return c.api.Groups(ctx) }

// Group is API.Group as this client's user.
func (c *Client) Group(ctx context.Context, gid string) (Group, error) {
	return c.api.Group(ctx, gid)
}

// GroupMembers is API.GroupMembers as this client's user.
func (c *Client) GroupMembers(ctx context.Context, gid string) ([]User, error) {
	return c.api.GroupMembers(ctx, gid)
}

// GroupMembersAfter is API.GroupMembersAfter as this client's user.
func (c *Client) GroupMembersAfter(ctx context.Context, gid, after string, limit int) ([]User, error) {
	return c.api.GroupMembersAfter(ctx, gid, after, limit)
}

// JoinGroup is API.JoinGroup as this client's user.
func (c *Client) JoinGroup(ctx context.Context, gid string) (Group, error) {
	return c.api.JoinGroup(ctx, gid)
}

// InviteToGroup is API.InviteToGroup as this client's user.
func (c *Client) InviteToGroup(ctx context.Context, gid string, users ...string) ([]string, error) {
	return c.api.InviteToGroup(ctx, gid, users...)
}

// LeaveGroup is API.LeaveGroup as this client's user.
func (c *Client) LeaveGroup(ctx context.Context, gid string) error {
	return c.api.LeaveGroup(ctx, gid)
}

// KickFromGroup is API.KickFromGroup as this client's user.
func (c *Client) KickFromGroup(ctx context.Context, gid, user string) error {
	return c.api.KickFromGroup(ctx, gid, user)
}

// RenameGroup is API.RenameGroup as this client's user.
func (c *Client) RenameGroup(ctx context.Context, gid, name string) (Group, error) {
	return c.api.RenameGroup(ctx, gid, name)
}

// TransferGroup is API.TransferGroup as this client's user.
func (c *Client) TransferGroup(ctx context.Context, gid, user string) (Group, error) {
	return c.api.TransferGroup(ctx, gid, user)
}

// DissolveGroup is API.DissolveGroup as this client's user.
func (c *Client) DissolveGroup(ctx context.Context, gid string) error {
	return c.api.DissolveGroup(ctx, gid)
}

// GroupReceipts is API.GroupReceipts; the counts also raise what Status
// and Recent report for those of the messages this Client remembers (live
// group receipts are not stored, so this is how a client that was away
// catches up).
func (c *Client) GroupReceipts(ctx context.Context, msgIDs ...string) (map[string]GroupCount, error) {
	counts, err := c.api.GroupReceipts(ctx, msgIDs...)
	if err != nil {
		return nil, err
	}
	c.out.groupCounts(counts)
	return counts, nil
}

// flexBool accepts a JSON boolean, 0/1, or a string holding one of those
// ("true", "1"...), as group flags are stored as "1"/"0".
type flexBool bool

func (b *flexBool) UnmarshalJSON(raw []byte) error {
	var v bool
	if json.Unmarshal(raw, &v) == nil {
		*b = flexBool(v)
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(raw); err != nil {
		return err
	}
	switch strings.ToLower(string(s)) {
	case "1", "true":
		*b = true
	case "", "0", "false":
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", raw)
	}
	return nil
}
