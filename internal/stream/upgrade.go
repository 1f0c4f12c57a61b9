package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Protocol is the Upgrade token that turns an HTTP request into a stream.
const Protocol = "cim-stream/1"

// ErrRefused means the peer answered the upgrade request with an HTTP
// status other than 101 (a wrong secret, or a peer without streams).
var ErrRefused = errors.New("stream: upgrade refused")

// IsUpgrade reports whether r asks for a stream.
func IsUpgrade(r *http.Request) bool {
	return headerHas(r.Header, "Connection", "upgrade") && strings.EqualFold(r.Header.Get("Upgrade"), Protocol)
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Hijack answers an upgrade request (IsUpgrade) with 101 Switching
// Protocols and takes the connection over from the HTTP server: the caller
// runs the stream on it (New) and closes it. The server's deadlines are
// cleared.
func Hijack(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.Reader, error) {
	if !IsUpgrade(r) {
		return nil, nil, fmt.Errorf("%w: not an upgrade to %s", ErrProtocol, Protocol)
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("stream: hijack: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"); err == nil {
		err = brw.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("stream: answer the upgrade: %w", err)
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nc, brw.Reader, nil
}

// Dial connects to addr (host:port), asks for a stream on path with header
// (the internal secret), and runs it with h answering the peer's requests.
// ctx bounds the handshake only.
func Dial(ctx context.Context, addr, path string, header http.Header, h Handler, cfg Config) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	br := bufio.NewReaderSize(nc, 64<<10)
	if err := req.Write(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("stream: send the upgrade: %w", err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("stream: read the upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), Protocol) {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		nc.Close()
		return nil, fmt.Errorf("%w: HTTP %d: %s", ErrRefused, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if !stop() {
		nc.Close()
		return nil, ctx.Err()
	}
	_ = nc.SetDeadline(time.Time{})
	return New(nc, br, h, cfg), nil
}
