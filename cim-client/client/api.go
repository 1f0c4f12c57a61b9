package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/routeapi"
)

// maxAnswer caps how much of a route answer is read; the largest legitimate
// one is the online-user list.
const maxAnswer = 16 << 20

// defaultHTTPTimeout bounds one route call when the caller gave no client.
const defaultHTTPTimeout = 10 * time.Second

// User is one account as the route lists it.
type User struct {
	UserID   string
	UserName string
}

// Server is the gateway the route hands out at login.
type Server struct {
	ID       string // gateway id, "<host>:<tcpPort>:<httpPort>"
	Host     string
	TCPPort  int
	HTTPPort int
	// WSURL is the gateway's WebSocket endpoint, for browsers ("" when it
	// has none); this SDK connects over TCP.
	WSURL string
}

// Addr is the TCP address clients connect to.
func (s Server) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.TCPPort))
}

// LoginResult is what the route answers to a successful login.
type LoginResult struct {
	UserID    string
	UserName  string
	SessionID string
	Token     string
	// ExpiresAt is the token's expiry as the route sent it (a number; 0 when
	// it sent none or something else).
	ExpiresAt int64
	Server    Server
	// AccessToken is the bearer for the route's API (history, uploads,
	// files, online users, log-off) on behalf of this session, and
	// AccessExpiresAt its expiry in unix seconds (0 when not sent). A route
	// older than the security contract sends none.
	AccessToken     string
	AccessExpiresAt int64
	// ResumeToken logs in once more without the password (Resume), and
	// ResumeExpiresAt is its expiry in unix seconds; empty when the route
	// hands none out.
	ResumeToken     string
	ResumeExpiresAt int64
}

// APIError is a failure the route answered with a result code, or an answer
// that was not a route answer at all (Code 0, e.g. a proxy's 502 page).
type APIError struct {
	Code       codes.Code
	Message    string
	HTTPStatus int
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.Text()
	}
	if e.Code == codes.Unauthorized {
		// The route says little more than "unauthorized"; say what it means
		// for a caller of the SDK.
		msg = "access token refused (" + msg + "): the session was replaced, logged off or expired"
	}
	if e.Code == 0 {
		return fmt.Sprintf("route: %s (HTTP %d)", msg, e.HTTPStatus)
	}
	return fmt.Sprintf("route: %s (code %d, HTTP %d)", msg, e.Code, e.HTTPStatus)
}

// Is makes errors.Is(err, ErrUnauthorized) true for the route's 4010
// answer (or a bare HTTP 401): the access token is missing, expired, or its
// session is no longer the user's current one.
func (e *APIError) Is(target error) bool {
	return target == ErrUnauthorized &&
		(e.Code == codes.Unauthorized || e.Code == 0 && e.HTTPStatus == http.StatusUnauthorized)
}

// CodeOf returns the result code carried by err (an *APIError or a
// *GatewayError anywhere in its chain), or 0.
func CodeOf(err error) codes.Code {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	var ge *GatewayError
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// API calls the route's public HTTP API. It is safe for concurrent use.
//
// It may know several route replicas (NewAPI with a comma-separated list):
// each Login goes to the next one in turn, other calls to the replica the
// latest call reached; a call that cannot reach its replica (connection
// refused, or a 502/503/504 answer) moves on to the next. A call whose
// request may have been applied before the connection failed (a POST other
// than a login, once sent) is not repeated: only the ones that are safe to
// repeat are (GET, /login, anything that never reached a route).
//
// It keeps the access token of its latest successful Login and sends it as
// "Authorization: Bearer <token>" on every call that acts for a session
// (OnlineUsers, Offline, History, Upload, Download, the group calls); a 401
// comes back as an *APIError matching ErrUnauthorized, it does not log in
// again. Use one API per user.
type API struct {
	bases []string      // route base URLs, without a trailing slash
	pref  atomic.Uint64 // index (mod len(bases)) of the replica to call first
	// rr counts logins: each starts at the next replica. It starts at a
	// random one, so many clients' first logins spread over the replicas.
	rr atomic.Uint64
	hc *http.Client
	// Platform goes with every Login (see Config.Platform); set it before
	// the first call.
	Platform string

	mu   sync.Mutex
	auth credentials
}

// credentials is what the latest login handed out for the API.
type credentials struct {
	userID, sessionID, token string
}

// NewAPI returns a client of the route at routeURL (e.g.
// "http://127.0.0.1:8080"), or of several replicas: a comma-separated list
// ("http://10.0.0.1:8080,http://10.0.0.2:8080"). A nil hc means an
// http.Client with a 10 s timeout.
func NewAPI(routeURL string, hc *http.Client) *API {
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	a := &API{hc: hc}
	for _, u := range splitRoutes(routeURL) {
		a.bases = append(a.bases, strings.TrimRight(u, "/"))
	}
	if len(a.bases) == 0 {
		a.bases = []string{""} // every call fails, as with an empty URL before
	}
	a.rr.Store(rand.Uint64())
	return a
}

// splitRoutes splits a comma-separated list of route URLs, dropping blanks.
func splitRoutes(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// base is the replica calls go to first.
func (a *API) base() string {
	return a.bases[a.pref.Load()%uint64(len(a.bases))]
}

// AccessToken returns the bearer the API sends: the latest Login's, or what
// SetAccessToken set ("" for none).
func (a *API) AccessToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.auth.token
}

// SetAccessToken replaces the bearer, e.g. with one a back-end obtained
// elsewhere; "" sends none. The next Login replaces it again.
func (a *API) SetAccessToken(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.auth = credentials{token: tok}
}

// loggedIn returns the user and session of the latest Login, whose access
// token the API sends; "" when there was none.
func (a *API) loggedIn() (userID, sessionID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.auth.userID, a.auth.sessionID
}

// offlineLatest is Offline for the latest login's session, named with its
// own access token, both read at once: a reconnect that logs in again
// meanwhile cannot pair one session's token with another's id. Without a
// login (uid or sid empty) it logs off userID and sessionID.
func (a *API) offlineLatest(ctx context.Context, userID, sessionID string) error {
	a.mu.Lock()
	uid, sid, tok := a.auth.userID, a.auth.sessionID, a.auth.token
	a.mu.Unlock()
	if uid == "" || sid == "" {
		return a.Offline(ctx, userID, sessionID)
	}
	return a.call(ctx, http.MethodPost, "/offLine", map[string]string{"userId": uid, "sessionId": sid}, nil,
		func(req *http.Request) {
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
		})
}

// authorize puts the access token on req, when there is one. Without one
// the request goes out as it is: a caller's http.Client may authenticate it
// in its own way.
func (a *API) authorize(req *http.Request) {
	if tok := a.AccessToken(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

// Register creates an account. A taken name is an *APIError with
// codes.BadAccount.
func (a *API) Register(ctx context.Context, name, password string) (User, error) {
	var d routeapi.User
	err := a.call(ctx, http.MethodPost, "/registerAccount",
		map[string]string{"userName": name, "password": password}, &d)
	if err != nil {
		return User{}, err
	}
	return User{UserID: string(d.UserID), UserName: string(d.UserName)}, nil
}

// Login checks the account and returns a session, a token and the gateway to
// connect to. name may also be a user id (names never look like ids). The
// answer's access token becomes the API's bearer.
func (a *API) Login(ctx context.Context, name, password string) (LoginResult, error) {
	req := routeapi.LoginRequest{Password: password, Platform: a.Platform}
	if isUserID(name) {
		req.UserID = routeapi.ID(name)
	} else {
		req.UserName = name
	}
	return a.login(ctx, req)
}

// Resume logs in again with the ResumeToken of an earlier login instead of
// the password: the route checks a signature and Redis, not a password
// hash, so a gateway's users coming back at once after it failed cost the
// route little. Each token logs in once; the answer carries the next. An
// *APIError with codes.Unauthorized means the token is used or revoked (a
// newer login, a log-off, a password reset, a ban): log in with the
// password.
func (a *API) Resume(ctx context.Context, resumeToken string) (LoginResult, error) {
	return a.login(ctx, routeapi.LoginRequest{ResumeToken: resumeToken})
}

func (a *API) login(ctx context.Context, req routeapi.LoginRequest) (LoginResult, error) {
	var d routeapi.Login
	if err := a.call(ctx, http.MethodPost, routeapi.PathLogin, req, &d); err != nil {
		return LoginResult{}, err
	}
	res := LoginResult{
		UserID:          string(d.UserID),
		UserName:        string(d.UserName),
		SessionID:       string(d.SessionID),
		Token:           d.Token,
		ExpiresAt:       int64(d.ExpiresAt),
		AccessToken:     d.AccessToken,
		AccessExpiresAt: int64(d.AccessExpiresAt),
		ResumeToken:     d.ResumeToken,
		ResumeExpiresAt: int64(d.ResumeExpiresAt),
		Server: Server{
			ID:       d.Server.ID,
			Host:     d.Server.Host,
			TCPPort:  int(d.Server.TCPPort),
			HTTPPort: int(d.Server.HTTPPort),
			WSURL:    d.Server.WSURL,
		},
	}
	if res.Server.ID == "" && res.Server.Host != "" {
		res.Server.ID = contract.FormatGatewayID(res.Server.Host, res.Server.TCPPort, res.Server.HTTPPort)
	}
	if res.Token == "" || res.Server.Host == "" || res.Server.TCPPort <= 0 {
		return LoginResult{}, fmt.Errorf("route: login answer without token or gateway address")
	}
	// The latest login's session is the user's current one at the route,
	// so its token replaces any older one (even an empty one: the old
	// session is gone).
	a.mu.Lock()
	a.auth = credentials{userID: res.UserID, sessionID: res.SessionID, token: res.AccessToken}
	a.mu.Unlock()
	return res, nil
}

// OnlineUsers lists the users the route considers online, by id: the
// first page, of at most 1000 (OnlineUsersAfter goes on).
func (a *API) OnlineUsers(ctx context.Context) ([]User, error) {
	return a.OnlineUsersAfter(ctx, "", 0)
}

// OnlineUsersAfter is the page of the users online after the user id after
// ("": from the first), at most limit of them (0 or more than 1000: 1000).
// A full page means there may be more after its last user.
func (a *API) OnlineUsersAfter(ctx context.Context, after string, limit int) ([]User, error) {
	var d []routeapi.User
	if err := a.call(ctx, http.MethodGet, "/onlineUser"+pageQuery(after, limit), nil, &d, a.authorize); err != nil {
		return nil, err
	}
	users := make([]User, len(d))
	for i, u := range d {
		users[i] = User{UserID: string(u.UserID), UserName: string(u.UserName)}
	}
	return users, nil
}

// pageQuery is the query of a listing's page: "" for the first page of the
// default size.
func pageQuery(after string, limit int) string {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// UserPresence is one user's state as GET /presence reports it.
type UserPresence struct {
	UserID   string
	UserName string
	Online   bool
	Since    int64 // when its session came online (unix ms; 0 offline)
	// LastSeen: offline, when its last session ended (unix ms; 0 online,
	// never seen, or hidden: to a viewer the user blocked).
	LastSeen int64
}

// Presence asks for users' presence (ids or names, at most 100), in the
// order given; it needs the access token of a login or an admin API key.
func (a *API) Presence(ctx context.Context, users ...string) ([]UserPresence, error) {
	var d struct {
		Users []struct {
			UserID   routeapi.ID `json:"userId"`
			UserName string      `json:"userName"`
			Online   bool        `json:"online"`
			Since    int64       `json:"since"`
			LastSeen int64       `json:"lastSeen"`
		} `json:"users"`
	}
	q := url.Values{"users": {strings.Join(users, ",")}}
	if err := a.call(ctx, http.MethodGet, "/presence?"+q.Encode(), nil, &d, a.authorize); err != nil {
		return nil, err
	}
	out := make([]UserPresence, len(d.Users))
	for i, u := range d.Users {
		out[i] = UserPresence{UserID: string(u.UserID), UserName: u.UserName, Online: u.Online, Since: u.Since, LastSeen: u.LastSeen}
	}
	return out, nil
}

// Offline logs the session off at once: the route forgets the user's route
// and kicks the connection. userID and sessionID must be those of the access
// token (the latest Login), else the route answers 403.
func (a *API) Offline(ctx context.Context, userID, sessionID string) error {
	return a.call(ctx, http.MethodPost, "/offLine",
		map[string]string{"userId": userID, "sessionId": sessionID}, nil, a.authorize)
}

// envelope is every route answer.
type envelope struct {
	Code    *codes.Code     `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// call sends in as JSON (nil: no body) and decodes the answer's data into
// out; prepare (a.authorize) adjusts the request before it is sent.
func (a *API) call(ctx context.Context, method, path string, in, out any, prepare ...func(*http.Request)) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, f := range prepare {
		f(req)
	}
	return a.do(req, path, out)
}

// send sends req (built against a.base()+path) to the replicas in turn
// until one answers: a /login starts at the next replica (round-robin),
// anything else at the preferred one, which becomes the one that answered.
// It moves on after a connection that never reached a route, a 502, 503 or
// 504 answer, or any transport error of a request that is safe to repeat —
// when there is another replica and the body can be sent again.
func (a *API) send(req *http.Request, path string) (*http.Response, error) {
	n := uint64(len(a.bases))
	login := path == routeapi.PathLogin
	start := a.pref.Load()
	if login && n > 1 {
		start = a.rr.Add(1)
	}
	first := a.base()
	for _, b := range a.bases { // the replica req was built for
		if strings.HasPrefix(req.URL.String(), b) {
			first = b
			break
		}
	}
	for i := range n {
		idx := (start + i) % n
		r := req
		if i > 0 || a.bases[idx] != first {
			u, err := url.Parse(a.bases[idx] + strings.TrimPrefix(req.URL.String(), first))
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.URL, r.Host = u, ""
			if i > 0 && req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					break // the body is spent
				}
				if r.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
		}
		resp, err := a.hc.Do(r)
		last := i == n-1 || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil)
		switch {
		case err != nil && !last && req.Context().Err() == nil &&
			(neverSent(err) || login || req.Method == http.MethodGet || req.Method == http.MethodHead):
			continue
		case err == nil && !last && (resp.StatusCode == http.StatusBadGateway ||
			resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout):
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
			resp.Body.Close()
			continue
		}
		if err == nil {
			a.pref.Store(idx)
		}
		return resp, err
	}
	return nil, fmt.Errorf("route %s: no route replica answered", path)
}

// neverSent reports whether err is a failure to connect: the request never
// reached a route, so sending it to another is safe whatever it does.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// do sends req and decodes the route's envelope; path names the call in
// errors.
func (a *API) do(req *http.Request, path string, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := a.send(req, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("route %s: reading answer: %w", path, err)
	}
	var env envelope
	if json.Unmarshal(raw, &env) != nil || env.Code == nil {
		return &APIError{Message: notEnvelope(resp, raw), HTTPStatus: resp.StatusCode}
	}
	if *env.Code != codes.OK {
		return &APIError{Code: *env.Code, Message: env.Message, HTTPStatus: resp.StatusCode}
	}
	if out == nil || len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("route %s: unexpected data: %w", path, err)
	}
	return nil
}

// notEnvelope describes an answer that is not a route answer, keeping a
// short excerpt so a misconfigured --route shows what answered instead.
func notEnvelope(resp *http.Response, raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	if s == "" {
		return resp.Status
	}
	return resp.Status + ": " + s
}

func isUserID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// flexString accepts a JSON string or number: ids are decimal strings by
// contract, and a number is read the same way rather than failing a login.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*s = flexString(n.String())
	return nil
}

// flexInt accepts a JSON number or a string holding one.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return err
	}
	*n = flexInt(v)
	return nil
}

// Secured is what ChangePassword and LogoutOthers did: how many other
// sessions of the user ended, and this session's new resume token (every
// earlier one was revoked; "" when the route hands none out).
type Secured struct {
	SessionsEnded   int
	ResumeToken     string
	ResumeExpiresAt int64
}

// ChangePassword sets the user's password to next, given the current one
// (POST /account/password, with the access token). Every other session
// of the user ends and every resume token is revoked: whoever logged in
// with the old password is out. A wrong current password is an *APIError
// with codes.Forbidden; the route rate-limits attempts as logins.
func (a *API) ChangePassword(ctx context.Context, current, next string) (Secured, error) {
	return a.secure(ctx, "/account/password", map[string]string{"password": current, "newPassword": next})
}

// LogoutOthers ends every other session of the user and revokes every
// resume token, a remembered login of a device that is offline now (a lost
// laptop) too, given the password (POST /account/logout-others).
func (a *API) LogoutOthers(ctx context.Context, password string) (Secured, error) {
	return a.secure(ctx, "/account/logout-others", map[string]string{"password": password})
}

// DeleteAccount deletes the user's account for good, given the password
// (POST /account/delete, with the access token): its messages, history,
// remembered logins and blocks; the groups it owns are dissolved and it
// leaves the others; every session, this one's too, is kicked ("account
// deleted") and the name is free again. A wrong password is an *APIError
// with codes.Forbidden; the route rate-limits attempts as logins.
func (a *API) DeleteAccount(ctx context.Context, password string) (User, error) {
	var d struct {
		UserID   flexString `json:"userId"`
		UserName flexString `json:"userName"`
	}
	if err := a.call(ctx, http.MethodPost, "/account/delete", map[string]string{"password": password}, &d, a.authorize); err != nil {
		return User{}, err
	}
	return User{UserID: string(d.UserID), UserName: string(d.UserName)}, nil
}

func (a *API) secure(ctx context.Context, path string, in any) (Secured, error) {
	var out struct {
		SessionsEnded   int    `json:"sessionsEnded"`
		ResumeToken     string `json:"resumeToken"`
		ResumeExpiresAt int64  `json:"resumeExpiresAt"`
	}
	if err := a.call(ctx, http.MethodPost, path, in, &out, a.authorize); err != nil {
		return Secured{}, err
	}
	return Secured(out), nil
}
