package api

import (
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/proto/cimpb"
)

type fileJSON struct {
	Ref         string `json:"ref"`
	Size        int64  `json:"size"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
}

// historyMsgJSON is one message of GET /history. Kind is the number of
// cimpb.Kind (0 text, 1 file). Body is the text of a text message; for a
// file message it is the inline bytes in standard base64 (empty when the
// file was uploaded: see file.ref). Op is "edited" (body is the latest
// text) or "recalled" (no body, no file) once the sender changed it.
type historyMsgJSON struct {
	MsgID       string    `json:"msgId"`
	Seq         uint64    `json:"seq"`
	From        string    `json:"from"`
	FromName    string    `json:"fromName"`
	To          string    `json:"to"`
	Group       string    `json:"group,omitempty"`
	GroupSeq    uint64    `json:"groupSeq,omitempty"` // a timeline entry's seq (then seq is the same)
	Kind        int32     `json:"kind"`
	Body        string    `json:"body"`
	File        *fileJSON `json:"file"`
	TimestampMs int64     `json:"timestampMs"`
	Op          string    `json:"op,omitempty"`
	ReplyTo     string    `json:"replyTo,omitempty"`  // the msgId this message answers
	Mentions    []string  `json:"mentions,omitempty"` // the ids of the members a group message mentions
	// Reactions: each emoji with how many reacted with it, in the order
	// they first came; mine marks the viewer's own.
	Reactions []reactionJSON `json:"reactions,omitempty"`
}

type reactionJSON struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Mine  bool   `json:"mine,omitempty"`
}

// History ops as JSON.
const (
	opEdited   = "edited"
	opRecalled = "recalled"
)

// historyDeleteJSON is the body of POST /history/delete.
type historyDeleteJSON struct {
	MsgIDs []string `json:"msgIds"`
}

type historyJSON struct {
	Messages []historyMsgJSON `json:"messages"`
	Next     string           `json:"next"`
}

// ownQuery checks the optional userId and sessionId query parameters
// against the bearer's token and returns the token's user and session.
func ownQuery(c *gin.Context) (uid, sid string, err error) {
	who := callerOf(c)
	if uid, err = who.speaksFor(c.Query("userId")); err != nil {
		return "", "", err
	}
	if err = who.ownSession(c.Query("sessionId")); err != nil {
		return "", "", err
	}
	return uid, who.user.SessionID, nil
}

func (h *handler) history(c *gin.Context) {
	uid, sid, err := ownQuery(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if err := allow(c, h.histories, errs.ErrRateLimited, "too many history requests", uid); err != nil {
		h.fail(c, err)
		return
	}
	q := router.HistoryQuery{
		UserID: uid, SessionID: sid,
		Peer: c.Query("peer"), Group: c.Query("group"), Keyword: c.Query("keyword"), Before: c.Query("before"),
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > router.MaxHistoryLimit {
			h.fail(c, fmt.Errorf("%w: limit must be 1..%d", errs.ErrBadArgument, router.MaxHistoryLimit))
			return
		}
		q.Limit = n
	}
	page, err := h.svc.History(c.Request.Context(), q)
	if err != nil {
		h.fail(c, err)
		return
	}
	out := historyJSON{Messages: make([]historyMsgJSON, len(page.Messages)), Next: page.Next}
	for i, m := range page.Messages {
		j := historyMsgJSON{
			MsgID: m.MsgID, Seq: m.Seq, From: m.From, FromName: m.FromName, To: m.To, Group: m.Group, GroupSeq: m.GroupSeq,
			Kind: int32(m.Kind), TimestampMs: m.TimestampMs, ReplyTo: m.ReplyTo, Mentions: m.Mentions,
		}
		if m.Kind == cimpb.Kind_KIND_FILE || m.Kind == cimpb.Kind_KIND_BINARY {
			j.Body = base64.StdEncoding.EncodeToString(m.Body)
		} else {
			j.Body = string(m.Body)
		}
		if f := m.File; f != nil {
			j.File = &fileJSON{Ref: f.Ref, Size: f.Size, Name: f.Name, ContentType: f.ContentType}
		}
		for _, c := range m.Reactions.Counts {
			j.Reactions = append(j.Reactions, reactionJSON{Emoji: c.Emoji, Count: c.Count, Mine: c.Emoji == m.Reactions.Mine})
		}
		switch m.Op {
		case cimpb.MsgOp_MSG_OP_EDIT:
			j.Op = opEdited
		case cimpb.MsgOp_MSG_OP_RECALL:
			j.Op = opRecalled
		}
		out.Messages[i] = j
	}
	ok(c, out)
}

// deleteHistory is POST /history/delete {"msgIds":[...]} with the user's
// bearer token: the messages leave the user's own history (nobody else's),
// at most router.MaxHistoryDelete per call; charged to the /history rate.
func (h *handler) deleteHistory(c *gin.Context) {
	var req historyDeleteJSON
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	uid, err := callerOf(c).speaksFor("")
	if err != nil {
		h.fail(c, err)
		return
	}
	if err := allow(c, h.histories, errs.ErrRateLimited, "too many history requests", uid); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.DeleteHistory(c.Request.Context(), uid, req.MsgIDs); err != nil {
		h.fail(c, err)
		return
	}
	ok(c, nil)
}

func (h *handler) upload(c *gin.Context) {
	uid, sid, err := ownQuery(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	size := c.Request.ContentLength
	if size > h.maxUpload {
		h.fail(c, fmt.Errorf("%w: uploads are limited to %d bytes", errs.ErrTooLarge, h.maxUpload))
		return
	}
	if err := allow(c, h.uploads, errs.ErrQuotaExceeded, "too many uploads", uid); err != nil {
		h.fail(c, err)
		return
	}
	// The server's read timeout is for requests that fit in one; an upload
	// may take as long as its size needs at the minimum rate, no longer.
	h.extend(c, size, h.maxUpload, true)
	info, err := h.svc.Upload(c.Request.Context(), uid, sid, c.Query("name"),
		c.GetHeader("Content-Type"), max(size, 0), c.Request.Body)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, fileInfoJSON(info))
}

// extend moves the connection's deadlines for a transfer of size bytes (or
// limit when unknown): the server's timeout plus the time the transfer
// takes at the minimum rate. read: the request body (and the answer after
// it); else the answer.
func (h *handler) extend(c *gin.Context, size, limit int64, read bool) {
	if size <= 0 || size > limit {
		size = limit
	}
	d := time.Duration(float64(size) / float64(h.minRate) * float64(time.Second))
	rc := http.NewResponseController(c.Writer)
	if read && h.readTimeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(h.readTimeout + d))
	}
	if h.writeTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout + d))
	}
}

func fileInfoJSON(i files.Info) fileJSON {
	return fileJSON{Ref: i.Ref, Size: i.Size, Name: i.Name, ContentType: i.ContentType}
}

// file serves an upload with its stored content type, as an attachment (so a
// browser never renders an uploaded page in the route's origin); ranges and
// conditional requests work (http.ServeContent).
func (h *handler) file(c *gin.Context) {
	f, info, mod, err := h.svc.OpenFile(c.Param("ref"))
	if err != nil {
		h.fail(c, err)
		return
	}
	defer f.Close()
	h.svc.FileFetched(callerOf(c).user.UserID, info)
	h.extend(c, info.Size, max(info.Size, 1), false)
	hd := c.Writer.Header()
	hd.Set("Content-Type", info.ContentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": info.Name}); cd != "" {
		hd.Set("Content-Disposition", cd)
	}
	http.ServeContent(c.Writer, c.Request, "", mod, f)
}
