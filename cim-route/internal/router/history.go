package router

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/proto/cimpb"
)

// History limits.
const (
	DefaultHistoryLimit = 20
	MaxHistoryLimit     = 100
	maxKeyword          = 100 // characters
	historyPage         = 200 // inbox entries read per round trip
	maxFileName         = 255 // bytes
	maxContentType      = 255 // bytes
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
	Peer    string
	Keyword string // case-insensitive substring of the text, or of a file's name
	Before  string // msgId cursor: only messages older than this one
	Limit   int    // 0: DefaultHistoryLimit; at most MaxHistoryLimit
}

// HistoryMessage is one message of a history page.
type HistoryMessage struct {
	MsgID       string
	Seq         uint64 // its seq in the recipient's inbox
	From        string
	FromName    string
	To          string
	Group       string // the group id of a group message
	Kind        cimpb.Kind
	Body        []byte
	File        *cimpb.FileInfo
	TimestampMs int64
}

// HistoryPage is newest first; Next is the Before of the next page, empty
// when there is none.
type HistoryPage struct {
	Messages []HistoryMessage
	Next     string
}

// History returns a page of the user's messages, newest first (by msgId,
// which starts with the send time). Messages still in the inboxes are
// covered: --inbox-max and --inbox-ttl bound history too.
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
	var beforeMs int64
	if q.Before != "" {
		ms, ok := msgIDTime(q.Before)
		if !ok {
			return HistoryPage{}, fmt.Errorf("%w: before must be a msgId", errs.ErrBadArgument)
		}
		beforeMs = ms
	}
	peerID := ""
	if q.Peer != "" {
		if !isID(q.Peer) && !isName(q.Peer) {
			return HistoryPage{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, q.Peer)
		}
		var err error
		if peerID, err = r.resolveUser(ctx, q.Peer); err != nil {
			return HistoryPage{}, err
		}
	}
	if err := r.checkCurrent(ctx, q.UserID, q.SessionID); err != nil {
		return HistoryPage{}, err
	}

	s := historyScan{before: q.Before, beforeMs: beforeMs, keyword: strings.ToLower(q.Keyword), want: q.Limit + 1}
	mine, err := r.scanHistory(ctx, q.UserID, s, peerID)
	if err != nil {
		return HistoryPage{}, err
	}
	msgs := mine
	if peerID != "" && peerID != q.UserID {
		theirs, err := r.scanHistory(ctx, peerID, s, q.UserID)
		if err != nil {
			return HistoryPage{}, err
		}
		msgs = append(msgs, theirs...)
	}
	slices.SortFunc(msgs, func(a, b HistoryMessage) int { return cmp.Compare(b.MsgID, a.MsgID) })
	page := HistoryPage{Messages: msgs}
	if len(msgs) > q.Limit {
		page.Messages = msgs[:q.Limit]
		page.Next = msgs[q.Limit-1].MsgID
	}
	return page, nil
}

// historyScan is what a history page matches.
type historyScan struct {
	before   string
	beforeMs int64
	keyword  string // lower case
	want     int
}

// scanHistory walks owner's inbox from the newest entry and returns up to
// s.want messages from sender (any sender when empty) matching s.
func (r *Router) scanHistory(ctx context.Context, owner string, s historyScan, sender string) ([]HistoryMessage, error) {
	var out []HistoryMessage
	var cursor uint64
	for {
		page, err := r.st.InboxBefore(ctx, owner, cursor, historyPage)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			// A msgId starts with its send time, which is also the
			// entry's: newer entries are skipped without decoding.
			if s.before != "" && e.TS > s.beforeMs {
				continue
			}
			if m, ok := s.match(e, sender); ok {
				if out = append(out, m); len(out) == s.want {
					return out, nil
				}
			}
		}
		if len(page) < historyPage {
			return out, nil
		}
		cursor = page[len(page)-1].Seq
	}
}

func (s historyScan) match(e store.Entry, sender string) (HistoryMessage, bool) {
	var f cimpb.Frame
	if proto.Unmarshal(e.Frame, &f) != nil || f.Type != cimpb.Type_MSG || f.Msg == nil {
		return HistoryMessage{}, false
	}
	m := f.Msg
	if (sender != "" && (m.From != sender || m.Group != "")) || (s.before != "" && m.MsgId >= s.before) {
		return HistoryMessage{}, false
	}
	if s.keyword != "" {
		text := string(m.Body)
		if m.Kind == cimpb.Kind_KIND_FILE {
			text = m.File.GetName()
		}
		if !strings.Contains(strings.ToLower(text), s.keyword) {
			return HistoryMessage{}, false
		}
	}
	return HistoryMessage{
		MsgID: m.MsgId, Seq: e.Seq, From: m.From, FromName: m.FromName, To: m.To, Group: m.Group,
		Kind: m.Kind, Body: m.Body, File: m.File, TimestampMs: m.TimestampMs,
	}, true
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
	if rt, ok := routes[uid]; !ok || rt.Session != sid {
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
func (r *Router) OpenFile(ref string) (*os.File, files.Info, time.Time, error) {
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
