// Command cim-client is the terminal chat: it logs in through the route,
// keeps a connection to a gateway, prints what arrives on stdout and sends
// what is typed (or piped) on stdin. Type :help for the syntax.
//
// Exit codes: 0 after :q, end of input or SIGINT/SIGTERM; 1 when the login is
// refused for good or the session is kicked (reason on stderr); 2 for bad
// flags. Logs go to stderr, never into the chat on stdout.
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/term"
	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	xterm "golang.org/x/term"
)

// closeTimeout bounds the :q path (route /offLine and closing the link).
const closeTimeout = 5 * time.Second

// answerTimeout bounds how long quitting waits for the route's answers to
// messages just sent (RECEIPT or ERROR) without any of them coming, so that
// a piped script's last lines are not overtaken by its own log-off. While
// answers keep coming, or messages wait for their retry after a rate limit,
// it waits on, up to maxDrain.
const (
	answerTimeout = 5 * time.Second
	maxDrain      = time.Minute
)

// routeTimeout bounds one call to the route, as the SDK's own client does.
const routeTimeout = 10 * time.Second

// maxLine is the longest input line read; longer ones fail as too large.
const maxLine = 1 << 20

// historyPage is how many messages :his shows; statusCount how many :status
// lists.
const (
	historyPage = 20
	statusCount = 20
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	route, user, password string
	register              bool
	connectTimeout        time.Duration
	heartbeat, pong       time.Duration
	resend                time.Duration
	level                 slog.Level
	tls                   bool
	ca                    string
	remember              string // --remember: the file that keeps the login
	// tlsConf is what --tls and --ca make: nil when neither is given.
	tlsConf *tls.Config
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("cim-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.route, "route", "http://127.0.0.1:8080", "route base URL; several route replicas as a comma-separated list (logins take them in turn, a replica that cannot be reached is skipped)")
	fs.StringVar(&o.user, "user", "", "user name (or user id) to log in as")
	fs.StringVar(&o.password, "password", "", "password (CIM_PASSWORD; asked for, without echo, when missing and the input is a terminal)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 30*time.Second, "give up when the first login has not succeeded within this long (:q or end of input give up at once)")
	fs.BoolVar(&o.register, "register", false, "register the account first (a taken name is fine if the password logs in)")
	fs.DurationVar(&o.heartbeat, "heartbeat", client.DefaultHeartbeat, "send PING after this long without writing")
	fs.DurationVar(&o.pong, "pong-timeout", client.DefaultPongTimeout, "reconnect when the gateway shows no life this long after a PING")
	fs.DurationVar(&o.resend, "resend-timeout", client.DefaultResendTimeout, "send a message again when the route has not answered it this long (or asked to slow down); doubles per try")
	fs.BoolVar(&o.tls, "tls", false, "connect to the gateway with TLS (an https:// --route is TLS anyway)")
	fs.StringVar(&o.ca, "ca", "", "PEM file of the CA to trust for TLS (the gateway with --tls, an https:// --route) instead of the system's CAs")
	fs.StringVar(&o.remember, "remember", "", "keep the login in this file (mode 0600; it is a credential): the next start with it needs no password until the route's --resume-ttl after the last password login; :q keeps it, :logout logs off and removes it")
	level := fs.String("log-level", "warn", "log level: debug, info, warn or error (logs go to stderr)")
	if err := envflag.Parse(fs, args); err != nil {
		// fs already reported command-line mistakes; environment ones not.
		if strings.HasPrefix(err.Error(), envflag.Prefix) {
			fmt.Fprintf(stderr, "cim-client: %v\n", err)
		}
		return o, err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if o.user == "" {
		problems = append(problems, "--user is required")
	}

	if err := o.level.UnmarshalText([]byte(*level)); err != nil {
		problems = append(problems, fmt.Sprintf("--log-level %q: want debug, info, warn or error", *level))
	}
	if len(problems) > 0 {
		err := errors.New(strings.Join(problems, "; "))
		fmt.Fprintf(stderr, "cim-client: %v\n", err)
		fs.Usage()
		return o, err
	}
	conf, err := tlsConfig(o.tls, o.ca)
	if err != nil {
		fmt.Fprintf(stderr, "cim-client: %v\n", err)
		return o, err
	}
	o.tlsConf = conf
	return o, nil
}

// tlsConfig is the TLS configuration --tls and --ca ask for: nil for
// neither; RootCAs from the --ca file (which must hold at least one PEM
// certificate) or the system pool.
func tlsConfig(on bool, caFile string) (*tls.Config, error) {
	if !on && caFile == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// askPassword reads a password from the terminal without echo; tests
// replace it.
var askPassword = func(stdin io.Reader, stderr io.Writer) (string, bool, error) {
	f, ok := stdin.(*os.File)
	if !ok || !xterm.IsTerminal(int(f.Fd())) {
		return "", false, nil
	}
	fmt.Fprint(stderr, "password: ")
	b, err := xterm.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	return string(b), true, err
}

// run is the program; it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	saved := "" // the login --remember kept
	if o.remember != "" {
		if saved, err = loadRemembered(o.remember, o.route, o.user, time.Now()); err != nil {
			fmt.Fprintf(stderr, "cim-client: --remember: %v\n", err)
			return 2
		}
	}
	if o.password == "" && (saved == "" || o.register) {
		pw, asked, err := askPassword(stdin, stderr)
		switch {
		case !asked:
			fmt.Fprintln(stderr, "cim-client: --password is required (or CIM_PASSWORD; on a terminal it is asked for)")
			return 2
		case err != nil:
			fmt.Fprintf(stderr, "cim-client: reading the password: %v\n", err)
			return 2
		case pw == "":
			fmt.Fprintln(stderr, "cim-client: no password given")
			return 2
		}
		o.password = pw
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.level}))

	cfg := client.Config{
		RouteURL:      o.route,
		UserName:      o.user,
		Password:      o.password,
		Platform:      "terminal",
		Heartbeat:     o.heartbeat,
		PongTimeout:   o.pong,
		ResendTimeout: o.resend,
		Logger:        log,
		ResumeToken:   saved,
	}
	if o.remember != "" {
		cfg.OnResumeToken = keeper{path: o.remember, route: o.route, user: o.user, log: log}.save
	}
	switch {
	case o.tls:
		cfg.TLS = o.tlsConf // the gateway, and the route when https
	case o.tlsConf != nil:
		// --ca alone: trusted for an https:// route, the gateway stays TCP.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = o.tlsConf
		cfg.HTTPClient = &http.Client{Timeout: routeTimeout, Transport: tr}
		defer cfg.HTTPClient.CloseIdleConnections()
	}
	c, err := client.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cim-client: %v\n", err)
		return 2
	}
	p := term.NewPrinter(stdout, time.Local, c.Info)
	p.SetGroupLookup(c.Group)

	if o.register {
		u, err := c.API().Register(ctx, o.user, o.password)
		switch {
		case err == nil:
			p.Line(term.Registered(u))
		case client.CodeOf(err) == codes.BadAccount:
			log.Info("name taken, logging in", "user", o.user)
		default:
			fmt.Fprintf(stderr, "cim-client: register: %v\n", err)
			return 1
		}
	}
	quit := make(chan struct{})
	defer close(quit)
	lines := readLines(stdin, quit, log)
	early, err := start(ctx, c, lines, o.connectTimeout)
	if errors.Is(err, client.ErrResumeRefused) {
		// The client removed the file: the next start asks for the password.
		fmt.Fprintf(stderr, "cim-client: the remembered login is no longer good (logged off, or older than the route's --resume-ttl): start again to log in with the password (%v)\n", err)
		closeClient(c, log, false) // no session to log off; keep what --remember kept
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "cim-client: login failed: %v\n", err)
		closeClient(c, log, false) // no session to log off; keep what --remember kept
		return 1
	}

	reads := startReadMarker(c, log)
	kicked := make(chan string, 1)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for ev := range c.Events() {
			p.Event(ev)
			if ev.Kind == client.EventMessage && !ev.Outgoing { // never READ the user's own
				reads.shown(ev.Msg, c.Info().UserID)
			}
			if ev.Kind == client.EventKicked {
				select {
				case kicked <- ev.Reason:
				default:
				}
			}
		}
	}()

	// Before any command, so that :mute and the like apply to the list
	// read here rather than race with it.
	readMutes(ctx, c, log)

	exit := 0
	drain := true   // wait for answers to our sends before logging off
	logout := false // :logout, which --remember's :q is not
	do := func(line string) bool {
		cmd := term.Parse(line)
		logout = logout || cmd.Op == term.OpLogout
		return execute(ctx, c, p, cmd)
	}
	for _, line := range early {
		if do(line) {
			lines = nil // quit: read no more
			break
		}
	}
loop:
	for lines != nil {
		select {
		case line, ok := <-lines:
			if !ok || do(line) {
				break loop
			}
		case reason := <-kicked:
			fmt.Fprintf(stderr, "cim-client: kicked: %s\n", reason)
			exit, drain = 1, false
			break loop
		case <-ctx.Done():
			drain = false
			break loop
		}
	}
	if drain {
		if n := waitAnswers(p); n > 0 {
			log.Warn("quitting with messages the route has not answered", "count", n)
		}
	}
	reads.stop(drain)
	// With --remember only :logout logs off: quitting keeps the login.
	closeClient(c, log, o.remember == "" || logout)
	<-printed
	return exit
}

// errQuit: the user quit (or input ended) before the first login worked.
var errQuit = errors.New("gave up: quit before connecting")

// quitGrace is how long after it began the first login may still work
// once the user gave up (:q or end of input): piped input ends at once, and
// its lines (even a last :q) are meant for after the login.
var quitGrace = 5 * time.Second

// start runs the first login (which retries on its own) until it works,
// timeout passes, ctx ends, or the user gives up: :q (or :q!, :quit) or end
// of input, which end it at once once the login has been trying for
// quitGrace (before that, when quitGrace has passed). Lines typed meanwhile
// are returned, a :q among them too, to run once connected.
func start(ctx context.Context, c *client.Client, lines <-chan string, timeout time.Duration) ([]string, error) {
	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Start(sctx) }()
	var early []string
	var why error
	var giveUp <-chan time.Time
	gaveUp := false
	quit := func(reason error) {
		why, lines = reason, nil
		t := time.NewTimer(max(time.Until(began.Add(quitGrace)), 0))
		giveUp = t.C
	}
	for {
		select {
		case <-giveUp:
			gaveUp = true
			cancel()
		case err := <-done:
			switch {
			case err == nil:
				return early, nil
			case gaveUp:
				return nil, why
			case ctx.Err() != nil:
				return nil, errors.New("interrupted")
			case sctx.Err() != nil:
				return nil, fmt.Errorf("not connected within --connect-timeout %v: %w", timeout, err)
			}
			return nil, err
		case line, ok := <-lines:
			if !ok {
				quit(fmt.Errorf("%w (end of input)", errQuit))
				continue
			}
			early = append(early, line)
			if term.Parse(line).Op == term.OpQuit {
				quit(errQuit)
			}
		}
	}
}

// waitAnswers waits until every message sent got its answer and returns how
// many did not. It gives up after answerTimeout without any answer, unless
// a message waits for its retry after a rate limit, and after maxDrain in
// any case.
func waitAnswers(p *term.Printer) int {
	deadline := time.Now().Add(maxDrain)
	for {
		before := p.Unanswered()
		ctx, cancel := context.WithTimeout(context.Background(), min(answerTimeout, time.Until(deadline)))
		n := p.WaitAnswered(ctx)
		cancel()
		if n == 0 || !time.Now().Before(deadline) || (n >= before && p.Retrying() == 0) {
			return n
		}
	}
}

// closeClient ends c: Close, which logs off, or Disconnect, which keeps the
// login for --remember.
func closeClient(c *client.Client, log *slog.Logger, logoff bool) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	go func() {
		// Nobody reads events when Start failed; Close must not wait on them.
		for range c.Events() {
		}
	}()
	end := c.Disconnect
	if logoff {
		end = c.Close
	}
	if err := end(ctx); err != nil {
		log.Warn("close", "err", err)
	}
}

// readLines feeds stdin's lines to the returned channel and closes it at end
// of input. It stops early once quit is closed (a goroutine blocked reading a
// terminal ends with the process).
func readLines(r io.Reader, quit <-chan struct{}, log *slog.Logger) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), maxLine)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-quit:
				return
			}
		}
		if err := sc.Err(); err != nil {
			log.Warn("reading input", "err", err)
		}
	}()
	return lines
}

// send sends m, remembering it for the ✓ line (or the error) first.
func send(ctx context.Context, c *client.Client, p *term.Printer, m *cimpb.Msg) {
	sendTo(ctx, c, p, m, m.GetTo())
}

// sendTo is send with the label the lines about a private message give
// its recipient (a reply's names the user it answers, not the id it is
// sent to).
func sendTo(ctx context.Context, c *client.Client, p *term.Printer, m *cimpb.Msg, to string) {
	m.ClientMsgId = c.NewMsgID()
	if gid := m.GetGroup(); gid != "" {
		p.SendingGroup(m.ClientMsgId, gid, term.What(m))
	} else {
		p.Sending(m.ClientMsgId, to, term.What(m))
	}
	if err := c.SendMsg(ctx, m); err != nil {
		p.Forget(m.ClientMsgId)
		if ctx.Err() == nil {
			p.Line(term.Problem(err.Error()))
		}
	}
}

// execute runs one command; true means quit.
func execute(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) bool {
	switch cmd.Op {
	case term.OpQuit, term.OpLogout:
		return true
	case term.OpPrivate, term.OpBroadcast:
		m := &cimpb.Msg{Body: []byte(term.Emojify(cmd.Text)), Kind: cimpb.Kind_KIND_TEXT}
		if cmd.Op == term.OpPrivate {
			m.To = cmd.To
		} else {
			m.Broadcast = true
		}
		send(ctx, c, p, m)
	case term.OpFile:
		m, err := c.PrepareFile(ctx, cmd.To, cmd.Text)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			break
		}
		send(ctx, c, p, m)
	case term.OpSave:
		m, ok := p.File(cmd.N)
		if !ok {
			p.Line(term.Problem(fmt.Sprintf("no file %d", cmd.N)))
			break
		}
		dst, err := savePath(m.GetFile().GetName(), cmd.Text)
		if err == nil {
			err = c.SaveFile(ctx, m, dst)
		}
		if err != nil {
			p.Line(term.Problem(err.Error()))
			break
		}
		if abs, err := filepath.Abs(dst); err == nil {
			dst = abs
		}
		p.Line(term.Saved(safeName(m.GetFile().GetName()), m.GetFile().GetSize(), dst))
	case term.OpHistory:
		// The route reads a bounded part of the inbox per page: follow its
		// cursor for a rare keyword.
		page, err := c.HistoryFill(ctx, client.HistoryQuery{Peer: cmd.To, Group: cmd.Group, Keyword: cmd.Text}, historyPage)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			break
		}
		p.History(page)
	case term.OpGroupSend:
		// Parse refused more than client.MaxMentions.
		send(ctx, c, p, &cimpb.Msg{Group: cmd.Group, Body: []byte(term.Emojify(cmd.Text)), Kind: cimpb.Kind_KIND_TEXT,
			Mentions: term.Mentions(cmd.Text)})
	case term.OpGroups, term.OpGroupMembers, term.OpGroupCreate, term.OpGroupJoin, term.OpGroupInvite,
		term.OpGroupLeave, term.OpGroupKick, term.OpGroupRename, term.OpGroupDissolve, term.OpGroupOwner:
		groupCommand(ctx, c, p, cmd)
	case term.OpStatus:
		p.Status(recentWithCounts(ctx, c))
	case term.OpOnline:
		users, err := c.OnlineUsers(ctx)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			break
		}
		p.Line(term.Online(users))
	case term.OpPrefix:
		users, err := c.OnlineUsers(ctx)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			break
		}
		p.Line(term.OnlineWithPrefix(users, cmd.Text))
	case term.OpEmoji:
		for _, l := range term.EmojiList(cmd.N) {
			p.Line(l)
		}
	case term.OpDelay:
		d, err := c.API().Delay(ctx, cmd.To, term.Emojify(cmd.Text), time.Duration(cmd.N)*time.Second)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			break
		}
		p.Line(term.Delayed(cmd.To, d.DueAt))
	case term.OpInfo:
		p.Line(term.InfoLine(c.Info()))
	case term.OpHelp:
		for _, l := range term.Help() {
			p.Line(l)
		}
	case term.OpWatch:
		// The snapshot is printed as its event arrives (and again after a
		// reconnect).
		if _, err := c.Subscribe(ctx, cmd.Users(), cmd.Groups()); err != nil {
			p.Line(term.Problem(err.Error()))
		}
	case term.OpTyping:
		var err error
		if cmd.Group != "" {
			err = c.TypingInGroup(ctx, cmd.Group, cmd.Open)
		} else {
			err = c.Typing(ctx, cmd.To, cmd.Open)
		}
		if err != nil {
			p.Line(term.Problem(err.Error()))
		}
	case term.OpRecall, term.OpEdit:
		change(ctx, c, p, cmd)
	case term.OpDelete:
		deleteListed(ctx, c, p, cmd.N)
	case term.OpReply:
		reply(ctx, c, p, cmd)
	case term.OpReact:
		react(ctx, c, p, cmd)
	case term.OpBlock, term.OpUnblock, term.OpBlocks:
		blockCommand(ctx, c, p, cmd)
	case term.OpMute, term.OpUnmute, term.OpMutes:
		muteCommand(ctx, c, p, cmd)
	case term.OpInvalid:
		p.Line(term.Problem(cmd.Text))
	}
	return false
}

// recentWithCounts is what :status lists: the recent messages, group ones
// with the member counts the route stored (live receipts missed while
// away are not repeated). When the route cannot say, the live counts stand.
func recentWithCounts(ctx context.Context, c *client.Client) []client.SentMessage {
	recent := c.Recent(statusCount)
	var ids []string
	for _, s := range recent {
		if s.Group != "" && s.MsgID != "" {
			ids = append(ids, s.MsgID)
		}
	}
	if len(ids) == 0 {
		return recent
	}
	if _, err := c.GroupReceipts(ctx, ids...); err != nil {
		return recent
	}
	return c.Recent(statusCount)
}

// groupCommand runs a group command other than :g, printing its outcome.
func groupCommand(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) {
	gid := cmd.Group
	var line string
	var err error
	switch cmd.Op {
	case term.OpGroups:
		var gs []client.Group
		if gs, err = c.Groups(ctx); err != nil {
			p.Line(term.Problem(err.Error()))
			return
		}
		for _, g := range gs {
			p.RememberGroup(g)
		}
		line = term.Groups(gs, c.Info().UserID)
	case term.OpGroupMembers:
		var users []client.User
		if users, err = c.GroupMembers(ctx, gid); err == nil {
			line = term.Members(p.GroupName(gid), users)
		}
	case term.OpGroupCreate:
		var g client.Group
		if g, err = c.CreateGroup(ctx, cmd.Text, cmd.Open); err == nil {
			g.Name = cmp.Or(g.Name, cmd.Text)
			p.RememberGroup(g)
			line = term.GroupCreated(g)
		}
	case term.OpGroupJoin:
		var g client.Group
		if g, err = c.JoinGroup(ctx, gid); err == nil {
			g.ID = cmp.Or(g.ID, gid)
			p.RememberGroup(g)
			line = term.GroupJoined(g)
		}
	case term.OpGroupInvite:
		label := p.GroupName(gid)
		var ids []string
		if ids, err = c.InviteToGroup(ctx, gid, cmd.Users()...); err == nil {
			line = term.Invited(label, cmd.Users(), ids)
		}
	case term.OpGroupLeave:
		label := p.GroupName(gid)
		if err = c.LeaveGroup(ctx, gid); err == nil {
			line = term.GroupLeft(label, gid)
		} else if client.CodeOf(err) == codes.Forbidden {
			// Refused to a non-member, and to the owner: say which.
			if g, gerr := c.Group(ctx, gid); gerr == nil && g.Owner != "" && g.Owner == c.Info().UserID {
				p.Line(term.LeaveOwner(gid))
				return
			}
		}
	case term.OpGroupKick:
		label := p.GroupName(gid)
		if err = c.KickFromGroup(ctx, gid, cmd.To); err == nil {
			line = term.GroupKicked(label, cmd.To)
		}
	case term.OpGroupRename:
		var g client.Group
		if g, err = c.RenameGroup(ctx, gid, cmd.Text); err == nil {
			g.ID, g.Name = cmp.Or(g.ID, gid), cmp.Or(g.Name, cmd.Text)
			p.RememberGroup(g)
			line = term.GroupRenamed(g)
		}
	case term.OpGroupDissolve:
		label := p.GroupName(gid)
		if err = c.DissolveGroup(ctx, gid); err == nil {
			line = term.GroupDissolved(label, gid)
		}
	case term.OpGroupOwner:
		var g client.Group
		if g, err = c.TransferGroup(ctx, gid, cmd.To); err == nil {
			g.ID = cmp.Or(g.ID, gid)
			p.RememberGroup(g)
			line = term.GroupOwned(p.GroupName(gid), gid, cmd.To)
		} else if client.CodeOf(err) == codes.Forbidden {
			// Refused to a non-owner, and when the user named is no
			// member: say which.
			if g, gerr := c.Group(ctx, gid); gerr == nil && g.Owner != "" && g.Owner == c.Info().UserID {
				p.Line(term.NotGroupMember(gid, cmd.To))
				return
			}
		}
	}
	if err != nil {
		line = term.GroupProblem(cmd, err)
	}
	p.Line(line)
}
