package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/codes"
)

// Password is what harness users log in with.
const Password = "secret-pass"

// User is a logged-in SDK client whose events are recorded for assertions.
type User struct {
	*client.Client
	Name string
	ID   string
	*Recorder[client.Event]
}

// Register creates the account name on the cluster's route.
func (c *Cluster) Register(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := client.NewAPI(c.Route.URL, c.HTTP()).Register(ctx, name, Password)
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Code == codes.BadAccount {
		return "" // already registered
	}
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return u.UserID
}

// Connect registers name (if needed), logs it in through the route and
// connects it to the gateway the route chose. It is closed when the test ends.
func (c *Cluster) Connect(t testing.TB, name string, tune ...func(*client.Config)) *User {
	t.Helper()
	c.Register(t, name)
	cfg := client.Config{
		RouteURL:     c.Route.URL,
		UserName:     name,
		Password:     Password,
		ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond,
		EventBuffer:  4096,
	}
	if c.TLS != nil {
		cfg.TLS = c.TLS.ClientConfig()
	}
	for _, f := range tune {
		f(&cfg)
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatalf("client %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	u := &User{Client: cl, Name: name, ID: cl.Info().UserID, Recorder: Record(cl.Events())}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl.Close(ctx)
	})
	return u
}

// Recorder keeps everything read from a channel (client events, terminal
// lines), for waiting and counting. It is safe for concurrent use.
type Recorder[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{}
	closed bool
}

// Record drains ch into a new Recorder until the channel closes.
func Record[T any](ch <-chan T) *Recorder[T] {
	r := &Recorder[T]{notify: make(chan struct{})}
	go func() {
		for v := range ch {
			r.mu.Lock()
			r.items = append(r.items, v)
			r.wake()
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		r.wake()
		r.mu.Unlock()
	}()
	return r
}

func (r *Recorder[T]) wake() {
	close(r.notify)
	r.notify = make(chan struct{})
}

// Seen returns a copy of what was recorded so far.
func (r *Recorder[T]) Seen() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// Len is the number of items recorded so far.
func (r *Recorder[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// WaitFor waits until the items recorded from index `from` on contain one for
// which match is true, and returns its index. It fails the test after timeout.
func (r *Recorder[T]) WaitFor(t testing.TB, from int, timeout time.Duration, what string, match func(T) bool) int {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.items); i++ {
			if match(r.items[i]) {
				r.mu.Unlock()
				return i
			}
		}
		from = len(r.items)
		wait, closed := r.notify, r.closed
		r.mu.Unlock()
		if closed {
			t.Fatalf("stream closed while waiting for %s; got: %s", what, r.describe())
		}
		select {
		case <-wait:
		case <-deadline.C:
			t.Fatalf("no %s within %v; got: %s", what, timeout, r.describe())
		}
	}
}

func (r *Recorder[T]) describe() string {
	items := r.Seen()
	var b bytes.Buffer
	if len(items) > 20 {
		fmt.Fprintf(&b, "(last 20 of %d) ", len(items))
		items = items[len(items)-20:]
	}
	for _, v := range items {
		if e, ok := any(v).(client.Event); ok {
			describeEvent(&b, e)
			continue
		}
		fmt.Fprintf(&b, "%v | ", any(v))
	}
	return b.String()
}

func describeEvent(b *bytes.Buffer, e client.Event) {
	fmt.Fprintf(b, "[%v", e.Kind)
	switch {
	case e.Msg != nil:
		fmt.Fprintf(b, " %s->%s %q", e.Msg.From, e.Msg.To, e.Msg.Body)
	case e.Err != nil:
		fmt.Fprintf(b, " %d %s", e.Err.Code, e.Err.Text)
	case e.Receipt != nil:
		fmt.Fprintf(b, " %v %s", e.Receipt.Status, e.Receipt.ClientMsgId)
	}
	if e.Gateway != "" || e.Reason != "" {
		fmt.Fprintf(b, " %s %s", e.Gateway, e.Reason)
	}
	b.WriteString("] ")
}

// IsMessage matches a received message with this body.
func IsMessage(body string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg != nil && string(e.Msg.Body) == body
	}
}

// IsKind matches any event of kind k.
func IsKind(k client.EventKind) func(client.Event) bool {
	return func(e client.Event) bool { return e.Kind == k }
}

// Terminal is a cim-client process driven through its stdin and stdout, as
// a person or a script would use it.
type Terminal struct {
	Cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *Recorder[string]
	mu     sync.Mutex
	stdout []string
	done   chan struct{}
	stderr bytes.Buffer
}

// Terminal starts bin/cim-client for user name (registering it) with extra
// flags. It is killed when the test ends if still running.
func (c *Cluster) Terminal(t testing.TB, name string, extra ...string) *Terminal {
	t.Helper()
	args := []string{"--route", c.Route.URL, "--user", name, "--password", Password, "--register"}
	if c.TLS != nil {
		args = append(args, "--tls", "--ca", c.TLS.CAFile)
	}
	args = append(args, extra...)
	cmd := exec.Command(filepath.Join(c.Bin, "cim-client"), args...)
	cmd.Env = append(cmd.Environ(), "GORACE=halt_on_error=0", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	tm := &Terminal{Cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &tm.mu, w: &tm.stderr}
	var err error
	if tm.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cim-client: %v", err)
	}
	lines := make(chan string)
	tm.lines = Record(lines)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			tm.mu.Lock()
			tm.stdout = append(tm.stdout, sc.Text())
			tm.mu.Unlock()
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(tm.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-tm.done
		tm.mu.Lock()
		defer tm.mu.Unlock()
		if bytes.Contains(tm.stderr.Bytes(), []byte("WARNING: DATA RACE")) {
			t.Errorf("cim-client %s reported a data race:\n%s", name, tm.stderr.String())
		}
	})
	return tm
}

// Send writes one line to the client's stdin.
func (tm *Terminal) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(tm.stdin, line+"\n"); err != nil {
		t.Fatalf("write to cim-client: %v", err)
	}
}

// CloseStdin ends the client's input, as a finished pipe does.
func (tm *Terminal) CloseStdin() { tm.stdin.Close() }

// Expect waits for a stdout line (from line index `from`) matching re and
// returns its index and the line.
func (tm *Terminal) Expect(t testing.TB, from int, re string) (int, string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	i := tm.lines.WaitFor(t, from, 30*time.Second, "line matching "+re, rx.MatchString)
	return i, tm.lines.Seen()[i]
}

// Lines returns what the client printed so far.
func (tm *Terminal) Lines() []string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]string(nil), tm.stdout...)
}

// Wait waits for the process to exit and returns its exit code.
func (tm *Terminal) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-tm.done:
		return tm.Cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("cim-client did not exit within %v; stdout:\n%v", timeout, tm.Lines())
		return -1
	}
}

// Stderr returns what the client wrote to stderr.
func (tm *Terminal) Stderr() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// GetJSON GETs url and decodes the JSON answer into v, whatever the status.
func GetJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// PostJSON POSTs body as JSON and decodes the answer into v; it returns the
// HTTP status.
func PostJSON(url string, body, v any) (int, error) {
	return Call(http.MethodPost, url, nil, body, v)
}

// API calls the cluster's route API at path (with c.HTTP()); see Call.
func (c *Cluster) API(method, path string, header http.Header, body, v any) (int, error) {
	return call(c.HTTP(), method, c.Route.URL+path, header, body, v)
}

// Call sends body (JSON; a []byte is sent as is; nil sends nothing) with the
// given headers and decodes the answer into v (when not nil); it returns the
// HTTP status.
func Call(method, url string, header http.Header, body, v any) (int, error) {
	return call(httpClient, method, url, header, body, v)
}

func call(hc *http.Client, method, url string, header http.Header, body, v any) (int, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v == nil {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// HTTP is an HTTP client for the cluster's route API (trusting its test CA
// when it speaks TLS).
func (c *Cluster) HTTP() *http.Client {
	if c.TLS == nil {
		return httpClient
	}
	return &http.Client{Timeout: httpClient.Timeout, Transport: &http.Transport{TLSClientConfig: c.TLS.ClientConfig()}}
}

// Internal is the header of gateway <-> route calls (contract.Header).
func Internal() http.Header {
	return http.Header{http.CanonicalHeaderKey(contract.Header): {InternalSecret}}
}

// APIKey is the header of an app back-end's call.
func APIKey(key string) http.Header { return http.Header{"X-Api-Key": {key}} }

// Bearer is the header of a user's call with its access token.
func Bearer(accessToken string) http.Header {
	return http.Header{"Authorization": {"Bearer " + accessToken}}
}

// Envelope is the route's JSON answer.
type Envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}
