// Command cimctl is gocim's operator tool: it speaks the route's admin API
// (an API key with the admin scope) to list who is online and the live
// gateways with their load, kick, ban and unban users, reset passwords,
// delete accounts with their data and drain gateways. The route logs every
// action with the key's name.
//
//	cimctl --route URL --key KEY <command> [args]
//
// --route and --key also come from CIM_ROUTE and CIM_API_KEY. It prints
// text for a person, or the API's JSON data with --json. Exit status: 0
// done, 1 refused or failed, 2 bad usage.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/routeapi"
)

const usage = `usage: cimctl [--route URL] [--key KEY] [--json] <command> [args]

commands:
  online                          users online now
  gateways                        live gateways with their connections and users
  kick USER [--session S] [--device SLOT]
                                  end a user's sessions (or one) now
  ban USER [--reason R] [--for DURATION | --until RFC3339]
                                  ban a user (kicked now, no login until unbanned)
  unban USER                      lift a ban
  password USER [NEW]             reset a password (generated and shown without NEW)
  delete USER --yes               delete an account and all its data
  drain GATEWAY                   make a gateway move its clients off and leave

USER is a user id or name (a device is a user too); GATEWAY an id as
"cimctl gateways" lists it (host:tcpPort:httpPort).

flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli is one invocation.
type cli struct {
	route  string
	key    string
	json   bool
	client *http.Client
	out    io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cimctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &cli{out: stdout, client: &http.Client{Timeout: 30 * time.Second}}
	var key string
	fs.StringVar(&c.route, "route", "http://127.0.0.1:8080", "the route's public URL")
	fs.StringVar(&c.key, "api-key", "", "an API key with the admin scope")
	fs.StringVar(&key, "key", "", "the same as --api-key")
	fs.BoolVar(&c.json, "json", false, "print the API's JSON data instead of text")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "cimctl: %v\n", err)
		return 2
	}
	if key != "" {
		c.key = key
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	if c.key == "" {
		fmt.Fprintln(stderr, "cimctl: no API key: give --key or set CIM_API_KEY (a key with the admin scope)")
		return 2
	}
	c.route = strings.TrimRight(c.route, "/")
	err := c.command(ctx, rest[0], rest[1:])
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cimctl %s: %v\n", rest[0], err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "cimctl: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a command used wrongly (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// parse parses a command's flags, which may come before or after its
// arguments, and checks the number of arguments.
func (c *cli) parse(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < min || len(pos) > max {
		return nil, usagef("want %s", what)
	}
	return pos, nil
}

func (c *cli) command(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	switch name {
	case "online":
		if _, err := c.parse(fs, args, 0, 0, "no arguments"); err != nil {
			return err
		}
		return c.online(ctx)
	case "gateways":
		if _, err := c.parse(fs, args, 0, 0, "no arguments"); err != nil {
			return err
		}
		return c.gateways(ctx)
	case "kick":
		session := fs.String("session", "", "only this session")
		device := fs.String("device", "", "only the session in this device slot")
		pos, err := c.parse(fs, args, 1, 1, "USER")
		if err != nil {
			return err
		}
		return c.kick(ctx, pos[0], *session, *device)
	case "ban":
		reason := fs.String("reason", "", "why (shown to the user at login)")
		dur := fs.Duration("for", 0, "ban for this long (default: for good)")
		until := fs.String("until", "", "ban until this time (RFC 3339)")
		pos, err := c.parse(fs, args, 1, 1, "USER")
		if err != nil {
			return err
		}
		end := *until
		switch {
		case *dur < 0:
			return usagef("--for must be positive")
		case *dur > 0 && end != "":
			return usagef("give --for or --until, not both")
		case *dur > 0:
			end = time.Now().Add(*dur).UTC().Format(time.RFC3339)
		}
		return c.ban(ctx, pos[0], *reason, end)
	case "unban":
		pos, err := c.parse(fs, args, 1, 1, "USER")
		if err != nil {
			return err
		}
		return c.unban(ctx, pos[0])
	case "password":
		pos, err := c.parse(fs, args, 1, 2, "USER [NEW]")
		if err != nil {
			return err
		}
		pw := ""
		if len(pos) == 2 {
			pw = pos[1]
		}
		return c.password(ctx, pos[0], pw)
	case "delete":
		yes := fs.Bool("yes", false, "really delete")
		pos, err := c.parse(fs, args, 1, 1, "USER --yes")
		if err != nil {
			return err
		}
		if !*yes {
			return usagef("deleting %s removes the account and all its data for good: add --yes", pos[0])
		}
		return c.delete(ctx, pos[0])
	case "drain":
		pos, err := c.parse(fs, args, 1, 1, "GATEWAY")
		if err != nil {
			return err
		}
		return c.drain(ctx, pos[0])
	}
	return usagef("unknown command (want online, gateways, kick, ban, unban, password, delete or drain)")
}

// apiError is a refusal from the route.
type apiError struct {
	status int
	code   codes.Code
	msg    string
}

func (e *apiError) Error() string {
	switch {
	case e.code == codes.Unauthorized:
		return "the route refused the API key (" + e.msg + ")"
	case e.code == codes.Forbidden && strings.Contains(e.msg, "scope"):
		return "the API key may not do this: it needs the admin scope (" + e.msg + ")"
	case e.code == codes.BadAccount:
		return "no such user (" + e.msg + ")"
	}
	return fmt.Sprintf("the route answered HTTP %d, code %d: %s", e.status, e.code, e.msg)
}

// call sends a request to the route and decodes the envelope's data into
// v (nil: ignored); raw is the data as sent.
func (c *cli) call(ctx context.Context, method, path string, body, v any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.route+path, rd)
	if err != nil {
		return nil, fmt.Errorf("bad --route %q: %v", c.route, err)
	}
	req.Header.Set("X-API-Key", c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the route at %s: %v", c.route, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the route's answer: %v", err)
	}
	var env struct {
		Code    codes.Code      `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Code == 0 {
		return nil, fmt.Errorf("%s does not answer like a gocim route (HTTP %d): %.200s", c.route, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if env.Code != codes.OK {
		return nil, &apiError{status: resp.StatusCode, code: env.Code, msg: env.Message}
	}
	if v != nil {
		if err := json.Unmarshal(env.Data, v); err != nil {
			return nil, fmt.Errorf("unexpected answer from the route: %v", err)
		}
	}
	return env.Data, nil
}

// printJSON prints data indented, when --json.
func (c *cli) printJSON(data json.RawMessage) bool {
	if !c.json {
		return false
	}
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		b.Reset()
		b.Write(data)
	}
	fmt.Fprintln(c.out, b.String())
	return true
}

func userPath(user string) string { return "/admin/users/" + url.PathEscape(user) }

func (c *cli) online(ctx context.Context) error {
	var users []routeapi.User
	raw, err := c.call(ctx, http.MethodGet, "/onlineUser", nil, &users)
	if err != nil || c.printJSON(raw) {
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\n", u.UserID, u.UserName)
	}
	tw.Flush()
	fmt.Fprintf(c.out, "%d online\n", len(users))
	return nil
}

// gateway is an entry of GET /admin/gateways.
type gateway struct {
	ID          string `json:"id"`
	WSURL       string `json:"wsUrl"`
	Healthy     bool   `json:"healthy"`
	Connections int    `json:"connections"`
	Users       int    `json:"users"`
	Error       string `json:"error"`
}

func (c *cli) gateways(ctx context.Context) error {
	var gws []gateway
	raw, err := c.call(ctx, http.MethodGet, "/admin/gateways", nil, &gws)
	if err != nil || c.printJSON(raw) {
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tHEALTHY\tCONNECTIONS\tUSERS\tWEBSOCKET")
	conns, users := 0, 0
	for _, g := range gws {
		n := fmt.Sprint(g.Connections)
		if g.Connections < 0 {
			n = "? (" + g.Error + ")"
		} else {
			conns += g.Connections
		}
		users += g.Users
		ws := g.WSURL
		if ws == "" {
			ws = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", g.ID, yesNo(g.Healthy), n, g.Users, ws)
	}
	tw.Flush()
	fmt.Fprintf(c.out, "%d gateways, %d connections, %d users\n", len(gws), conns, users)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// userResult is the answer of the user actions.
type userResult struct {
	UserID    string `json:"userId"`
	UserName  string `json:"userName"`
	Kicked    int    `json:"kicked"`
	WasBanned bool   `json:"wasBanned"`
	Password  string `json:"password"`
	Reason    string `json:"reason"`
	Until     int64  `json:"until"`
}

func (u userResult) String() string { return fmt.Sprintf("%s (id %s)", u.UserName, u.UserID) }

func (c *cli) kick(ctx context.Context, user, session, device string) error {
	q := url.Values{}
	if session != "" {
		q.Set("session", session)
	}
	if device != "" {
		q.Set("device", device)
	}
	path := userPath(user) + "/kick"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var u userResult
	raw, err := c.call(ctx, http.MethodPost, path, nil, &u)
	if err != nil || c.printJSON(raw) {
		return err
	}
	fmt.Fprintf(c.out, "kicked %s: %d session(s) ended\n", u, u.Kicked)
	return nil
}

func (c *cli) ban(ctx context.Context, user, reason, until string) error {
	body := map[string]string{}
	if reason != "" {
		body["reason"] = reason
	}
	if until != "" {
		body["until"] = until
	}
	var u userResult
	raw, err := c.call(ctx, http.MethodPost, userPath(user)+"/ban", body, &u)
	if err != nil || c.printJSON(raw) {
		return err
	}
	how := "for good"
	if u.Until > 0 {
		how = "until " + time.UnixMilli(u.Until).UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(c.out, "banned %s %s", u, how)
	if u.Reason != "" {
		fmt.Fprintf(c.out, ": %s", u.Reason)
	}
	fmt.Fprintln(c.out)
	return nil
}

func (c *cli) unban(ctx context.Context, user string) error {
	var u userResult
	raw, err := c.call(ctx, http.MethodPost, userPath(user)+"/unban", nil, &u)
	if err != nil || c.printJSON(raw) {
		return err
	}
	if u.WasBanned {
		fmt.Fprintf(c.out, "unbanned %s\n", u)
	} else {
		fmt.Fprintf(c.out, "%s was not banned\n", u)
	}
	return nil
}

func (c *cli) password(ctx context.Context, user, pw string) error {
	var body any
	if pw != "" {
		body = map[string]string{"password": pw}
	}
	var u userResult
	raw, err := c.call(ctx, http.MethodPost, userPath(user)+"/password", body, &u)
	if err != nil || c.printJSON(raw) {
		return err
	}
	fmt.Fprintf(c.out, "password of %s reset; its sessions ended\n", u)
	if u.Password != "" {
		fmt.Fprintf(c.out, "new password: %s\n", u.Password)
	}
	return nil
}

func (c *cli) delete(ctx context.Context, user string) error {
	var u userResult
	raw, err := c.call(ctx, http.MethodDelete, userPath(user), nil, &u)
	if err != nil || c.printJSON(raw) {
		return err
	}
	fmt.Fprintf(c.out, "deleted %s and its data\n", u)
	return nil
}

func (c *cli) drain(ctx context.Context, gw string) error {
	var d struct {
		Gateway     string `json:"gateway"`
		Connections int    `json:"connections"`
		Already     bool   `json:"already"`
	}
	raw, err := c.call(ctx, http.MethodPost, "/admin/gateways/"+url.PathEscape(gw)+"/drain", nil, &d)
	if err != nil || c.printJSON(raw) {
		return err
	}
	if d.Already {
		fmt.Fprintf(c.out, "gateway %s was already draining\n", d.Gateway)
	} else {
		fmt.Fprintf(c.out, "gateway %s draining: %d connection(s) moving off\n", d.Gateway, d.Connections)
	}
	return nil
}
