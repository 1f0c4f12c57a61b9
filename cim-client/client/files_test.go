package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

func TestSendFileInlineOrUploaded(t *testing.T) {
	const maxFrame = 4096
	dir := t.TempDir()
	small := bytes.Repeat([]byte("s"), maxFrame-1024)     // exactly the inline limit
	large := bytes.Repeat([]byte{0, 1, 2, 3}, maxFrame/4) // one frame's worth: uploaded
	for name, data := range map[string][]byte{"small.txt": small, "large.bin": large} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.MaxFrame = maxFrame
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	ctx := context.Background()

	id, err := c.SendFile(ctx, "bob", filepath.Join(dir, "small.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m := conn.Next(t, cimpb.Type_MSG).GetMsg()
	f := m.GetFile()
	if m.GetClientMsgId() != id || m.GetTo() != "bob" || m.GetKind() != cimpb.Kind_KIND_FILE || !bytes.Equal(m.GetBody(), small) ||
		f.GetName() != "small.txt" || f.GetSize() != int64(len(small)) || !strings.HasPrefix(f.GetContentType(), "text/plain") || f.GetRef() != "" {
		t.Fatalf("inline file message: to %q kind %v file %v body %d bytes", m.GetTo(), m.GetKind(), f, len(m.GetBody()))
	}
	if st, _ := c.Status(id); st.Kind != cimpb.Kind_KIND_FILE || st.File.GetName() != "small.txt" || st.Text != "" {
		t.Errorf("Status = %+v", st)
	}

	if _, err := c.SendFile(ctx, "bob", filepath.Join(dir, "large.bin")); err != nil {
		t.Fatal(err)
	}
	m = conn.Next(t, cimpb.Type_MSG).GetMsg()
	f = m.GetFile()
	if len(m.GetBody()) != 0 || f.GetRef() == "" || f.GetSize() != int64(len(large)) || f.GetName() != "large.bin" {
		t.Fatalf("uploaded file message: file %v body %d bytes", f, len(m.GetBody()))
	}
	stored, ok := route.File(f.GetRef())
	if !ok || !bytes.Equal(stored.Data, large) || stored.Name != "large.bin" || stored.ContentType != f.GetContentType() {
		t.Fatalf("route stored %q %q %d bytes (ok %v)", stored.Name, stored.ContentType, len(stored.Data), ok)
	}

	// Too large for the route: its answer comes back as an APIError.
	route.SetUploadMax(100)
	_, err = c.SendFile(ctx, "bob", filepath.Join(dir, "large.bin"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload: %v, want HTTP 413", err)
	}
	if _, err := c.SendFile(ctx, "bob", filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was sent")
	}
	if _, err := c.SendFile(ctx, "bob", dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

func TestSaveFile(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	ctx := context.Background()
	dir := t.TempDir()

	inline := &cimpb.Msg{Kind: cimpb.Kind_KIND_FILE, Body: []byte("inline bytes"), File: &cimpb.FileInfo{Name: "a.txt", Size: 12}}
	ref := route.PutFile(clienttest.StoredFile{Name: "b.bin", ContentType: "application/octet-stream", Data: []byte("stored bytes")})
	stored := &cimpb.Msg{Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "b.bin", Size: 12, Ref: ref}}
	for _, tc := range []struct {
		m    *cimpb.Msg
		want string
	}{{inline, "inline bytes"}, {stored, "stored bytes"}} {
		dst := filepath.Join(dir, tc.m.GetFile().GetName())
		if err := os.WriteFile(dst, []byte("old content"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.SaveFile(ctx, tc.m, dst); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); string(got) != tc.want {
			t.Errorf("%s holds %q, want %q", dst, got, tc.want)
		}
	}

	for name, m := range map[string]*cimpb.Msg{
		"unknown ref": {Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "c", Ref: "00ff"}},
		"bad ref":     {Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "c", Ref: "../../etc/passwd"}},
		"short":       {Kind: cimpb.Kind_KIND_FILE, Body: []byte("abc"), File: &cimpb.FileInfo{Name: "c", Size: 4}},
	} {
		dst := filepath.Join(dir, "c")
		if err := c.SaveFile(ctx, m, dst); err == nil {
			t.Errorf("%s: saved", name)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s: left %s behind", name, dst)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the directory, want 2 (no partial files)", len(entries))
	}
}
