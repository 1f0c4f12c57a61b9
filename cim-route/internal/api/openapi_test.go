package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gin-gonic/gin"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/openapi"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/routeapi"
)

// The API's description (package openapi) is checked against the handlers
// here: every registered route has an operation and every operation a
// route, the schemas of Go types list their JSON fields, the codes are the
// ones the error table produces, and real answers validate against it.

// specDoc loads and validates openapi.json.
func specDoc(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.JSON())
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
	return doc
}

// specPath turns a gin route path into an OpenAPI one: /groups/:gid is
// /groups/{gid}, /web/*file is /web/{file}.
func specPath(ginPath string) string {
	parts := strings.Split(ginPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPICoversRoutes: an endpoint without a spec, or a spec without an
// endpoint, fails here.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := specDoc(t)
	cfg := Config{Logger: quiet, Pprof: true} // --pprof: every route there may be
	pub, err := NewPublic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string][]string{} // "GET /groups/{gid}" -> the listeners serving it
	for _, l := range []struct {
		name string
		h    http.Handler
	}{{"public", pub}, {"internal", NewInternal(cfg)}} {
		for _, r := range l.h.(*gin.Engine).Routes() {
			op := r.Method + " " + specPath(r.Path)
			registered[op] = append(registered[op], l.name)
		}
	}
	documented := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = op
		}
	}
	for _, op := range slices.Sorted(maps.Keys(registered)) {
		spec, ok := documented[op]
		if !ok {
			t.Errorf("%s is served (%s listener) but has no operation in cim-route/internal/openapi/openapi.json", op, strings.Join(registered[op], ", "))
			continue
		}
		// The internal listener's own operations carry the tag that says
		// so; nothing the public listener serves does.
		internalOnly := slices.Equal(registered[op], []string{"internal"})
		if tagged := slices.Contains(spec.Tags, "internal"); tagged != internalOnly {
			t.Errorf("%s: tagged internal %v, but served on %v", op, tagged, registered[op])
		}
	}
	for _, op := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := registered[op]; !ok {
			t.Errorf("%s is in openapi.json but no handler serves it", op)
		}
	}
}

// The Code schema lists exactly the codes a JSON answer can carry: those
// of the error table, ok and internal.
func TestOpenAPICodes(t *testing.T) {
	doc := specDoc(t)
	want := []int{int(codes.OK), int(codes.Internal)}
	for _, f := range failures {
		if !slices.Contains(want, int(f.code)) {
			want = append(want, int(f.code))
		}
	}
	var got []int
	for _, v := range doc.Components.Schemas["Code"].Value.Enum {
		n, _ := v.(float64)
		got = append(got, int(n))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("schema Code lists %v; the answers can carry %v", got, want)
	}
}

// The schemas of Go types list exactly their JSON fields and require
// exactly those always written (no omitempty), so neither can drift.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := specDoc(t)
	for name, v := range map[string]any{
		// webhook payloads
		"Event":        event.Event{},
		"PresenceData": event.Presence{},
		"MessageData":  event.Message{},
		"GroupData":    event.Group{},
		"DeviceData":   event.AppMessage{},
		// shared with the SDK and the gateways
		"User":         routeapi.User{},
		"Login":        routeapi.Login{},
		"Server":       routeapi.Server{},
		"LoginRequest": routeapi.LoginRequest{},
		"Session":      contract.Session{},
		"DeviceLogin":  contract.DeviceLogin{},
		"DeviceToken":  contract.DeviceToken{},
		// this package's answers
		"Group":          groupJSON{},
		"FileInfo":       fileJSON{},
		"HistoryPage":    historyJSON{},
		"HistoryMessage": historyMsgJSON{},
		"PushResult":     pushJSON{},
		"ReceiptCount":   receiptCountJSON{},
		"UserPresence":   presenceJSON{},
		"Device":         deviceJSON{},
		"DeviceSecret":   deviceSecretJSON{},
		"DevicePage":     devicePageJSON{},
		// this package's requests
		"HistoryDeleteRequest": historyDeleteJSON{},
		"CreateDeviceRequest":  createDeviceJSON{},
		"Mute":                 muteJSON{},
	} {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		fields, always := jsonFields(t, reflect.TypeOf(v))
		props := slices.Sorted(maps.Keys(ref.Value.Properties))
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has properties %v; Go type %T has JSON fields %v", name, props, v, fields)
		}
		if req := slices.Sorted(slices.Values(ref.Value.Required)); !slices.Equal(req, always) {
			t.Errorf("schema %s requires %v; Go type %T always writes %v", name, req, v, always)
		}
	}
}

// jsonFields returns the JSON names of t's fields and those without
// omitempty, both sorted.
func jsonFields(tb testing.TB, t reflect.Type) (all, always []string) {
	tb.Helper()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if f.Anonymous {
			tb.Fatalf("%s.%s: embedded fields are not handled", t, f.Name)
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			always = append(always, name)
		}
	}
	slices.Sort(all)
	slices.Sort(always)
	return all, always
}

// specCheck sends requests to a real handler and validates each request
// and answer against the document.
type specCheck struct {
	t      *testing.T
	router routers.Router
}

// call sends method path (on base) and checks that the answer has status;
// refused: the request breaks the document too (bad JSON, no credential),
// so its validation must fail. It returns the answer's body.
func (s specCheck) call(base, method, path, contentType, body string, h hdr, status int, refused bool) []byte {
	s.t.Helper()
	newReq := func() *http.Request {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			s.t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		return req
	}
	req := newReq()
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		s.t.Fatalf("%s %s: no operation in openapi.json: %v", method, path, err)
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: hasCredential}}
	switch err := openapi3filter.ValidateRequest(ctx, in); {
	case refused && err == nil:
		s.t.Errorf("%s %s %q: the document accepts a request the handler refuses", method, path, body)
	case !refused && err != nil:
		s.t.Errorf("%s %s %q: the request breaks openapi.json: %v", method, path, body, err)
	}

	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != status {
		s.t.Fatalf("%s %s %q: HTTP %d %s, want %d", method, path, body, resp.StatusCode, contract.Snippet(raw), status)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(raw)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		s.t.Errorf("%s %s: the answer (HTTP %d %s) breaks openapi.json: %v", method, path, resp.StatusCode, contract.Snippet(raw), err)
		return raw
	}
	// Validation lets unknown fields through (answers may grow); here
	// every field must be documented.
	if mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); mt == "application/json" && route.Path != openapi.Path {
		media := route.Operation.Responses.Status(resp.StatusCode).Value.Content.Get(mt)
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
		if extra := undocumented([]*openapi3.Schema{media.Schema.Value}, v, "answer"); len(extra) > 0 {
			s.t.Errorf("%s %s: the answer has fields openapi.json does not describe: %v (%s)", method, path, extra, contract.Snippet(raw))
		}
	}
	return raw
}

// keyScopes are the scopes of newEnv's API keys.
var keyScopes = map[string][]string{pushKey: {"push"}, adminKey: {"admin"}}

// hasCredential accepts a request that carries the credential a security
// scheme names (and, for an API key of newEnv, the scopes asked): the
// handler checks the credential itself for real.
func hasCredential(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	switch s := in.SecurityScheme; {
	case s.Type == "http" && s.Scheme == "bearer":
		if !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			return errors.New("no bearer token")
		}
	case s.Type == "apiKey" && s.In == "header":
		v := req.Header.Get(s.Name)
		if v == "" {
			return fmt.Errorf("no %s header", s.Name)
		}
		if s.Name != APIKeyHeader {
			break
		}
		for _, scope := range in.Scopes {
			if !slices.Contains(keyScopes[v], scope) {
				return fmt.Errorf("the API key lacks the %s scope", scope)
			}
		}
	default:
		return fmt.Errorf("security scheme %s is not checked here", in.SecuritySchemeName)
	}
	return nil
}

// undocumented returns the fields of v (at where) that none of schemas,
// nor their allOf/anyOf/oneOf parts, describes. A schema that names no
// properties at all is free-form.
func undocumented(schemas []*openapi3.Schema, v any, where string) []string {
	var all []*openapi3.Schema
	var expand func(*openapi3.Schema)
	expand = func(s *openapi3.Schema) {
		all = append(all, s)
		for _, refs := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, r := range refs {
				expand(r.Value)
			}
		}
	}
	for _, s := range schemas {
		expand(s)
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		props := map[string][]*openapi3.Schema{}
		var extra []*openapi3.Schema
		for _, s := range all {
			for k, p := range s.Properties {
				props[k] = append(props[k], p.Value)
			}
			if ap := s.AdditionalProperties.Schema; ap != nil {
				extra = append(extra, ap.Value)
			}
		}
		if len(props) == 0 && len(extra) == 0 {
			return nil
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			switch {
			case props[k] != nil:
				out = append(out, undocumented(props[k], v[k], where+"."+k)...)
			case extra != nil:
				out = append(out, undocumented(extra, v[k], where+"."+k)...)
			default:
				out = append(out, where+"."+k)
			}
		}
	case []any:
		var items []*openapi3.Schema
		for _, s := range all {
			if s.Items != nil {
				items = append(items, s.Items.Value)
			}
		}
		for i, e := range v {
			out = append(out, undocumented(items, e, fmt.Sprintf("%s[%d]", where, i))...)
		}
	}
	return out
}

// TestOpenAPIAnswers drives real requests through both handlers and
// validates each request and answer against the document: the schemas
// describe what the server really sends.
func TestOpenAPIAnswers(t *testing.T) {
	doc := specDoc(t)
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := specCheck{t: t, router: r}
	e := newEnv(t)
	const js = "application/json"
	pub := func(method, path, body string, h hdr, status int) []byte {
		t.Helper()
		ct := ""
		if body != "" {
			ct = js
		}
		return s.call(e.url, method, path, ct, body, h, status, false)
	}
	data := func(raw []byte, v any) {
		t.Helper()
		var a struct{ Data json.RawMessage }
		if err := json.Unmarshal(raw, &a); err != nil || json.Unmarshal(a.Data, v) != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
	}

	pub("GET", "/healthz", "", nil, 200)
	s.call(e.internal, "GET", "/healthz", "", "", nil, 200, false)
	pub("GET", "/openapi.json", "", nil, 200)
	pub("GET", "/", "", nil, 200)
	pub("HEAD", "/", "", nil, 200)
	pub("GET", "/web/gocim.js", "", nil, 200)
	pub("GET", "/web/nothing.js", "", nil, 404)
	pub("POST", "/registerAccount", `{"userName":"alice","password":"password1"}`, nil, 200)
	pub("POST", "/registerAccount", `{"userName":"bob","password":"password1"}`, nil, 200)
	pub("POST", "/registerAccount", `{"userName":"Alice","password":"password1"}`, nil, 409)
	pub("POST", "/login", `{"userName":"alice","password":"wrong-password"}`, nil, 401)

	var alice, bob loginData
	data(pub("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200), &alice)
	data(pub("POST", "/login", `{"userId":2,"password":"password1"}`, nil, 200), &bob)
	for _, l := range []loginData{alice, bob} {
		s.call(e.internal, "POST", "/internal/online", js,
			`{"userId":"`+l.UserID+`","sessionId":"`+l.SessionID+`","gatewayId":"`+l.Server.ID+`"}`, asGateway, 200, false)
		e.gw.Connect(l.UserID, l.SessionID)
	}
	me := alice.bearer()

	pub("GET", "/onlineUser", "", asAdmin, 200)
	pub("GET", "/presence?users=alice,"+bob.UserID, "", asAdmin, 200)
	pub("GET", "/presence?users=alice", "", me, 200)
	pub("GET", "/presence?users=nobody", "", me, 401)
	pub("GET", "/presence?users=", "", me, 400)
	var sent struct{ MsgID string }
	data(pub("POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"hi bob"}`, me, 200), &sent)
	pub("POST", "/groupRoute", `{"userId":"`+bob.UserID+`","msg":"hi all"}`, asPush, 200)
	pub("POST", "/api/push", `{"to":["alice","bob"],"msg":"maintenance at noon"}`, asPush, 200)
	pub("POST", "/api/push", `{"to":["nobody"],"msg":"x"}`, asPush, 401)
	pub("POST", "/delay", `{"to":"bob","msg":"later","delaySeconds":60}`, me, 200)
	pub("GET", "/history?peer=bob&limit=10", "", me, 200)
	pub("POST", "/history/delete", `{"msgIds":["`+sent.MsgID+`"]}`, bob.bearer(), 200)

	var file fileJSON
	data(s.call(e.url, "POST", "/upload?name=notes.txt", "text/plain", "some notes", me, 200, false), &file)
	s.call(e.url, "GET", "/files/"+file.Ref, "", "", bob.bearer(), 200, false)
	pub("GET", "/files/0123456789abcdef0123456789abcdef", "", me, 404)

	var g groupJSON
	data(pub("POST", "/groups", `{"name":"team"}`, me, 200), &g)
	pub("GET", "/groups", "", me, 200)
	pub("GET", "/groups/"+g.GroupID, "", me, 200)
	pub("GET", "/groups/999", "", me, 404)
	pub("POST", "/groups/"+g.GroupID+"/invite", `{"users":["bob"]}`, me, 200)
	pub("POST", "/groups/"+g.GroupID+"/join", "", bob.bearer(), 200)
	pub("GET", "/groups/"+g.GroupID+"/members", "", me, 200)
	pub("GET", "/groups/receipts?msgIds="+sent.MsgID, "", me, 200)
	pub("POST", "/groups/"+g.GroupID+"/rename", `{"name":"the team"}`, me, 200)
	pub("POST", "/groups/"+g.GroupID+"/leave", "", me, 403)
	pub("POST", "/api/push", `{"group":"`+g.GroupID+`","msg":"to the team"}`, asPush, 200)
	pub("POST", "/api/push", `{"all":true,"from":"alice","msg":"to all"}`, asPush, 200)
	pub("GET", "/history?group="+g.GroupID, "", bob.bearer(), 200)
	pub("POST", "/groups/"+g.GroupID+"/kick", `{"userId":"bob"}`, me, 200)

	batch, _ := proto.Marshal(&cimpb.UplinkBatch{GatewayId: alice.Server.ID})
	s.call(e.internal, "POST", "/internal/uplink", contract.ProtobufType, string(batch), asGateway, 200, false)

	// Devices: created, logged in by their gateway, shown, listed, given a
	// new credential, revoked.
	var dev deviceSecretJSON
	data(pub("POST", "/devices", `{"name":"sensor-1"}`, asAdmin, 200), &dev)
	pub("POST", "/devices", `{"name":"alice"}`, asAdmin, 409)
	var tok contract.DeviceToken
	data(s.call(e.internal, "POST", "/internal/device-login", js,
		`{"device":"sensor-1","secret":"`+dev.Secret+`","gatewayId":"`+e.gw.ID+`","clean":true}`, asGateway, 200, false), &tok)
	s.call(e.internal, "POST", "/internal/device-login", js, `{"device":"sensor-1","secret":"wrong","gatewayId":"`+e.gw.ID+`"}`, asGateway, 401, false)
	s.call(e.internal, "POST", "/internal/online", js,
		`{"userId":"`+tok.UserID+`","sessionId":"`+tok.SessionID+`","gatewayId":"`+e.gw.ID+`","platform":"device"}`, asGateway, 200, false)
	pub("GET", "/devices/sensor-1", "", asAdmin, 200)
	pub("GET", "/devices/"+dev.DeviceID, "", asAdmin, 200)
	pub("GET", "/devices/alice", "", asAdmin, 404)
	pub("GET", "/devices?limit=10", "", asAdmin, 200)
	pub("GET", "/devices?after="+dev.DeviceID, "", asAdmin, 200)
	pub("POST", "/devices/sensor-1/secret", "", asAdmin, 200)
	pub("DELETE", "/devices/sensor-1", "", asAdmin, 200)
	pub("GET", "/devices/sensor-1", "", asAdmin, 200) // shown revoked
	s.call(e.url, "GET", "/devices", "", "", me, 403, true)
	s.call(e.url, "GET", "/devices?limit=0", "", "", asAdmin, 400, true)
	s.call(e.internal, "POST", "/internal/device-login", js, `{"device":"sensor-1","gatewayId":"`+e.gw.ID+`"}`, asGateway, 401, true)

	// Refused by the handler and by the document alike.
	s.call(e.url, "POST", "/groups", js, `{"name":`, me, 400, true)
	s.call(e.url, "GET", "/groups", "", "", nil, 401, true)
	s.call(e.url, "GET", "/history?limit=0", "", "", me, 400, true)
	s.call(e.url, "POST", "/history/delete", js, `{"msgIds":[]}`, me, 400, true)
	s.call(e.internal, "POST", "/internal/offline", js, `{"userId":"1","sessionId":"s","gatewayId":"h:1:2"}`, nil, 401, true)
	s.call(e.url, "POST", "/api/push", js, `{"all":true,"msg":"x"}`, asAdmin, 403, true) // a key without the scope
	s.call(e.url, "POST", "/delay", js, `{"to":"bob","msg":"x","delaySeconds":1}`, asPush, 403, true)

	pub("POST", "/groups/"+g.GroupID+"/dissolve", "", me, 200)
	pub("POST", "/offLine", `{"userId":"`+bob.UserID+`"}`, asAdmin, 200)
	pub("POST", "/offLine", "", me, 200)
	pub("GET", "/groups", "", me, 401) // a logged-off session's token is dead
}
