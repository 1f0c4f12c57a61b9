package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/codes"
)

// TestLoginByIDAndNameShareABucket: guessing a password by id and by name
// (in any case) draws on one bucket per account.
func TestLoginByIDAndNameShareABucket(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *router.Config) {
		c.LoginRate, c.LoginBurst = 0.001, 4
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	e.register("alice") // one attempt of alice's bucket
	st, a, _ := e.call("POST", e.url, "/login", `{"userName":"alice","password":"password1"}`, hdr{"X-Forwarded-For": "10.0.0.9"})
	var d struct {
		UserID string `json:"userId"`
	}
	if st != 200 || json.Unmarshal(a.Data, &d) != nil || d.UserID == "" {
		t.Fatalf("login: HTTP %d %+v", st, a)
	}
	attempts := []string{
		fmt.Sprintf(`{"userId":%s,"password":"wrong-guess"}`, d.UserID),
		`{"userName":"ALICE","password":"wrong-guess"}`,
	}
	for i, body := range attempts { // 3 and 4 of 4, each from a new address
		if st, a, _ := e.call("POST", e.url, "/login", body, hdr{"X-Forwarded-For": fmt.Sprintf("10.0.1.%d", i)}); st != 401 || a.Code != codes.BadAccount {
			t.Fatalf("attempt %d: HTTP %d code %d, want 401", i+3, st, a.Code)
		}
	}
	for i, body := range attempts {
		if st, a, _ := e.call("POST", e.url, "/login", body, hdr{"X-Forwarded-For": fmt.Sprintf("10.0.2.%d", i)}); st != 429 || a.Code != codes.RateLimited {
			t.Fatalf("over the account's burst (%s): HTTP %d code %d, want 429/4291", body, st, a.Code)
		}
	}
}

// TestRegistrationBudget: registrations from many addresses draw on one
// server-wide bucket too.
func TestRegistrationBudget(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *router.Config) {
		c.RegisterRate, c.RegisterBurst = 0.001, 2
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	for i, want := range []int{200, 200, 429} {
		body := fmt.Sprintf(`{"userName":"user%d","password":"password1"}`, i)
		st, a, hd := e.call("POST", e.url, "/registerAccount", body, hdr{"X-Forwarded-For": fmt.Sprintf("10.0.0.%d", i)})
		if st != want || (want == 429 && (a.Code != codes.RateLimited || hd.Get("Retry-After") == "")) {
			t.Fatalf("registration %d: HTTP %d code %d, want %d", i+1, st, a.Code, want)
		}
	}
}

// TestProfileLongerThanWriteTimeout: a CPU profile may take as long as the
// internal server's write timeout (net/http/pprof extends the deadline).
func TestProfileLongerThanWriteTimeout(t *testing.T) {
	cfg := Config{Service: fakeService{}, Logger: quiet, InternalSecrets: []string{internalSecret}, Pprof: true,
		WriteTimeout: time.Second}
	srv := httptest.NewUnstartedServer(NewInternal(cfg))
	srv.Config.WriteTimeout = cfg.WriteTimeout
	srv.Start()
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/debug/pprof/profile?seconds=1", nil)
	req.Header.Set(contract.Header, internalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("profile of 1s with a 1s write timeout: HTTP %d, %d bytes, %v: %.100s", resp.StatusCode, len(body), err, body)
	}
}
