package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func (e *env) upload(h hdr, query, contentType string, body io.Reader) (int, answer) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+"/upload?"+query, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		e.t.Fatalf("upload: answer is not the JSON envelope: %v", err)
	}
	return resp.StatusCode, a
}

func TestHistoryOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")
	var sent struct {
		MsgID string `json:"msgId"`
	}
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"alice","msg":"héllo"}`, bob.bearer(), 200, codes.OK, &sent)

	var page struct {
		Messages []map[string]json.RawMessage `json:"messages"`
		Next     string                       `json:"next"`
	}
	base := "/history?userId=" + alice.UserID + "&sessionId=" + alice.SessionID
	e.expect("GET", base+"&peer=bob&limit=5&keyword=H%C3%89", ``, alice.bearer(), 200, codes.OK, &page)
	if len(page.Messages) != 1 || page.Next != "" {
		t.Fatalf("page %+v", page)
	}
	m := page.Messages[0]
	want := map[string]string{
		"msgId": `"` + sent.MsgID + `"`, "seq": "1", "from": `"` + bob.UserID + `"`, "fromName": `"bob"`,
		"to": `"` + alice.UserID + `"`, "kind": "0", "body": `"héllo"`, "file": "null",
	}
	for k, v := range want {
		if string(m[k]) != v {
			t.Errorf("%s = %s, want %s", k, m[k], v)
		}
	}
	if len(m["timestampMs"]) < 13 {
		t.Errorf("timestampMs = %s", m["timestampMs"])
	}
	// Nothing received yet: an empty list, not null. The query parameters
	// are optional: the token says who and which session.
	a := e.expect("GET", "/history", ``, bob.bearer(), 200, codes.OK, nil)
	if !strings.Contains(string(a.Data), `"messages":[]`) {
		t.Fatalf("empty history %s", a.Data)
	}
	// A file message: kind 1, inline bytes in base64, the file's details.
	inline := []byte{0, 0xff, 'x'}
	batch := &cimpb.UplinkBatch{GatewayId: alice.Server.ID, Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, SessionId: alice.SessionID, Frame: &cimpb.Frame{
		Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "f1", To: "bob", Kind: cimpb.Kind_KIND_FILE, Body: inline,
			File: &cimpb.FileInfo{Name: "a.bin", Size: 3, ContentType: "application/octet-stream"}}}}}}
	if st, _ := e.uplink(batch, asGateway); st != 200 {
		t.Fatalf("uplink: HTTP %d", st)
	}
	e.expect("GET", "/history?userId="+bob.UserID+"&sessionId="+bob.SessionID+"&peer="+alice.UserID, ``, bob.bearer(), 200, codes.OK, &page)
	if len(page.Messages) != 2 {
		t.Fatalf("bob's conversation with alice: %+v", page)
	}
	m = page.Messages[0]
	if string(m["kind"]) != "1" || string(m["body"]) != `"`+base64.StdEncoding.EncodeToString(inline)+`"` ||
		string(m["file"]) != `{"ref":"","size":3,"name":"a.bin","contentType":"application/octet-stream"}` {
		t.Fatalf("file message %s %s %s", m["kind"], m["body"], m["file"])
	}

	bad := []struct {
		query  string
		h      hdr
		status int
		code   codes.Code
	}{
		{"?userId=" + alice.UserID + "&sessionId=" + alice.SessionID, nil, 401, codes.Unauthorized},
		{"?userId=" + alice.UserID + "&sessionId=" + alice.SessionID, asAdmin, 403, codes.Forbidden},
		{"?userId=" + alice.UserID + "&sessionId=stale", alice.bearer(), 403, codes.Forbidden},
		{"?userId=" + bob.UserID, alice.bearer(), 403, codes.Forbidden},
		{"?sessionId=" + bob.SessionID, alice.bearer(), 403, codes.Forbidden},
		{"?limit=0", alice.bearer(), 400, codes.BadArgument},
		{"?limit=101", alice.bearer(), 400, codes.BadArgument},
		{"?limit=x", alice.bearer(), 400, codes.BadArgument},
		{"?before=nope", alice.bearer(), 400, codes.BadArgument},
		{"?peer=ghost", alice.bearer(), 401, codes.BadAccount},
	}
	for _, b := range bad {
		e.expect("GET", "/history"+b.query, ``, b.h, b.status, b.code, nil)
	}
}

func TestUploadAndDownload(t *testing.T) {
	e := newEnv(t) // uploads up to 1024 bytes
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")
	me := alice.bearer()
	q := "userId=" + alice.UserID + "&sessionId=" + alice.SessionID + "&name=" + url.QueryEscape("résumé 1.pdf")

	data := bytes.Repeat([]byte{0, 1, 2, 0xff}, 256) // exactly the limit
	st, a := e.upload(me, q, "application/pdf", bytes.NewReader(data))
	var info struct {
		Ref         string `json:"ref"`
		Size        int64  `json:"size"`
		Name        string `json:"name"`
		ContentType string `json:"contentType"`
	}
	if st != 200 || a.Code != codes.OK || json.Unmarshal(a.Data, &info) != nil {
		t.Fatalf("upload: HTTP %d %+v", st, a)
	}
	if len(info.Ref) != 32 || info.Size != 1024 || info.Name != "résumé 1.pdf" || info.ContentType != "application/pdf" {
		t.Fatalf("upload data %+v", info)
	}

	// Downloads need a user's token too.
	e.expect("GET", "/files/"+info.Ref, ``, nil, 401, codes.Unauthorized, nil)
	e.expect("GET", "/files/"+info.Ref, ``, asAdmin, 403, codes.Forbidden, nil)
	req, _ := http.NewRequest("GET", e.url+"/files/"+info.Ref, nil)
	req.Header.Set("Authorization", "Bearer "+bob.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) || resp.Header.Get("Content-Type") != "application/pdf" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("download: HTTP %d, %d bytes, headers %v", resp.StatusCode, len(got), resp.Header)
	}
	// Ranges work (resumable downloads).
	req, _ = http.NewRequest("GET", e.url+"/files/"+info.Ref, nil)
	req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
	req.Header.Set("Range", "bytes=4-7")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(got, data[4:8]) {
		t.Fatalf("range: HTTP %d %v", resp.StatusCode, got)
	}
	e.expect("GET", "/files/0123456789abcdef0123456789abcdef", ``, me, 404, codes.BadArgument, nil)
	e.expect("GET", "/files/..%2f..%2fetc%2fpasswd", ``, me, 404, codes.BadArgument, nil)

	// Too large: refused up front by Content-Length, or while reading a
	// body of unknown length.
	if st, a := e.upload(me, q, "", bytes.NewReader(append(data, 'x'))); st != 413 || a.Code != codes.TooLarge {
		t.Fatalf("too large: HTTP %d %+v", st, a)
	}
	chunked := io.MultiReader(bytes.NewReader(data), strings.NewReader("x")) // no Content-Length
	if st, a := e.upload(me, q, "", struct{ io.Reader }{chunked}); st != 413 || a.Code != codes.TooLarge {
		t.Fatalf("too large, chunked: HTTP %d %+v", st, a)
	}
	bad := []struct {
		h            hdr
		query, ctype string
		status       int
		code         codes.Code
	}{
		{nil, "name=a", "", 401, codes.Unauthorized},
		{asPush, "name=a", "", 403, codes.Forbidden},
		{me, "userId=" + alice.UserID + "&sessionId=stale&name=a", "", 403, codes.Forbidden},
		{me, "userId=" + bob.UserID + "&name=a", "", 403, codes.Forbidden},
		{me, "userId=" + alice.UserID + "&sessionId=" + alice.SessionID, "", 400, codes.BadArgument},
		{me, "name=a%2Fb", "", 400, codes.BadArgument},
		{me, "name=a", "no type", 400, codes.BadArgument},
	}
	for _, b := range bad {
		if st, a := e.upload(b.h, b.query, b.ctype, strings.NewReader("x")); st != b.status || a.Code != b.code {
			t.Errorf("upload ?%s: HTTP %d code %d (%s), want %d/%d", b.query, st, a.Code, a.Message, b.status, b.code)
		}
	}
}
