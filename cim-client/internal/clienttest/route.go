package clienttest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/codes"
)

// Answer overrides the route's answer to one /login attempt.
type Answer struct {
	Code   codes.Code
	Status int
}

// OfflineCall is one POST /offLine the route received.
type OfflineCall struct {
	UserID    string `json:"userId"`
	SessionID string `json:"sessionId"`
}

// Route is a fake route: accounts in memory, /login hands out the configured
// gateways in turn (the last one repeats) with a gateway token and an access
// token, /offLine and /onlineUser follow the sessions it issued.
//
// It also keeps groups (docs/ARCHITECTURE.md, "Groups"): the /groups
// endpoints with the contract's rules for who may do what, and the route's
// side of group MSGs for a Gateway given SetGroups; the users each user
// blocked (the /blocks endpoints, blocks.go), which no fake gateway applies;
// and the conversations each user muted (the /mutes endpoints, mutes.go).
//
// Like the real route (docs/ARCHITECTURE.md, "Security"), /onlineUser,
// /offLine, /history, /upload, /files/<ref>, /groups…, /blocks… and
// /mutes require "Authorization: Bearer <accessToken>" of the user's
// current session: without one, or with a malformed or stale one, they
// answer 401/4010; userId/sessionId given next to it must be the token's,
// else 403/4030.
// /offLine with a stale session's token answers 9000 (logging off twice is
// fine).
type Route struct {
	URL string
	srv *httptest.Server

	mu        sync.Mutex
	byName    map[string]*account
	byID      map[string]*account
	nextID    int
	gateways  []*Gateway
	nextGW    int
	logins    int
	sessions  int
	offline   []OfflineCall
	hook      func(ctx context.Context, attempt int) *Answer
	history   []HistoryMsg
	deleted   map[string]map[string]bool // user id → msgIds deleted from its history (revise.go)
	queries   []url.Values
	files     map[string]StoredFile
	uploadMax int64
	bearers   map[string]string // endpoint → the last Authorization header
	calls     map[string]int    // endpoint → calls that needed a bearer
	grp       groupState
	blk       blockState     // blocks.go
	mut       muteState      // mutes.go
	resumes   bool           // /login hands out resume tokens (HandOutResumes)
	resumed   int            // logins with a resume token
	latest    map[string]int // user id → its latest resume token's number

	// LoginAttempts receives the number of every /login attempt, when
	// somebody listens.
	LoginAttempts chan int
	// OfflineCalls receives every /offLine call, when somebody listens.
	OfflineCalls chan OfflineCall
}

type account struct {
	id, name, pw string
	session      string // current session; "" when offline
}

// NewRoute starts a fake route handing out gws; it closes at test cleanup.
func NewRoute(t testing.TB, gws ...*Gateway) *Route {
	t.Helper()
	return newRoute(t, nil, gws)
}

// NewTLSRoute is NewRoute serving https with conf (e.g. testenv.TLS.ServerConfig).
func NewTLSRoute(t testing.TB, conf *tls.Config, gws ...*Gateway) *Route {
	t.Helper()
	return newRoute(t, conf, gws)
}

func newRoute(t testing.TB, conf *tls.Config, gws []*Gateway) *Route {
	r := &Route{
		byName:        map[string]*account{},
		byID:          map[string]*account{},
		files:         map[string]StoredFile{},
		bearers:       map[string]string{},
		calls:         map[string]int{},
		uploadMax:     10 << 20,
		gateways:      gws,
		LoginAttempts: make(chan int, 64),
		OfflineCalls:  make(chan OfflineCall, 64),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /registerAccount", r.register)
	mux.HandleFunc("POST /login", r.login)
	mux.HandleFunc("POST /offLine", r.offLine)
	mux.HandleFunc("POST /account/password", r.changePassword)
	mux.HandleFunc("POST /account/delete", r.deleteAccount)
	mux.HandleFunc("GET /onlineUser", r.onlineUser)
	mux.HandleFunc("GET /history", r.historyPage)
	mux.HandleFunc("POST /history/delete", r.deleteHistory)
	mux.HandleFunc("POST /upload", r.upload)
	mux.HandleFunc("GET /files/{ref}", r.file)
	r.registerGroups(mux)
	r.registerBlocks(mux)
	r.registerMutes(mux)
	r.srv = httptest.NewUnstartedServer(mux)
	if conf != nil {
		r.srv.TLS = conf
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// HandOutResumes makes /login answer with a resume token, and take the
// latest one of a user instead of the password (the real route's
// --resume-ttl).
func (r *Route) HandOutResumes() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resumes = true
	r.latest = map[string]int{}
}

// RevokeResumes makes every resume token handed out so far refused (4010),
// as a log-off or password reset does.
func (r *Route) RevokeResumes() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.latest)
}

// Resumed counts the logins made with a resume token.
func (r *Route) Resumed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resumed
}

// Close stops the server (also done at test cleanup). Safe to call twice.
func (r *Route) Close() { r.srv.Close() }

// AddUser creates an account and returns its id.
func (r *Route) AddUser(name, password string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addLocked(name, password).id
}

func (r *Route) addLocked(name, password string) *account {
	r.nextID++
	a := &account{id: strconv.Itoa(r.nextID), name: name, pw: password}
	r.byName[name] = a
	r.byID[a.id] = a
	return a
}

// SetGateways replaces the gateways /login hands out, from the first.
func (r *Route) SetGateways(gws ...*Gateway) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gateways, r.nextGW = gws, 0
}

// SetLoginHook installs f, consulted before every /login with the attempt's
// number (from 1); a non-nil Answer is sent instead of the normal one. f may
// block until ctx (the request's) ends.
func (r *Route) SetLoginHook(f func(ctx context.Context, attempt int) *Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = f
}

// Logins counts /login attempts.
func (r *Route) Logins() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logins
}

// Offlines returns the /offLine calls so far.
func (r *Route) Offlines() []OfflineCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.offline)
}

// NextLogin waits for the next /login attempt and returns its number.
func (r *Route) NextLogin(t testing.TB) int {
	t.Helper()
	select {
	case n := <-r.LoginAttempts:
		return n
	case <-time.After(Wait):
		t.Fatalf("route: no /login within %v", Wait)
		return 0
	}
}

func (r *Route) register(w http.ResponseWriter, req *http.Request) {
	var in struct{ UserName, Password string }
	if json.NewDecoder(req.Body).Decode(&in) != nil || in.UserName == "" || in.Password == "" {
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[in.UserName]; ok {
		reply(w, http.StatusConflict, codes.BadAccount, "name taken", nil)
		return
	}
	a := r.addLocked(in.UserName, in.Password)
	reply(w, http.StatusOK, codes.OK, "ok", map[string]string{"userId": a.id, "userName": a.name})
}

func (r *Route) login(w http.ResponseWriter, req *http.Request) {
	var in struct{ UserName, UserID, Password, ResumeToken string }
	if json.NewDecoder(req.Body).Decode(&in) != nil || (in.ResumeToken == "" && (in.Password == "" || (in.UserName == "" && in.UserID == ""))) {
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return
	}
	r.mu.Lock()
	r.logins++
	n, hook := r.logins, r.hook
	r.mu.Unlock()
	select {
	case r.LoginAttempts <- n:
	default:
	}
	if hook != nil {
		if a := hook(req.Context(), n); a != nil {
			reply(w, a.Status, a.Code, a.Code.Text(), nil)
			return
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.byName[in.UserName]
	if in.UserName == "" {
		a = r.byID[in.UserID]
	}
	if in.ResumeToken != "" {
		// "resume:<uid>:<n>", the user's latest.
		var id string
		var n int
		p := strings.Split(in.ResumeToken, ":")
		if len(p) == 3 {
			id = p[1]
			n, _ = strconv.Atoi(p[2])
		}
		if a = r.byID[id]; !r.resumes || len(p) != 3 || p[0] != "resume" || a == nil || n == 0 || r.latest[id] != n {
			reply(w, http.StatusUnauthorized, codes.Unauthorized, "resume token used or revoked", nil)
			return
		}
		r.resumed++
	} else if a == nil || a.pw != in.Password {
		reply(w, http.StatusUnauthorized, codes.BadAccount, "bad account", nil)
		return
	}
	if len(r.gateways) == 0 {
		reply(w, http.StatusServiceUnavailable, codes.NoServer, "no server", nil)
		return
	}
	gw := r.gateways[min(r.nextGW, len(r.gateways)-1)]
	r.nextGW++
	r.sessions++
	a.session = "s" + strconv.Itoa(r.sessions)
	ans := map[string]any{
		"userId":          a.id,
		"userName":        a.name,
		"sessionId":       a.session,
		"token":           Token(a.id, a.name, a.session),
		"expiresAt":       time.Now().Add(time.Minute).Unix(),
		"accessToken":     AccessToken(a.id, a.session),
		"accessExpiresAt": time.Now().Add(24 * time.Hour).Unix(),
		"server":          gw.ServerJSON(),
	}
	if r.resumes {
		r.latest[a.id] = r.sessions
		ans["resumeToken"] = "resume:" + a.id + ":" + strconv.Itoa(r.sessions)
		ans["resumeExpiresAt"] = time.Now().Add(time.Hour).Unix()
	}
	reply(w, http.StatusOK, codes.OK, "ok", ans)
}

// changePassword is POST /account/password: with the current password it
// sets the new one and, when the route hands out resume tokens, revokes
// them all and answers the caller's session a new one (no other session is
// ended: the fake keeps one per user).
func (r *Route) changePassword(w http.ResponseWriter, req *http.Request) {
	var in struct{ Password, NewPassword string }
	if json.NewDecoder(req.Body).Decode(&in) != nil || in.NewPassword == "" {
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.withPasswordLocked(w, req, "/account/password", in.Password)
	if a == nil {
		return
	}
	a.pw = in.NewPassword
	ans := map[string]any{"sessionsEnded": 0}
	if r.resumes {
		r.sessions++ // a number no token of the user had
		r.latest[a.id] = r.sessions
		ans["resumeToken"] = "resume:" + a.id + ":" + strconv.Itoa(r.sessions)
		ans["resumeExpiresAt"] = time.Now().Add(time.Hour).Unix()
	}
	reply(w, http.StatusOK, codes.OK, "ok", ans)
}

// deleteAccount is POST /account/delete: with the password the account
// goes (it logs in no more, its resume tokens with it).
func (r *Route) deleteAccount(w http.ResponseWriter, req *http.Request) {
	var in struct{ Password string }
	if json.NewDecoder(req.Body).Decode(&in) != nil {
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.withPasswordLocked(w, req, "/account/delete", in.Password)
	if a == nil {
		return
	}
	delete(r.byName, a.name)
	delete(r.byID, a.id)
	delete(r.latest, a.id)
	reply(w, http.StatusOK, codes.OK, "ok", map[string]string{"userId": a.id, "userName": a.name})
}

// withPasswordLocked is the bearer's account when password is its
// password; nil after answering the refusal (401, or 403 for a wrong
// password).
func (r *Route) withPasswordLocked(w http.ResponseWriter, req *http.Request, endpoint, password string) *account {
	a, _, _ := r.bearerLocked(w, req, endpoint, false)
	if a != nil && a.pw != password {
		reply(w, http.StatusForbidden, codes.Forbidden, "wrong password", nil)
		return nil
	}
	return a
}

// AccessToken returns the fake access token of a session.
func AccessToken(uid, sid string) string {
	return "acc:" + uid + ":" + sid
}

// Bearer returns the Authorization header of the last call to endpoint
// ("/onlineUser", "/offLine", "/history", "/upload" or "/files/"; for the
// group and block endpoints their pattern, e.g. "POST /groups", "GET
// /groups/{gid}", "POST /groups/{gid}/join", "GET /groups/receipts",
// "DELETE /blocks/{user}", "GET /mutes", "POST /mutes", "DELETE /mutes").
func (r *Route) Bearer(endpoint string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bearers[endpoint]
}

// Calls counts the calls to endpoint (named as for Bearer), with or
// without a valid bearer.
func (r *Route) Calls(endpoint string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[endpoint]
}

// bearerLocked checks req's access token for endpoint. It returns the
// token's account and session, or writes the refusal and returns nil. A
// stale session is refused unless staleOK; then the account is returned
// with current false.
func (r *Route) bearerLocked(w http.ResponseWriter, req *http.Request, endpoint string, staleOK bool) (a *account, sid string, current bool) {
	h := req.Header.Get("Authorization")
	r.bearers[endpoint] = h
	r.calls[endpoint]++
	tok, ok := strings.CutPrefix(h, "Bearer ")
	p := strings.Split(tok, ":")
	if !ok || len(p) != 3 || p[0] != "acc" || r.byID[p[1]] == nil || p[2] == "" {
		reply(w, http.StatusUnauthorized, codes.Unauthorized, "missing or malformed access token", nil)
		return nil, "", false
	}
	a, sid = r.byID[p[1]], p[2]
	current = a.session == sid
	if !current && !staleOK {
		reply(w, http.StatusUnauthorized, codes.Unauthorized, "session is no longer current", nil)
		return nil, "", false
	}
	return a, sid, current
}

// sameLocked answers 403 and returns false when a userId or sessionId given
// with the request is not the token's.
func sameLocked(w http.ResponseWriter, a *account, sid, userID, sessionID string) bool {
	if (userID != "" && userID != a.id) || (sessionID != "" && sessionID != sid) {
		reply(w, http.StatusForbidden, codes.Forbidden, "not your session", nil)
		return false
	}
	return true
}

func (r *Route) offLine(w http.ResponseWriter, req *http.Request) {
	var in OfflineCall
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil && !errors.Is(err, io.EOF) { // the body is optional
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return
	}
	r.mu.Lock()
	a, sid, current := r.bearerLocked(w, req, "/offLine", true)
	if a == nil || !sameLocked(w, a, sid, in.UserID, in.SessionID) {
		r.mu.Unlock()
		return
	}
	r.offline = append(r.offline, in)
	if current {
		a.session = ""
		delete(r.latest, a.id) // logging off revokes the session's resume token
	}
	r.mu.Unlock()
	select {
	case r.OfflineCalls <- in:
	default:
	}
	reply(w, http.StatusOK, codes.OK, "ok", nil)
}

func (r *Route) onlineUser(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, _, _ := r.bearerLocked(w, req, "/onlineUser", false); a == nil {
		return
	}
	type user struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	users := []user{}
	for id := 1; id <= r.nextID; id++ {
		if a := r.byID[itoa(id)]; a != nil && a.session != "" {
			users = append(users, user{a.id, a.name})
		}
	}
	reply(w, http.StatusOK, codes.OK, "ok", users)
}

func reply(w http.ResponseWriter, status int, code codes.Code, msg string, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "data": data})
}

// HistoryMsg is one stored message as GET /history lists it.
type HistoryMsg struct {
	MsgID       string    `json:"msgId"`
	Seq         uint64    `json:"seq"`
	From        string    `json:"from"`
	FromName    string    `json:"fromName"`
	To          string    `json:"to"`
	Group       string    `json:"group,omitempty"` // a group message's group id
	Kind        int       `json:"kind"`
	Body        string    `json:"body"`
	File        *FileJSON `json:"file,omitempty"`
	TimestampMs int64     `json:"timestampMs"`
	Op          string    `json:"op,omitempty"`      // "edited" or "recalled"
	ReplyTo     string    `json:"replyTo,omitempty"` // the msgId a reply answers
	// Mentions are the ids of the members a group message mentions.
	Mentions []string `json:"mentions,omitempty"`
	// Reactions as the route lists them: each emoji in the order it
	// first came, Mine on the asking user's own (the fake does not tell
	// users apart here: every asker sees the same).
	Reactions []ReactionJSON `json:"reactions,omitempty"`
}

// ReactionJSON is one emoji of a message's reactions in /history answers.
type ReactionJSON struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Mine  bool   `json:"mine"`
}

// FileJSON is a message's file in /history answers.
type FileJSON struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
	Ref         string `json:"ref,omitempty"`
}

// StoredFile is one POST /upload the route kept.
type StoredFile struct {
	Name, ContentType string
	Data              []byte
}

// AddHistory appends messages to the history, oldest first. /history
// lists those of the asking user (sent or received), newest first.
func (r *Route) AddHistory(msgs ...HistoryMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, msgs...)
}

// HistoryQueries returns the query strings of the /history calls so far.
func (r *Route) HistoryQueries() []url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.queries)
}

// SetUploadMax changes the largest upload accepted (default 10 MiB).
func (r *Route) SetUploadMax(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uploadMax = n
}

// PutFile stores a file as if uploaded and returns its ref.
func (r *Route) PutFile(f StoredFile) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ref := hex.EncodeToString(b[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[ref] = f
	return ref
}

// File returns an uploaded file.
func (r *Route) File(ref string) (StoredFile, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.files[ref]
	return f, ok
}

// sessionLocked checks the access token (current session) and the userId
// and sessionId query parameters, if any, against it; nil after a refusal.
func (r *Route) sessionLocked(w http.ResponseWriter, req *http.Request, endpoint string) *account {
	a, sid, _ := r.bearerLocked(w, req, endpoint, false)
	if a == nil {
		return nil
	}
	q := req.URL.Query()
	if !sameLocked(w, a, sid, q.Get("userId"), q.Get("sessionId")) {
		return nil
	}
	return a
}

func (r *Route) historyPage(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, q)
	me := r.sessionLocked(w, req, "/history")
	if me == nil {
		return
	}
	limit := 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			reply(w, http.StatusBadRequest, codes.BadArgument, "bad limit", nil)
			return
		}
		limit = min(n, 100)
	}
	peer := ""
	if p := q.Get("peer"); p != "" {
		a := r.byName[p]
		if isNumber(p) {
			a = r.byID[p]
		}
		if a == nil {
			reply(w, http.StatusUnauthorized, codes.BadAccount, "unknown peer", nil)
			return
		}
		peer = a.id
	}
	kw := strings.ToLower(q.Get("keyword"))
	out := []HistoryMsg{}
	next := ""
	started := q.Get("before") == ""
	for i := len(r.history) - 1; i >= 0; i-- {
		m := r.history[i]
		if !started {
			started = m.MsgID == q.Get("before")
			continue
		}
		mine := (m.From == me.id || m.To == me.id) && !r.deleted[me.id][m.MsgID]
		if gid := q.Get("group"); gid != "" { // a group's history: every message of it
			mine = m.Group == gid && !r.deleted[me.id][m.MsgID]
		}
		withPeer := peer == "" || m.From == peer || m.To == peer
		if !mine || !withPeer || (kw != "" && !strings.Contains(strings.ToLower(m.Body), kw)) {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].MsgID
			break
		}
		out = append(out, m)
	}
	reply(w, http.StatusOK, codes.OK, "ok", map[string]any{"messages": out, "next": next})
}

func (r *Route) upload(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	r.mu.Lock()
	me, limit := r.sessionLocked(w, req, "/upload"), r.uploadMax
	r.mu.Unlock()
	if me == nil {
		return
	}
	if q.Get("name") == "" {
		reply(w, http.StatusBadRequest, codes.BadArgument, "name is required", nil)
		return
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		reply(w, http.StatusBadRequest, codes.BadArgument, err.Error(), nil)
		return
	}
	if int64(len(data)) > limit {
		reply(w, http.StatusRequestEntityTooLarge, codes.BadArgument, "file too large", nil)
		return
	}
	f := StoredFile{Name: q.Get("name"), ContentType: req.Header.Get("Content-Type"), Data: data}
	ref := r.PutFile(f)
	reply(w, http.StatusOK, codes.OK, "ok", map[string]any{
		"ref": ref, "size": len(data), "name": f.Name, "contentType": f.ContentType,
	})
}

func (r *Route) file(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	a, _, _ := r.bearerLocked(w, req, "/files/", false)
	r.mu.Unlock()
	if a == nil {
		return
	}
	f, ok := r.File(req.PathValue("ref"))
	if !ok {
		reply(w, http.StatusNotFound, codes.BadArgument, "no such file", nil)
		return
	}
	w.Header().Set("Content-Type", f.ContentType)
	_, _ = w.Write(f.Data)
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
