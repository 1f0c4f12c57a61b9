package clienttest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
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
// gateways in turn (the last one repeats), /offLine and /onlineUser follow
// the sessions it issued.
type Route struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	byName   map[string]*account
	byID     map[string]*account
	nextID   int
	gateways []*Gateway
	nextGW   int
	logins   int
	sessions int
	offline  []OfflineCall
	hook     func(ctx context.Context, attempt int) *Answer

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
	r := &Route{
		byName:        map[string]*account{},
		byID:          map[string]*account{},
		gateways:      gws,
		LoginAttempts: make(chan int, 64),
		OfflineCalls:  make(chan OfflineCall, 64),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /registerAccount", r.register)
	mux.HandleFunc("POST /login", r.login)
	mux.HandleFunc("POST /offLine", r.offLine)
	mux.HandleFunc("GET /onlineUser", r.onlineUser)
	r.srv = httptest.NewServer(mux)
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
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
	var in struct{ UserName, UserID, Password string }
	if json.NewDecoder(req.Body).Decode(&in) != nil || in.Password == "" || (in.UserName == "" && in.UserID == "") {
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
	if a == nil || a.pw != in.Password {
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
	reply(w, http.StatusOK, codes.OK, "ok", map[string]any{
		"userId":    a.id,
		"userName":  a.name,
		"sessionId": a.session,
		"token":     Token(a.id, a.name, a.session),
		"expiresAt": time.Now().Add(time.Minute).Unix(),
		"server":    gw.ServerJSON(),
	})
}

func (r *Route) offLine(w http.ResponseWriter, req *http.Request) {
	var in OfflineCall
	if json.NewDecoder(req.Body).Decode(&in) != nil || in.UserID == "" {
		reply(w, http.StatusBadRequest, codes.BadArgument, "bad argument", nil)
		return
	}
	r.mu.Lock()
	r.offline = append(r.offline, in)
	if a := r.byID[in.UserID]; a != nil && a.session == in.SessionID {
		a.session = ""
	}
	r.mu.Unlock()
	select {
	case r.OfflineCalls <- in:
	default:
	}
	reply(w, http.StatusOK, codes.OK, "ok", nil)
}

func (r *Route) onlineUser(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
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
