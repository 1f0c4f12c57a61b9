package openapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/event"
)

// load parses and validates the document as an OpenAPI 3.1 one.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(JSON())
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1 (it has webhooks)", doc.OpenAPI)
	}
	return doc
}

func TestDocumentIsValid(t *testing.T) {
	doc := load(t)
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	check := func(where string, op *openapi3.Operation) {
		if op.OperationID == "" || op.Summary == "" {
			t.Errorf("%s: no operationId or summary", where)
		}
		if prev, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %q is also %s's", where, op.OperationID, prev)
		}
		ids[op.OperationID] = where
		if len(op.Tags) == 0 {
			t.Errorf("%s: no tag", where)
		}
		for _, tag := range op.Tags {
			if !tags[tag] {
				t.Errorf("%s: tag %q is not declared in tags", where, tag)
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			check(method+" "+path, op)
			// Every operation says who may call it: an empty list is a
			// deliberate "no credential".
			if op.Security == nil {
				t.Errorf("%s %s: no security requirement (use [] for a public one)", method, path)
			}
		}
	}
	for name, item := range doc.Webhooks {
		for method, op := range item.Operations() {
			check("webhook "+name+" "+method, op)
		}
	}
}

// The route serves the document itself, cacheably.
func TestServed(t *testing.T) {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	Mount(e)
	get := func(h map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, Path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w
	}
	w := get(nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || !bytes.Equal(w.Body.Bytes(), document) {
		t.Fatalf("GET %s: %d %q, %d bytes", Path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
	tag := w.Header().Get("ETag")
	if tag == "" || !strings.Contains(w.Header().Get("Cache-Control"), "public") {
		t.Fatalf("GET %s: not cacheable: %v", Path, w.Header())
	}
	if w := get(map[string]string{"If-None-Match": tag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("GET %s with its ETag: %d, %d bytes; want 304", Path, w.Code, w.Body.Len())
	}
}

// Every event type has a webhook, with its type and its kind of data; the
// document has no webhook the route does not send.
func TestWebhooksCoverEvents(t *testing.T) {
	doc := load(t)
	dataOf := map[string]string{"user.": "PresenceData", "message.": "MessageData", "device.": "DeviceData", "group.": "GroupData"}
	for _, typ := range event.Types {
		item := doc.Webhooks[string(typ)]
		if item == nil || item.Post == nil {
			t.Errorf("event type %q has no webhook (POST) in openapi.json", typ)
			continue
		}
		op := item.Post
		for _, h := range []string{"Idempotency-Key", "X-Gocim-Event", "X-Gocim-Signature"} {
			if p := op.Parameters.GetByInAndName(openapi3.ParameterInHeader, h); p == nil || !p.Required {
				t.Errorf("webhook %s: header %s is not a required parameter", typ, h)
			}
		}
		body := op.RequestBody.Value.Content.Get("application/json")
		if body == nil {
			t.Errorf("webhook %s: no JSON body", typ)
			continue
		}
		var gotType any
		var gotData string
		for _, s := range body.Schema.Value.AllOf {
			if p := s.Value.Properties["type"]; p != nil {
				gotType = p.Value.Const
			}
			if p := s.Value.Properties["data"]; p != nil {
				gotData = strings.TrimPrefix(p.Ref, "#/components/schemas/")
			}
		}
		var wantData string
		for prefix, schema := range dataOf {
			if strings.HasPrefix(string(typ), prefix) {
				wantData = schema
			}
		}
		if gotType != string(typ) || gotData != wantData {
			t.Errorf("webhook %s: body has type %v and data %q, want %q and %q", typ, gotType, gotData, typ, wantData)
		}
	}
	for name := range doc.Webhooks {
		if !slices.Contains(event.Types, event.Type(name)) {
			t.Errorf("webhook %q is not in event.Types", name)
		}
	}
	var enum []event.Type
	for _, v := range doc.Components.Schemas["EventType"].Value.Enum {
		s, _ := v.(string)
		enum = append(enum, event.Type(s))
	}
	if !slices.Equal(enum, event.Types) {
		t.Errorf("schema EventType lists %v, want event.Types %v", enum, event.Types)
	}
}

// What the route really sends validates against each webhook's body: the
// envelope of package event around full and minimal data.
func TestWebhookBodiesValidate(t *testing.T) {
	doc := load(t)
	now := time.UnixMilli(1767225600123)
	samples := map[string][]any{
		"user.": {
			event.Presence{UserID: "12"},
			event.Presence{UserID: "12", UserName: "alice", Platform: "web", SessionID: "s1", Gateway: "10.0.0.5:9000:9100", Reason: "logged in elsewhere"},
		},
		"message.": {
			event.Message{MsgID: "m1", From: "12", To: "13", Kind: "text", TimestampMs: now.UnixMilli()},
			event.Message{MsgID: "m1", From: "12", FromName: "alice", To: "13", Group: "4", Kind: "file",
				Body: []byte{0, 1, 0xff}, FileName: "a.bin", TimestampMs: now.UnixMilli(), Seq: 7},
			event.Message{MsgID: "m2", From: "12", To: "13", Kind: "binary", Body: []byte{0xfe}, TimestampMs: now.UnixMilli(), Seq: 8},
		},
		"device.": {
			event.AppMessage{MsgID: "m1", From: "12", Kind: "text", TimestampMs: now.UnixMilli()},
			event.AppMessage{MsgID: "m1", From: "12", FromName: "sensor-1", Kind: "binary", Body: []byte{0, 1, 0xff},
				TimestampMs: now.UnixMilli(), ClientMsgID: "c1"},
		},
		"group.": {
			event.Group{GroupID: "4"},
			event.Group{GroupID: "4", Name: "team", By: "12", Users: []string{"13", "14"}},
		},
	}
	for _, typ := range event.Types {
		item := doc.Webhooks[string(typ)]
		if item == nil || item.Post == nil {
			continue // TestWebhooksCoverEvents names it
		}
		schema := item.Post.RequestBody.Value.Content.Get("application/json").Schema.Value
		for prefix, data := range samples {
			for _, d := range data {
				b, err := json.Marshal(event.New(typ, now, d))
				if err != nil {
					t.Fatal(err)
				}
				var v any
				if err := json.Unmarshal(b, &v); err != nil {
					t.Fatal(err)
				}
				err = schema.VisitJSON(v, openapi3.EnableJSONSchema2020())
				if want := strings.HasPrefix(string(typ), prefix); want != (err == nil) {
					t.Errorf("webhook %s, body %s: valid %v, want %v (%v)", typ, b, err == nil, want, err)
				}
			}
		}
	}
}
