package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// inlineReserve is the room a file message keeps in its frame for
// everything but the bytes: file bytes go inline up to MaxFrame − 1 KiB.
const inlineReserve = 1 << 10

// FileRef is a file the route stored (POST /upload).
type FileRef struct {
	Ref         string
	Name        string
	Size        int64
	ContentType string
}

// Errors of an upload the route refused for want of room; each comes
// wrapped together with the route's *APIError.
var (
	// ErrQuotaExceeded: the user's upload quota (bytes per day) or upload
	// rate is used up for now (code 4293, HTTP 429).
	ErrQuotaExceeded = errors.New("client: upload quota used up, try later")
	// ErrStorageFull: the route has no room for more uploads (code 5070,
	// HTTP 507); nothing was kept.
	ErrStorageFull = errors.New("client: the route's upload storage is full")
)

// Upload stores size bytes from body at the route (POST /upload) as name,
// with the access token, and returns its ref for a KIND_FILE message.
// userID and sessionID, when not empty, must be the token's. A file above
// the route's limit is an *APIError with HTTP 413; a refusal for want of
// room matches ErrQuotaExceeded or ErrStorageFull (errors.Is) and is an
// *APIError too.
func (a *API) Upload(ctx context.Context, userID, sessionID, name, contentType string, body io.Reader, size int64) (FileRef, error) {
	v := url.Values{"name": {name}}
	if userID != "" {
		v.Set("userId", userID)
	}
	if sessionID != "" {
		v.Set("sessionId", sessionID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base()+"/upload?"+v.Encode(), body)
	if err != nil {
		return FileRef{}, err
	}
	a.authorize(req)
	req.ContentLength = size
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", contentType)
	var d struct {
		Ref         string  `json:"ref"`
		Name        string  `json:"name"`
		Size        flexInt `json:"size"`
		ContentType string  `json:"contentType"`
	}
	if err := a.do(req, "/upload", &d); err != nil {
		switch CodeOf(err) {
		case codes.QuotaExceeded:
			return FileRef{}, fmt.Errorf("%w: %w", ErrQuotaExceeded, err)
		case codes.StorageFull:
			return FileRef{}, fmt.Errorf("%w: %w", ErrStorageFull, err)
		}
		return FileRef{}, err
	}
	if d.Ref == "" {
		return FileRef{}, errors.New("route /upload: answer without a ref")
	}
	return FileRef{Ref: d.Ref, Name: d.Name, Size: int64(d.Size), ContentType: d.ContentType}, nil
}

// Download opens a file the route stored (GET /files/<ref>), with the
// access token, and returns its bytes and content type. The caller closes
// the reader.
func (a *API) Download(ctx context.Context, ref string) (io.ReadCloser, string, error) {
	if !isRef(ref) {
		return nil, "", fmt.Errorf("client: %q is not a file ref", ref)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base()+"/files/"+ref, nil)
	if err != nil {
		return nil, "", err
	}
	a.authorize(req)
	resp, err := a.send(req, "/files/")
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var env envelope
		if json.Unmarshal(raw, &env) == nil && env.Code != nil {
			return nil, "", &APIError{Code: *env.Code, Message: env.Message, HTTPStatus: resp.StatusCode}
		}
		return nil, "", &APIError{Message: notEnvelope(resp, raw), HTTPStatus: resp.StatusCode}
	}
	return resp.Body, resp.Header.Get("Content-Type"), nil
}

// isRef accepts what the route hands out: hex, so a ref cannot climb out of
// /files/.
func isRef(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') && (r < 'A' || r > 'F') {
			return false
		}
	}
	return true
}

// PrepareFile builds a KIND_FILE message to "to" (user id or name) for the
// file at path, ready for SendMsg: its bytes inline when the file fits in
// one frame (at most MaxFrame − 1 KiB), otherwise uploaded to the route
// first (POST /upload, as the current login) and named by file.ref.
func (c *Client) PrepareFile(ctx context.Context, to, path string) (*cimpb.Msg, error) {
	if to == "" {
		return nil, ErrNoRecipient
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("client: %s is not a regular file", path)
	}
	name, size := filepath.Base(path), st.Size()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("client: reading %s: %w", path, err)
	}
	head = head[:n]
	ct := mime.TypeByExtension(filepath.Ext(name))
	if ct == "" {
		ct = http.DetectContentType(head)
	}
	m := &cimpb.Msg{To: to, Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: name, Size: size, ContentType: ct}}
	rest := io.MultiReader(bytes.NewReader(head), f)
	if size <= int64(c.cfg.MaxFrame-inlineReserve) {
		// Read at most one byte more than fits: a file growing under us
		// must not make a frame too large.
		body, err := io.ReadAll(io.LimitReader(rest, int64(c.cfg.MaxFrame-inlineReserve)+1))
		if err != nil {
			return nil, fmt.Errorf("client: reading %s: %w", path, err)
		}
		if int64(len(body)) != size {
			return nil, fmt.Errorf("client: %s changed while reading it", path)
		}
		m.Body = body
		return m, nil
	}
	uid, sid, err := c.session()
	if err != nil {
		return nil, err
	}
	ref, err := c.api.Upload(ctx, uid, sid, name, ct, io.LimitReader(rest, size), size)
	if err != nil {
		return nil, fmt.Errorf("client: upload %s: %w", name, err)
	}
	m.File.Ref = ref.Ref
	return m, nil
}

// SendFile sends the file at path to "to" (see PrepareFile) and returns the
// client_msg_id, like Send.
func (c *Client) SendFile(ctx context.Context, to, path string) (string, error) {
	m, err := c.PrepareFile(ctx, to, path)
	if err != nil {
		return "", err
	}
	err = c.SendMsg(ctx, m)
	return m.GetClientMsgId(), err
}

// SaveFile writes the file of a KIND_FILE message to dst: the inline bytes,
// or the route's copy (GET /files/<ref>). dst is replaced only once all the
// bytes arrived.
func (c *Client) SaveFile(ctx context.Context, m *cimpb.Msg, dst string) error {
	fi := m.GetFile()
	if m.GetKind() != cimpb.Kind_KIND_FILE || fi == nil {
		return errors.New("client: not a file message")
	}
	var src io.Reader = bytes.NewReader(m.GetBody())
	if fi.GetRef() != "" {
		rc, _, err := c.api.Download(ctx, fi.GetRef())
		if err != nil {
			return fmt.Errorf("client: download %s: %w", fi.GetName(), err)
		}
		defer rc.Close()
		src = rc
		if fi.GetSize() > 0 {
			src = io.LimitReader(rc, fi.GetSize()+1)
		}
	}
	return writeFile(dst, src, fi.GetSize())
}

// writeFile copies src to a temporary file next to dst and renames it into
// place; want > 0 is the size it must have.
func writeFile(dst string, src io.Reader, want int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	n, err := io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && want > 0 && n != want {
		err = fmt.Errorf("got %d bytes, the message says %s", n, strconv.FormatInt(want, 10))
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("client: saving %s: %w", dst, err)
	}
	return nil
}
