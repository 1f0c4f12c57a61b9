package api

import (
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"strconv"

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
// file was uploaded: see file.ref).
type historyMsgJSON struct {
	MsgID       string    `json:"msgId"`
	Seq         uint64    `json:"seq"`
	From        string    `json:"from"`
	FromName    string    `json:"fromName"`
	To          string    `json:"to"`
	Group       string    `json:"group,omitempty"`
	Kind        int32     `json:"kind"`
	Body        string    `json:"body"`
	File        *fileJSON `json:"file"`
	TimestampMs int64     `json:"timestampMs"`
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
	q := router.HistoryQuery{
		UserID: uid, SessionID: sid,
		Peer: c.Query("peer"), Keyword: c.Query("keyword"), Before: c.Query("before"),
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
			MsgID: m.MsgID, Seq: m.Seq, From: m.From, FromName: m.FromName, To: m.To, Group: m.Group,
			Kind: int32(m.Kind), TimestampMs: m.TimestampMs,
		}
		if m.Kind == cimpb.Kind_KIND_FILE {
			j.Body = base64.StdEncoding.EncodeToString(m.Body)
		} else {
			j.Body = string(m.Body)
		}
		if f := m.File; f != nil {
			j.File = &fileJSON{Ref: f.Ref, Size: f.Size, Name: f.Name, ContentType: f.ContentType}
		}
		out.Messages[i] = j
	}
	ok(c, out)
}

func (h *handler) upload(c *gin.Context) {
	uid, sid, err := ownQuery(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if c.Request.ContentLength > h.maxUpload {
		h.fail(c, fmt.Errorf("%w: uploads are limited to %d bytes", errs.ErrTooLarge, h.maxUpload))
		return
	}
	info, err := h.svc.Upload(c.Request.Context(), uid, sid, c.Query("name"),
		c.GetHeader("Content-Type"), c.Request.Body)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, fileInfoJSON(info))
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
	hd := c.Writer.Header()
	hd.Set("Content-Type", info.ContentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": info.Name}); cd != "" {
		hd.Set("Content-Disposition", cd)
	}
	http.ServeContent(c.Writer, c.Request, "", mod, f)
}
