package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "auth-callback-secret-16+"

// userSystem is an application's own user service as the HTTP
// authenticator sees it: it checks X-CIM-Auth, keeps names
// case-insensitively and answers with the canonical spelling.
type userSystem struct {
	mu      sync.Mutex
	calls   int
	secrets []string // X-CIM-Auth of each call
	release chan struct{}
}

var testUsers = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}

func (u *userSystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.calls++
	u.secrets = append(u.secrets, r.Header.Get("X-CIM-Auth"))
	u.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if r.Header.Get("X-CIM-Auth") != testSecret {
		http.Error(w, "who are you", http.StatusForbidden)
		return
	}
	var req struct{ UserName, Password string }
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Names steering the server into the failure modes under test.
	switch req.UserName {
	case "crash":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case "slow":
		select {
		case <-r.Context().Done():
		case <-u.release:
		}
		return
	case "moved":
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
		return
	case "garbled":
		w.Write([]byte(`{"userName":`))
		return
	case "numeric":
		w.Write([]byte(`{"userName":42}`))
		return
	case "huge":
		w.Write([]byte(`{"userName":"huge","pad":"` + strings.Repeat("x", 70<<10) + `"}`))
		return
	case "silent":
		w.WriteHeader(http.StatusOK) // accepted, no body: the given name
		return
	}
	canonical := strings.ToLower(req.UserName)
	if pw, ok := testUsers[canonical]; !ok || pw != req.Password {
		http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"userName": canonical})
}

func (u *userSystem) seen() (int, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls, append([]string(nil), u.secrets...)
}

func startUserSystem(t *testing.T) (*userSystem, *httptest.Server) {
	t.Helper()
	u := &userSystem{release: make(chan struct{})}
	srv := httptest.NewServer(u)
	t.Cleanup(func() { close(u.release); srv.Close() })
	return u, srv
}

func newHTTP(t *testing.T, cfg HTTPConfig) *HTTP {
	t.Helper()
	h, err := NewHTTP(cfg)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	return h
}

func TestHTTPAuthenticate(t *testing.T) {
	u, srv := startUserSystem(t)
	h := newHTTP(t, HTTPConfig{URL: srv.URL + "/auth", Secret: testSecret, Timeout: 2 * time.Second})
	if h.Name() != "http" {
		t.Errorf("Name = %q", h.Name())
	}
	for _, c := range []struct {
		name, password string
		want           string // identity, or "" for an error
		err            error
		errText        string
	}{
		{"alice", "alice-pw", "alice", nil, ""},
		{"bob", "bob-pw", "bob", nil, ""},
		{"ALICE", "alice-pw", "alice", nil, ""}, // canonical name from the answer
		{"silent", "x", "silent", nil, ""},      // 200 without a body
		{"alice", "bob-pw", "", ErrBadCredentials, ""},
		{"carol", "alice-pw", "", ErrBadCredentials, ""},
		{"crash", "x", "", ErrUnavailable, "500"},
		{"moved", "x", "", ErrUnavailable, "302"},
		{"garbled", "x", "", ErrUnavailable, "bad JSON"},
		{"numeric", "x", "", ErrUnavailable, "bad JSON"},
		{"huge", "x", "", ErrUnavailable, "larger than"},
	} {
		id, err := h.Authenticate(context.Background(), c.name, c.password)
		switch {
		case c.err == nil && (err != nil || id.Name != c.want):
			t.Errorf("%s/%s: %+v, %v; want %q", c.name, c.password, id, err, c.want)
		case c.err != nil && (!errors.Is(err, c.err) || id != Identity{} || !strings.Contains(err.Error(), c.errText)):
			t.Errorf("%s/%s: %+v, %v; want %v mentioning %q", c.name, c.password, id, err, c.err, c.errText)
		}
	}
	_, secrets := u.seen()
	for _, s := range secrets {
		if s != testSecret {
			t.Fatalf("X-CIM-Auth sent as %q, want the secret", s)
		}
	}
}

func TestHTTPEmptyPasswordNotSent(t *testing.T) {
	u, srv := startUserSystem(t)
	h := newHTTP(t, HTTPConfig{URL: srv.URL, Secret: testSecret})
	for _, c := range [][2]string{{"alice", ""}, {"", "alice-pw"}} {
		if _, err := h.Authenticate(context.Background(), c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%q/%q: %v, want ErrBadCredentials", c[0], c[1], err)
		}
	}
	if calls, _ := u.seen(); calls != 0 {
		t.Errorf("the user system was asked %d times", calls)
	}
}

func TestHTTPSecret(t *testing.T) {
	u, srv := startUserSystem(t)
	// The user system refuses callers without its secret (403).
	for _, secret := range []string{"", "not-the-secret-at-all"} {
		h := newHTTP(t, HTTPConfig{URL: srv.URL, Secret: secret})
		if _, err := h.Authenticate(context.Background(), "alice", "alice-pw"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("secret %q: %v, want ErrBadCredentials (403)", secret, err)
		}
	}
	_, secrets := u.seen()
	if len(secrets) != 2 || secrets[0] != "" || secrets[1] != "not-the-secret-at-all" {
		t.Errorf("X-CIM-Auth seen: %q; want none, then the configured one", secrets)
	}
}

func TestHTTPTimeout(t *testing.T) {
	_, srv := startUserSystem(t)
	h := newHTTP(t, HTTPConfig{URL: srv.URL, Secret: testSecret, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := h.Authenticate(context.Background(), "slow", "x")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("slow user system: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v, want about 200ms", d)
	}

	// The caller's own deadline counts as well.
	h = newHTTP(t, HTTPConfig{URL: srv.URL, Secret: testSecret, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.Authenticate(ctx, "slow", "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("caller deadline: %v, want ErrUnavailable", err)
	}
}

func TestHTTPUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	h := newHTTP(t, HTTPConfig{URL: url, Timeout: time.Second})
	if _, err := h.Authenticate(context.Background(), "alice", "alice-pw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("closed server: %v, want ErrUnavailable", err)
	}
}

func TestHTTPNoPasswordInErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	h := newHTTP(t, HTTPConfig{URL: strings.Replace(srv.URL, "http://", "http://svc:url-password@", 1), Secret: testSecret})
	_, err := h.Authenticate(context.Background(), "alice", "alice-secret-pw")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v, want ErrUnavailable naming the status", err)
	}
	for _, secret := range []string{"alice-secret-pw", "url-password", testSecret} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
}

func TestNewHTTPChecksURL(t *testing.T) {
	for _, bad := range []string{"", "localhost:8080", "ftp://host/auth", "http://", "https:///auth", "http://host/%zz"} {
		if _, err := NewHTTP(HTTPConfig{URL: bad}); err == nil {
			t.Errorf("NewHTTP(%q) accepted", bad)
		}
	}
	for _, good := range []string{"http://127.0.0.1:8080/auth", "https://users.example.com/api/check?v=1"} {
		if _, err := NewHTTP(HTTPConfig{URL: good}); err != nil {
			t.Errorf("NewHTTP(%q): %v", good, err)
		}
	}
}
