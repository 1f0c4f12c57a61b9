package router

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

// History limits.
const (
	DefaultHistoryLimit = 20
	MaxHistoryLimit     = 100
	maxKeyword          = 100 // characters
	historyPage         = 64  // inbox entries read per round trip (at most 4 MiB)
	maxFileName         = 255 // bytes
	maxContentType      = 255 // bytes
	cursorPrefix        = "h1."
)

// HistoryQuery asks for one page of a user's messages (GET /history).
type HistoryQuery struct {
	UserID    string
	SessionID string // must be the user's current session
	// Peer (id or name) limits the page to the private conversation with
	// that user: what the peer sent me and what I sent the peer (group
	// messages are not part of it). Empty: what I received from anybody,
	// group messages included (sent messages live in the recipients'
	// inboxes).
	Peer string
	// Group (an id; not with Peer) limits the page to one group's
	// messages, for a current member: the copies in the member's inbox
	// and, for a group large enough for a timeline (Config.GroupTimelineMin),
	// the group's timeline, which holds the group's retained messages from
	// before the member joined too.
	Group   string
	Keyword string // case-insensitive substring of the text, or of a file's name
	// Before is where the page starts: the Next of the previous page, or a
	// msgId (only messages older than it); empty: the newest.
	Before string
	Limit  int // 0: DefaultHistoryLimit; at most MaxHistoryLimit
}

// HistoryMessage is one message of a history page.
type HistoryMessage struct {
	MsgID string
	// Seq is its seq in the inbox it was read from: the recipient's, or
	// the group's timeline (then it is the message's group_seq).
	Seq         uint64
	From        string
	FromName    string
	To          string
	Group       string // the group id of a group message
	GroupSeq    uint64 // read from the group's timeline: its group_seq (= Seq)
	Kind        cimpb.Kind
	Body        []byte
	File        *cimpb.FileInfo
	TimestampMs int64
	// Op is the message's state: MSG_OP_EDIT (Body is its latest text) or
	// MSG_OP_RECALL (no Body, no File) after its sender changed it.
	Op cimpb.MsgOp
	// ReplyTo is the msgId of the message this one answers, if it is a
	// reply.
	ReplyTo string
	// Mentions are the ids of the members a group message mentions.
	Mentions []string
	// Reactions are the message's reactions, with the viewer's own.
	Reactions model.Reactions

	size int // bytes of its inbox entry
}

// HistoryPage is newest first; Next is the Before of the next page, empty
// when there is none. A page may hold fewer than Limit messages (even none)
// and still have a Next: one request reads a bounded part of the inboxes
// (Limits.HistoryScan, HistoryScanBytes) and answers a bounded number of
// bytes (Limits.HistoryBytes); the next page goes on from there.
type HistoryPage struct {
	Messages []HistoryMessage
	Next     string
}

// History returns a page of the user's messages, newest first (by msgId,
// which starts with the send time). Messages still in the inboxes are
// covered: --inbox-max and --inbox-ttl bound history too. The work of one
// call is bounded whatever the inbox holds and however rarely the keyword
// matches.
func (r *Router) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	if err := checkSession(q.UserID, q.SessionID); err != nil {
		return HistoryPage{}, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Limit < 1 || q.Limit > MaxHistoryLimit {
		return HistoryPage{}, fmt.Errorf("%w: limit must be 1..%d", errs.ErrBadArgument, MaxHistoryLimit)
	}
	if utf8.RuneCountInString(q.Keyword) > maxKeyword || !utf8.ValidString(q.Keyword) {
		return HistoryPage{}, fmt.Errorf("%w: keyword must be valid UTF-8 of at most %d characters", errs.ErrBadArgument, maxKeyword)
	}
	cur, err := parseCursor(q.Before)
	if err != nil {
		return HistoryPage{}, err
	}
	peerID := ""
	if q.Peer != "" {
		if !isID(q.Peer) && !isName(q.Peer) {
			return HistoryPage{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, q.Peer)
		}
		if peerID, err = r.resolveUser(ctx, q.Peer); err != nil {
			return HistoryPage{}, err
		}
	}
	if q.Group != "" && (q.Peer != "" || !isID(q.Group)) {
		return HistoryPage{}, fmt.Errorf("%w: group must be a group id, and not given with peer", errs.ErrBadArgument)
	}
	if err := r.checkCurrent(ctx, q.UserID, q.SessionID); err != nil {
		return HistoryPage{}, err
	}
	if q.Group != "" {
		if err := r.checkMember(ctx, q.UserID, q.Group); err != nil {
			return HistoryPage{}, err
		}
	}

	s := historyScan{before: cur.before, keyword: strings.ToLower(q.Keyword), want: q.Limit + 1,
		entries: r.cfg.Limits.HistoryScan, bytes: r.cfg.Limits.HistoryScanBytes}
	if cur.before != "" {
		s.beforeMs, _ = msgIDTime(cur.before)
	}
	scans := []*inboxScan{{owner: q.UserID, sender: peerID, group: q.Group, from: cur.seqs[0]}}
	switch {
	case q.Group != "":
		scans = append(scans, &inboxScan{owner: model.TimelineID(q.Group), group: q.Group, timeline: true, from: cur.seqs[1]})
	case peerID != "" && peerID != q.UserID:
		scans = append(scans, &inboxScan{owner: peerID, sender: q.UserID, from: cur.seqs[1]})
	}
	for _, sc := range scans {
		if err := r.scanInbox(ctx, sc, s); err != nil {
			return HistoryPage{}, err
		}
	}
	page := r.historyPage(q, cur, scans)
	if err := r.reviseHistory(ctx, q.UserID, s.keyword, &page); err != nil {
		return HistoryPage{}, err
	}
	if err := r.historyReactions(ctx, q.UserID, &page); err != nil {
		return HistoryPage{}, err
	}
	return page, nil
}

// historyPage merges what the scans found into a page: newest first, only
// messages no unscanned entry can precede, at most q.Limit of them and
// about Limits.HistoryBytes (at least one), and the cursor to go on.
func (r *Router) historyPage(q HistoryQuery, cur historyCursor, scans []*inboxScan) HistoryPage {
	var all []HistoryMessage
	for _, sc := range scans {
		all = append(all, sc.matches...)
	}
	slices.SortFunc(all, func(a, b HistoryMessage) int { return cmp.Compare(b.MsgID, a.MsgID) })
	// A message from one inbox is certain to be in order only down to where
	// the other inbox was read: below that, the other may hold newer ones.
	safe := func(m HistoryMessage, from *inboxScan) bool {
		ms, _ := msgIDTime(m.MsgID)
		for _, sc := range scans {
			if sc != from && !sc.done && ms <= sc.lastTS {
				return false
			}
		}
		return true
	}
	owner := func(m HistoryMessage) *inboxScan {
		for _, sc := range scans {
			if slices.ContainsFunc(sc.matches, func(x HistoryMessage) bool { return x.MsgID == m.MsgID }) {
				return sc
			}
		}
		return nil
	}
	var page HistoryPage
	bytes := 0
	for i, m := range all {
		if len(page.Messages) == q.Limit || (i > 0 && bytes+m.size > r.cfg.Limits.HistoryBytes) {
			break
		}
		// The newest match always goes: otherwise a tie at the edge of the
		// scans could keep a page from ever moving on.
		if i > 0 && !safe(m, owner(m)) {
			break
		}
		page.Messages = append(page.Messages, m)
		bytes += m.size
	}
	next := historyCursor{before: cur.before}
	if n := len(page.Messages); n > 0 {
		next.before = page.Messages[n-1].MsgID
	}
	more := false
	for i, sc := range scans {
		resume := uint64(0)
		for _, m := range sc.matches {
			if m.MsgID < next.before || next.before == "" {
				resume = max(resume, m.Seq+1) // not returned: read it again
			}
		}
		switch {
		case resume > 0:
			more = true
		case sc.done:
			resume = 1 // nothing below 1: this inbox is read to its end
		default:
			resume, more = sc.lastSeq, true
		}
		next.seqs[i] = resume
	}
	if more {
		page.Next = next.String()
	}
	return page
}

// historyScan is what a history page matches, and the bounds of reading
// one inbox for it.
type historyScan struct {
	before   string
	beforeMs int64
	keyword  string // lower case
	want     int
	entries  int // inbox entries read at most
	bytes    int // their bytes at most
}

// inboxScan is the reading of one inbox for a page.
type inboxScan struct {
	owner  string
	sender string // only messages from this user ("": anyone, groups too)
	group  string // only this group's messages ("": any)
	// timeline: owner is a group's timeline (its seqs are group_seqs)
	timeline bool
	from     uint64 // read entries below this seq (0: from the newest)

	matches []HistoryMessage // newest first
	lastSeq uint64           // the last (oldest) entry read
	lastTS  int64            // its time
	done    bool             // read down to the oldest entry
}

// scanInbox reads sc.owner's inbox downward from sc.from, collecting up to
// s.want matching messages, within s.entries entries and s.bytes bytes.
func (r *Router) scanInbox(ctx context.Context, sc *inboxScan, s historyScan) error {
	cursor := sc.from
	if cursor == 1 {
		sc.done = true // read to its end before
		return nil
	}
	entries, bytes := 0, 0
	for {
		n := min(historyPage, s.entries-entries)
		page, err := r.st.InboxBefore(ctx, sc.owner, cursor, n)
		if err != nil {
			return err
		}
		for _, e := range page {
			entries++
			bytes += len(e.Frame)
			sc.lastSeq, sc.lastTS = e.Seq, e.TS
			// A msgId starts with its send time, which is also the
			// entry's: newer entries are skipped without decoding.
			if s.before == "" || e.TS <= s.beforeMs {
				if m, ok := s.match(e, sc); ok {
					m.size = len(e.Frame)
					if sc.timeline {
						m.GroupSeq = e.Seq
					}
					if sc.matches = append(sc.matches, m); len(sc.matches) == s.want {
						return nil
					}
				}
			}
			if entries >= s.entries || bytes >= s.bytes {
				return nil
			}
		}
		if len(page) < n {
			sc.done = true
			return nil
		}
		cursor = page[len(page)-1].Seq
	}
}

func (s historyScan) match(e model.Entry, sc *inboxScan) (HistoryMessage, bool) {
	sender, group := sc.sender, sc.group
	var f cimpb.Frame
	if proto.Unmarshal(e.Frame, &f) != nil || f.Type != cimpb.Type_MSG || f.Msg == nil {
		return HistoryMessage{}, false
	}
	m := f.Msg
	if m.From == sc.owner && m.Group == "" {
		// The owner's copy of a private message it sent (--login-policy
		// platform): history reads sent messages from the recipient's inbox.
		return HistoryMessage{}, false
	}
	if m.Op != cimpb.MsgOp_MSG_OP_NEW { // a recall, an edit or a reaction: history shows its message's state
		return HistoryMessage{}, false
	}
	if (sender != "" && (m.From != sender || m.Group != "")) || (group != "" && m.Group != group) ||
		(s.before != "" && m.MsgId >= s.before) {
		return HistoryMessage{}, false
	}
	if s.keyword != "" {
		text := string(m.Body)
		switch m.Kind {
		case cimpb.Kind_KIND_FILE:
			text = m.File.GetName()
		case cimpb.Kind_KIND_BINARY:
			text = "" // bytes, not words
		}
		if !strings.Contains(strings.ToLower(text), s.keyword) {
			return HistoryMessage{}, false
		}
	}
	return HistoryMessage{
		MsgID: m.MsgId, Seq: e.Seq, From: m.From, FromName: m.FromName, To: m.To, Group: m.Group,
		Kind: m.Kind, Body: m.Body, File: m.File, TimestampMs: m.TimestampMs, ReplyTo: m.ReplyTo,
		Mentions: m.Mentions,
	}, true
}

// historyCursor is where a history page starts: below the msgId before
// (already shown) and, per inbox read (mine, then the peer's or the
// group's timeline), below seq
// (0: from the newest; 1: read to its end). Its text form is
// "h1.<before>.<seq>.<seq>"; a bare msgId is a cursor too (before only).
type historyCursor struct {
	before string
	seqs   [2]uint64
}

func (c historyCursor) String() string {
	return cursorPrefix + c.before + "." + strconv.FormatUint(c.seqs[0], 10) + "." + strconv.FormatUint(c.seqs[1], 10)
}

func parseCursor(s string) (historyCursor, error) {
	bad := fmt.Errorf("%w: before must be a msgId or the next of a history page", errs.ErrBadArgument)
	if s == "" {
		return historyCursor{}, nil
	}
	rest, ok := strings.CutPrefix(s, cursorPrefix)
	if !ok {
		if _, ok := msgIDTime(s); !ok {
			return historyCursor{}, bad
		}
		return historyCursor{before: s}, nil
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return historyCursor{}, bad
	}
	var c historyCursor
	if c.before = parts[0]; c.before != "" {
		if _, ok := msgIDTime(c.before); !ok {
			return historyCursor{}, bad
		}
	}
	for i, p := range parts[1:] {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return historyCursor{}, bad
		}
		c.seqs[i] = n
	}
	return c, nil
}

// msgIDTime returns the send time (unix ms) of a msg id: 32 lowercase hex
// digits starting with 48 bits of milliseconds (see newMsgID).
func msgIDTime(id string) (int64, bool) {
	if len(id) != 32 || strings.ToLower(id) != id {
		return 0, false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return 0, false
	}
	ms, err := strconv.ParseInt(id[:12], 16, 64)
	return ms, err == nil
}

// checkMember: uid must be a member of group gid; errs.ErrNoGroup when
// there is no such group, errs.ErrForbidden when uid is not in it.
func (r *Router) checkMember(ctx context.Context, uid, gid string) error {
	_, member, err := r.st.GroupOf(ctx, gid, uid)
	if err == nil && !member {
		err = fmt.Errorf("%w: not a member of group %s", errs.ErrForbidden, gid)
	}
	return err
}

// resolveUser returns the id of a user given by id or name;
// errs.ErrBadAccount if there is none.
func (r *Router) resolveUser(ctx context.Context, user string) (string, error) {
	if isID(user) {
		if _, ok := r.names.Get(user); ok {
			return user, nil
		}
		names, _, err := r.st.Lookup(ctx, []string{user}, nil)
		if err != nil {
			return "", err
		}
		if n := names[user]; n != "" {
			r.remember(user, n)
			return user, nil
		}
	} else {
		if id, ok := r.ids.Get(user); ok {
			return id, nil
		}
		_, ids, err := r.st.Lookup(ctx, nil, []string{user})
		if err != nil {
			return "", err
		}
		if id := ids[user]; id != "" {
			r.rememberName(user, id)
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, user)
}

// checkCurrent: sid must be uid's current session (pending or online);
// errs.ErrUnauthorized otherwise.
func (r *Router) checkCurrent(ctx context.Context, uid, sid string) error {
	routes, err := r.st.Routes(ctx, []string{uid})
	if err != nil {
		return err
	}
	if _, ok := routes[uid].Find(sid); !ok {
		return fmt.Errorf("%w: not the current session of user %s", errs.ErrUnauthorized, uid)
	}
	return nil
}

// Upload stores a file for a file message (POST /upload) for the user's
// current session. An empty contentType is application/octet-stream; size
// is the announced length (0: unknown). The bytes count against the user's
// daily quota (errs.ErrQuotaExceeded) and the store's space
// (errs.ErrStorageFull), both claimed before anything is written.
func (r *Router) Upload(ctx context.Context, uid, sid, name, contentType string, size int64, body io.Reader) (files.Info, error) {
	if err := checkSession(uid, sid); err != nil {
		return files.Info{}, err
	}
	if err := checkFileName(name); err != nil {
		return files.Info{}, err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(contentType); err != nil || len(contentType) > maxContentType {
		return files.Info{}, fmt.Errorf("%w: bad Content-Type %q", errs.ErrBadArgument, contentType)
	}
	fs := r.cfg.Files
	if fs == nil {
		return files.Info{}, fmt.Errorf("%w: uploads are not configured", errs.ErrUnavailable)
	}
	if size > fs.Max() {
		return files.Info{}, fmt.Errorf("%w: uploads are limited to %d bytes", errs.ErrTooLarge, fs.Max())
	}
	if err := r.checkCurrent(ctx, uid, sid); err != nil {
		return files.Info{}, err
	}
	charge := size
	if charge <= 0 {
		charge = fs.Max() // unknown length: the most it can be, refunded after
	}
	var refund func(context.Context, int64)
	if q := r.cfg.Limits.UploadQuota; q > 0 {
		var err error
		if refund, err = r.st.ChargeUpload(ctx, uid, charge, q); err != nil {
			return files.Info{}, err
		}
	}
	info, err := fs.PutFor(uid, size, name, contentType, body)
	if refund != nil {
		// The request may be over; the refund must not be lost with it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		refund(rctx, charge-info.Size)
		cancel()
	}
	if err != nil {
		return files.Info{}, err
	}
	r.log.Debug("file uploaded", "user", uid, "ref", info.Ref, "size", info.Size)
	return info, nil
}

// OpenFile opens an upload by ref (GET /files/<ref>); errs.ErrNotFound if
// there is none. The caller closes the file.
func (r *Router) OpenFile(ref string) (files.File, files.Info, time.Time, error) {
	if r.cfg.Files == nil {
		return nil, files.Info{}, time.Time{}, fmt.Errorf("%w: no file %q", errs.ErrNotFound, ref)
	}
	return r.cfg.Files.Open(ref)
}

// FileFetched notes a download of an upload by uid: fetched by someone
// other than its uploader, the upload is in use and no longer expires
// unreferenced.
func (r *Router) FileFetched(uid string, info files.Info) {
	if r.cfg.Files == nil || info.Owner == "" || uid == info.Owner {
		return
	}
	if err := r.cfg.Files.MarkReferenced(info.Ref); err != nil {
		r.log.Warn("could not mark an upload in use", "ref", info.Ref, "err", err)
	}
}

// FileSent notes a stored message: a file message naming an upload of its
// own sender puts that upload in use (it no longer expires unreferenced).
// The message path calls it once per stored KIND_FILE message; it only
// touches the upload directory.
func (r *Router) FileSent(from string, m *cimpb.Msg) {
	ref := m.GetFile().GetRef()
	if r.cfg.Files == nil || m.GetKind() != cimpb.Kind_KIND_FILE || !files.ValidRef(ref) {
		return
	}
	f, info, _, err := r.cfg.Files.Open(ref)
	if err != nil {
		return // unknown: nothing to keep
	}
	f.Close()
	if info.Owner == from {
		if err := r.cfg.Files.MarkReferenced(ref); err != nil {
			r.log.Warn("could not mark an upload in use", "ref", ref, "err", err)
		}
	}
}

func checkFileName(name string) error {
	bad := name == "" || name == "." || name == ".." || len(name) > maxFileName || !utf8.ValidString(name) ||
		strings.ContainsAny(name, `/\`) || strings.ContainsFunc(name, unicode.IsControl)
	if bad {
		return fmt.Errorf("%w: name must be a file name of 1-%d bytes without / \\ or control characters", errs.ErrBadArgument, maxFileName)
	}
	return nil
}
