package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gocim/gocim/internal/backoff"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

// Info says who the client is logged in as and where.
type Info struct {
	UserID    string
	UserName  string
	SessionID string
	Gateway   string
	Connected bool
}

// Client keeps one user's connection to the cluster. Create it with New,
// connect with Start, end it with Close.
type Client struct {
	cfg     Config
	api     *API
	log     *slog.Logger
	ownHTTP *http.Client // private HTTP client whose idle conns Close releases
	ids     *msgIDs
	inbox   *inbox
	tl      *timelines // large groups' timelines (timeline.go)
	shown   *shownSet  // msgIds of the messages shown lately
	acks    *acks
	out     *outbox
	pres    presence // subscription and states (presence.go)
	muted   muteList // the muted conversations as last read (mutes.go)
	events  chan Event
	// wake pokes the control loop (capacity 1).
	wake chan struct{}

	// life ends when Close has sent /offLine: every goroutine and every
	// blocking call inside the client watches it.
	life   context.Context
	cancel context.CancelFunc
	// wg tracks Start while it runs and the supervisor; the supervisor waits
	// for its links' goroutines.
	wg sync.WaitGroup

	mu      sync.Mutex
	started bool
	closing bool
	stopErr error // why sends fail for good: ErrStopped…, ErrClosed
	cur     *link // nil while not connected
	// open: cur takes new sends. A new link first gets the replay of
	// messages still waiting for an answer, so that they keep their order.
	open    bool
	changed chan struct{} // closed and replaced whenever cur, open or stopErr changes
	syncOn  *link         // the reader asked for a SYNC on this link
	info    Info
	closed  chan struct{} // closed when the first Close has finished
	// resume is the last login's resume token: the next login uses it
	// instead of the password ("": none, or refused).
	resume string
	// password logs in (Config.Password, until ChangePassword).
	password string
	// resumeMu keeps Config.OnResumeToken's calls one at a time (logins,
	// ChangePassword and Close may each hand out a token).
	resumeMu sync.Mutex
}

// New checks cfg and returns a Client that is not yet connected.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "cim-client", "user", cfg.UserName),
		ids:      newMsgIDs(),
		inbox:    newInbox(defaultInboxBuffer).waitForGaps(cfg.GapWait),
		tl:       newTimelines(defaultInboxBuffer, cfg.GroupAckDelay, cfg.AckEvery).waitForGaps(cfg.GroupGapWait).spreadAcks(ackSpread),
		shown:    newShownSet(shownKept),
		acks:     &acks{delay: cfg.AckDelay, interval: max(cfg.AckInterval, 0), every: cfg.AckEvery, spread: ackSpread},
		out:      newOutbox(cfg.ResendTimeout, cfg.ResendMax).keep(cfg.SentKept),
		events:   make(chan Event, cfg.EventBuffer),
		wake:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
		closed:   make(chan struct{}),
		resume:   cfg.ResumeToken,
		password: cfg.Password,
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		}
		hc = &http.Client{Timeout: defaultHTTPTimeout, Transport: tr}
		c.ownHTTP = hc
	}
	c.api = NewAPI(strings.Join(cfg.routes(), ","), hc)
	c.api.Platform = cfg.Platform
	c.life, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// API returns the route API client the Client uses.
func (c *Client) API() *API { return c.api }

// Events delivers what happens to the client, in order. It is closed after
// EventClosed.
func (c *Client) Events() <-chan Event { return c.events }

// Info returns the current identity and connection state.
func (c *Client) Info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// OnlineUsers asks the route who is online: the first page, by id, of at
// most 1000 (API.OnlineUsersAfter goes on).
func (c *Client) OnlineUsers(ctx context.Context) ([]User, error) {
	return c.api.OnlineUsers(ctx)
}

// OnlineUsersAfter is API.OnlineUsersAfter as this client's user.
func (c *Client) OnlineUsersAfter(ctx context.Context, after string, limit int) ([]User, error) {
	return c.api.OnlineUsersAfter(ctx, after, limit)
}

// NewMsgID returns a fresh client_msg_id, for callers that want to know the
// id before SendMsg.
func (c *Client) NewMsgID() string { return c.ids.next() }

// Start logs in through the route, connects to the gateway it names and
// waits for LOGIN_ACK. It returns the error of an attempt that failed for a
// permanent reason (*APIError with codes.BadAccount, codes.RepeatLogin or
// codes.BadArgument; ErrResumeRefused; *GatewayError with
// codes.Unauthorized; a KICK; a TLS certificate that does not verify, or a
// gateway not speaking TLS) and
// retries transient failures (route unreachable, codes.NoServer, gateway
// unreachable) with backoff until ctx ends. After a nil return the client
// keeps itself connected in the background until Close; ctx only bounds
// Start.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closing:
		c.mu.Unlock()
		return ErrClosed
	case c.started:
		c.mu.Unlock()
		return ErrStarted
	}
	c.started = true
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.life, cancel)()

	l, err := c.firstLink(ctx)
	if err == nil && !c.adopt(l, true) {
		l.close()
		err = ErrClosed
	}
	if err != nil {
		c.mu.Lock()
		c.started = false
		c.mu.Unlock()
		return err
	}
	c.emit(Event{Kind: EventConnected, Gateway: l.gateway})
	go c.supervise(l)
	go c.control()
	return nil
}

func (c *Client) firstLink(ctx context.Context) (*link, error) {
	bo := newBackoff(c.cfg.ReconnectMin, c.cfg.ReconnectMax)
	var last error // the last failure not caused by ctx ending
	for {
		l, err := c.connect(ctx)
		if err == nil {
			return l, nil
		}
		if c.life.Err() != nil {
			return nil, ErrClosed
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return nil, fmt.Errorf("client: start: %w; last attempt: %w", ctx.Err(), last)
		}
		if permanent(err, true) {
			return nil, err
		}
		last = err
		d := bo.Next()
		c.log.Warn("login failed, retrying", "err", err, "retry_in", d)
		if !sleep(ctx, d) {
			if c.life.Err() != nil {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("client: start: %w; last attempt: %w", ctx.Err(), last)
		}
	}
}

// connect runs one login: route /login, TCP dial, LOGIN → LOGIN_ACK.
func (c *Client) connect(ctx context.Context) (*link, error) {
	res, err := c.login(ctx)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	conn, err := c.dial(ctx, res.Server.Host, res.Server.Addr())
	if err != nil {
		return nil, fmt.Errorf("dial gateway %s: %w", res.Server.ID, err)
	}
	l := newLink(conn, &c.cfg, res.Server.ID, c.log)
	l.login = res
	last, lastTS := c.inbox.position()
	if err := l.handshake(ctx, res.Token, last, lastTS, c.cfg.DialTimeout); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("gateway %s: %w", res.Server.ID, err)
	}
	if gw := l.ack.GetGatewayId(); gw != "" {
		l.gateway = gw
	}
	return l, nil
}

// login logs in at the route: with the last login's resume token when it
// has one (no password hash to check: the users of a gateway that failed
// come back at a small cost to the route), with the password when it has
// none or the route refuses it (used, revoked, expired, or a route that
// takes none).
//
// ChangePassword and LogoutOthers revoke every resume token and
// ChangePassword the password: a login under way with the old ones is
// refused. When the credentials changed meanwhile, the login is tried
// again with the new ones instead of stopping the client.
func (c *Client) login(ctx context.Context) (LoginResult, error) {
	for {
		c.mu.Lock()
		tok, password := c.resume, c.password
		c.mu.Unlock()
		res, err := c.loginWith(ctx, tok, password)
		if err == nil || !refused(err) {
			return res, err
		}
		c.mu.Lock()
		changed := (c.resume != "" && c.resume != tok) || c.password != password
		c.mu.Unlock()
		if !changed {
			return res, err
		}
		c.log.Info("credentials changed while logging in: trying the new ones", "err", err)
	}
}

// refused reports whether err is the route refusing a login's
// credentials.
func refused(err error) bool {
	var ae *APIError
	return errors.Is(err, ErrResumeRefused) ||
		errors.As(err, &ae) && (ae.Code == codes.BadAccount || ae.Code == codes.Unauthorized)
}

func (c *Client) loginWith(ctx context.Context, tok, password string) (LoginResult, error) {
	if tok != "" {
		res, err := c.api.Resume(ctx, tok)
		var ae *APIError
		switch {
		case err == nil:
			c.setResume(res.ResumeToken, res.ResumeExpiresAt)
			return res, nil
		case errors.As(err, &ae) && (ae.Code == codes.Unauthorized || ae.Code == codes.BadArgument):
			c.dropResume(tok)
			if password == "" {
				return res, fmt.Errorf("%w: %w", ErrResumeRefused, err)
			}
			c.log.Info("resume token refused: logging in with the password", "err", err)
		default:
			return res, err
		}
	}
	if password == "" {
		// Only a client started with a ResumeToken has no password, and
		// its token is gone (refused, or dropped by a KICK).
		return LoginResult{}, ErrResumeRefused
	}
	res, err := c.api.Login(ctx, c.cfg.UserName, password)
	if err == nil {
		c.setResume(res.ResumeToken, res.ResumeExpiresAt)
	}
	return res, err
}

// setResume keeps tok as the token for the next login and tells
// Config.OnResumeToken when it changed, one call at a time.
func (c *Client) setResume(tok string, expiresAt int64) {
	c.replaceResume(nil, tok, expiresAt)
}

// dropResume forgets tok, the route refused it, unless another token
// replaced it meanwhile (ChangePassword, LogoutOthers).
func (c *Client) dropResume(tok string) {
	c.replaceResume(&tok, "", 0)
}

// replaceResume sets the resume token to tok, if it is *old (any, for a
// nil old), and tells Config.OnResumeToken when it changed, one call at a
// time.
func (c *Client) replaceResume(old *string, tok string, expiresAt int64) {
	c.resumeMu.Lock()
	defer c.resumeMu.Unlock()
	c.mu.Lock()
	if old != nil && c.resume != *old {
		c.mu.Unlock()
		return
	}
	changed := c.resume != tok
	c.resume = tok
	c.mu.Unlock()
	if !changed || c.cfg.OnResumeToken == nil {
		return
	}
	var at time.Time
	if tok != "" && expiresAt > 0 {
		at = time.Unix(expiresAt, 0)
	}
	c.cfg.OnResumeToken(tok, at)
}

// dial connects to the gateway at addr (on host, as /login named it), with
// TLS when configured; DialTimeout bounds both steps together.
func (c *Client) dial(ctx context.Context, host, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.cfg.Dial == nil {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		conn, err = c.cfg.Dial(ctx, "tcp", addr)
	}
	if err != nil || c.cfg.TLS == nil {
		return conn, err
	}
	conf := c.cfg.TLS.Clone()
	if conf.ServerName == "" {
		conf.ServerName = host
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// adopt makes l the current link, unless Close has begun. The first adopt
// also accounts for the supervisor and control goroutines the caller starts
// next. The link takes sends once supervise has replayed the outbox on it.
func (c *Client) adopt(l *link, first bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if first {
		c.wg.Add(2)
	}
	ack, res := l.ack, l.login
	c.cur, c.open = l, false
	// The gateway asks for everything after LOGIN.last_seq for us.
	c.inbox.linkUp(time.Now())
	c.tl.linkUp()
	c.info = Info{
		UserID:    firstOf(ack.GetUserId(), res.UserID),
		UserName:  firstOf(ack.GetUserName(), res.UserName),
		SessionID: firstOf(ack.GetSessionId(), res.SessionID),
		Gateway:   l.gateway,
		Connected: true,
	}
	c.notifyLocked()
	return true
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// notifyLocked wakes everyone waiting for a state change.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// supervise owns the connection after Start: it runs each link to its end
// and logs in again, until Close, a KICK or a permanent refusal.
func (c *Client) supervise(l *link) {
	defer c.wg.Done()
	bo := newBackoff(c.cfg.ReconnectMin, c.cfg.ReconnectMax)
	for {
		// What earlier links showed is acknowledged again on this one; what
		// this link's reader shows meanwhile follows the usual timing.
		reack, _ := c.acks.unacked()
		l.start(c.readLoop)
		c.replay(l, reack)
		c.resubscribe(l)
		c.openLink(l)
		select {
		case <-l.done:
		case <-c.life.Done():
			l.fail(ErrClosed)
		}
		l.wg.Wait()
		c.detach(l)
		if c.isClosing() {
			return
		}
		cause := l.err()
		var se *stopError
		if errors.As(cause, &se) {
			c.stop(se.reason, se.frame, l.gateway)
			return
		}
		c.log.Warn("connection lost, reconnecting", "err", cause)
		c.emit(Event{Kind: EventDisconnected, Reason: cause.Error(), Gateway: l.gateway})
		// A link that stayed up a while earns a fresh, short backoff; one that
		// keeps dying at once keeps growing it.
		if time.Since(l.born) >= c.cfg.ReconnectMax {
			bo.Reset()
		}
		next, err := c.reconnect(bo)
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				var frame *cimpb.Error
				var ge *GatewayError
				if errors.As(err, &ge) {
					frame = &cimpb.Error{Code: int32(ge.Code), Text: ge.Text}
				}
				c.stop("login refused: "+err.Error(), frame, "")
			}
			return
		}
		c.emit(Event{Kind: EventConnected, Gateway: next.gateway})
		l = next
	}
}

// reconnect logs in again until it works, Close begins, or the cluster
// refuses for good.
func (c *Client) reconnect(bo *backoff.Backoff) (*link, error) {
	for {
		if !sleep(c.life, bo.Next()) || c.isClosing() {
			return nil, ErrClosed
		}
		l, err := c.connect(c.life)
		if err == nil {
			if !c.adopt(l, false) {
				l.close()
				return nil, ErrClosed
			}
			return l, nil
		}
		if c.life.Err() != nil || c.isClosing() {
			return nil, ErrClosed
		}
		if permanent(err, false) {
			return nil, err
		}
		c.log.Warn("reconnect failed", "err", err)
	}
}

func (c *Client) detach(l *link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == l {
		c.cur, c.open = nil, false
		c.info.Connected = false
		c.notifyLocked()
	}
}

// openLink lets sends use l, if it is still the current link, and wakes
// the control loop for what waited for a link (resends, an ACK).
func (c *Client) openLink(l *link) {
	c.mu.Lock()
	if c.cur == l && !c.open {
		c.open = true
		c.notifyLocked()
	}
	c.mu.Unlock()
	c.poke()
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// stop ends reconnecting for good and tells the application.
func (c *Client) stop(reason string, frame *cimpb.Error, gateway string) {
	c.mu.Lock()
	if c.stopErr == nil {
		c.stopErr = fmt.Errorf("%w: %s", ErrStopped, reason)
		c.notifyLocked()
	}
	c.mu.Unlock()
	// A KICK or a refused login ends the session, and a later login in its
	// slot (the cause of most KICKs) has revoked the token anyway.
	c.setResume("", 0)
	c.log.Warn("stopped, not reconnecting", "reason", reason)
	c.emit(Event{Kind: EventKicked, Reason: reason, Err: frame, Gateway: gateway})
}

// emit hands ev to the application, waiting while the channel is full,
// unless Close ends the wait; false means it was not handed over.
func (c *Client) emit(ev Event) bool {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	select {
	case c.events <- ev:
		return true
	case <-c.life.Done():
		return false
	}
}

// readLoop reads l's frames until the link ends and turns them into events.
func (c *Client) readLoop(l *link) {
	// lastErr keeps a connection-level ERROR so that the close right after it
	// is reported with the gateway's reason rather than as EOF.
	var lastErr *GatewayError
	for _, f := range l.early {
		if !c.handle(l, f, &lastErr) {
			return
		}
	}
	l.early = nil
	for {
		f, err := l.r.ReadFrame()
		if errors.Is(err, codec.ErrFrameSkipped) {
			// A frame too large to take (the codec read past it): the
			// connection goes on. If it was an inbox entry, its seq is now
			// a gap; a SYNC answer that covers the gap without it lets the
			// inbox skip it and acknowledge past it, so that it is never
			// asked for again.
			l.progress.Add(1)
			l.log.Warn("frame over the limit skipped", "err", err, "max_frame", c.cfg.MaxFrame)
			if c.inbox.skipped(time.Now()) {
				c.requestSync(l)
			}
			continue
		}
		if err != nil {
			switch {
			case lastErr != nil:
				l.fail(lastErr)
			case errors.Is(err, codec.ErrFrameTooLarge), errors.Is(err, codec.ErrBadFrame), errors.Is(err, codec.ErrBadLength):
				l.fail(fmt.Errorf("bad frame from gateway: %w", err))
			case errors.Is(err, net.ErrClosed):
				l.fail(err) // we closed it; the first cause is already set
			default:
				l.fail(fmt.Errorf("gateway closed the connection: %w", err))
			}
			return
		}
		l.progress.Add(1)
		if !c.handle(l, f, &lastErr) {
			return
		}
	}
}

// handle acts on one frame; false ends the reader (the link failed, or
// Close cut an event short).
func (c *Client) handle(l *link, f *cimpb.Frame, lastErr **GatewayError) bool {
	if f.GetType() != cimpb.Type_ERROR {
		*lastErr = nil // the link went on after that ERROR
	}
	switch f.GetType() {
	case cimpb.Type_PONG:
		l.ponged()
	case cimpb.Type_PING, cimpb.Type_LOGIN_ACK:
	case cimpb.Type_MSG, cimpb.Type_RECEIPT:
		seq, ok := seqOf(f)
		if !ok {
			l.log.Debug("frame without its payload", "type", f.GetType())
			return true
		}
		if gseq := f.GetMsg().GetGroupSeq(); seq == 0 && gseq > 0 && f.GetMsg().GetGroup() != "" {
			// A large group's message: in its timeline, not the inbox.
			gid := f.Msg.Group
			show := c.tl.add(gid, f, time.Now())
			if len(show) == 0 {
				c.poke() // a gap: a SYNC may be wanted now or after the gap wait
			}
			return c.showGroup(l, gid, show)
		}
		if seq == 0 { // a broadcast or a direct answer: not an inbox entry
			return c.show(l, f)
		}
		if c.reused(seq, f) {
			// Seqs went back (Redis lost its tail): ask for what is above
			// the point again; the messages shown before are dropped by
			// msgId, the new ones shown in order.
			l.log.Warn("inbox seq reused for a new message: the server lost recent entries; syncing again", "seq", seq)
			if c.inbox.rewind(max(seq, rewindSpan+1)-rewindSpan-1, time.Now()) {
				c.requestSync(l)
			}
		}
		show, sync := c.inbox.add(seq, f, time.Now())
		if sync {
			c.requestSync(l)
		}
		if len(show) == 0 {
			l.log.Debug("holding back or dropping an inbox entry", "seq", seq, "last", c.inbox.lastSeq())
			c.poke() // a gap waiting: the control loop's timer learns when to ask
		}
		return c.showAll(l, show)
	case cimpb.Type_SYNC:
		if gid := f.GetSync().GetGroup(); gid != "" {
			show := c.tl.answer(f.GetSync(), time.Now())
			c.poke()
			return c.showGroup(l, gid, show)
		}
		show, sync := c.inbox.answer(f.GetSync(), time.Now())
		if sync {
			c.requestSync(l)
		}
		if c.tl.listed(f.GetSync().GetGroups(), time.Now()) {
			c.poke()
		}
		return c.showAll(l, show)
	case cimpb.Type_ERROR:
		e := f.GetError()
		if e == nil {
			e = &cimpb.Error{}
		}
		ge := newGatewayError(e)
		if c.pres.refused(f.GetReqId(), ge) {
			return true // the answer to a Subscribe: it returns the error
		}
		if endsSession(ge.Code) {
			l.fail(&stopError{reason: ge.Error(), frame: e, err: ge})
			return false
		}
		if ge.ClientMsgID == "" {
			*lastErr = ge
			return c.deliver(l, Event{Kind: EventError, Err: e, Gateway: l.gateway})
		}
		final, notice := c.out.fail(e)
		switch {
		case final != nil:
			return c.deliver(l, Event{Kind: EventError, Err: final, Gateway: l.gateway})
		case notice != nil:
			c.log.Debug("send rate limited, keeping it for the next try", "client_msg_id", ge.ClientMsgID)
			return c.deliver(l, Event{Kind: EventRetrying, Err: notice, Gateway: l.gateway})
		}
		c.log.Debug("send answered with a retryable error", "client_msg_id", ge.ClientMsgID, "code", ge.Code)
	case cimpb.Type_KICK:
		l.fail(&stopError{reason: kickReason(f.GetKick())})
		return false
	case cimpb.Type_PRESENCE:
		if ev, ok := c.pres.apply(f); ok {
			ev.Gateway = l.gateway
			return c.deliver(l, ev)
		}
	case cimpb.Type_TYPING:
		if f.GetTyping() != nil {
			return c.deliver(l, Event{Kind: EventTyping, Typing: f.Typing, Gateway: l.gateway, At: time.Now()})
		}
	default:
		l.log.Debug("ignoring frame", "type", f.GetType())
	}
	return true
}

// reused reports whether f is a message under a seq this client has shown
// already, for another message: the evidence that the server hands out seqs
// again. A message shown before under its own msgId is a plain repeat; one
// whose seq the client cannot place (it showed that seq too long ago, or in
// an earlier run) is taken for a repeat too.
func (c *Client) reused(seq uint64, f *cimpb.Frame) bool {
	id := f.GetMsg().GetMsgId()
	if f.GetType() != cimpb.Type_MSG || id == "" || seq > c.inbox.lastSeq() || c.shown.Contains(id) {
		return false
	}
	return c.shown.HasSeq(seq)
}

// seqOf returns the inbox seq of a MSG or RECEIPT frame; false when the
// payload is missing.
func seqOf(f *cimpb.Frame) (uint64, bool) {
	switch f.GetType() {
	case cimpb.Type_MSG:
		return f.GetMsg().GetSeq(), f.GetMsg() != nil
	case cimpb.Type_RECEIPT:
		return f.GetReceipt().GetSeq(), f.GetReceipt() != nil
	}
	return 0, false
}

// showAll shows inbox entries in order and counts them for the next ACK,
// including seqs the inbox skipped (trimmed, or acknowledged before).
func (c *Client) showAll(l *link, show []*cimpb.Frame) bool {
	for _, f := range show {
		if !c.show(l, f) {
			return false
		}
		seq, _ := seqOf(f)
		if c.acks.show(seq, 1, time.Now()) {
			c.poke()
		}
	}
	if c.acks.show(c.inbox.lastSeq(), 0, time.Now()) {
		c.poke()
	}
	return true
}

// showGroup shows a group timeline's messages in order and counts them for
// the group's next ACK.
func (c *Client) showGroup(l *link, gid string, show []*cimpb.Frame) bool {
	for _, f := range show {
		if !c.show(l, f) {
			return false
		}
	}
	if c.tl.shown(gid, len(show), time.Now()) {
		c.poke()
	}
	return true
}

// show turns one MSG or RECEIPT into an event. A receipt that repeats a
// status the application was told already is not repeated, nor a message
// whose msgId was shown lately: a group message fanned out again after an
// interrupted send comes back under a new seq (its seq still counts for the
// ACK).
//
// With the route's --login-policy platform the user's own messages come
// back as copies for its devices: the copy of what this Client sent is
// not shown (the caller still counts its seq), one sent elsewhere is shown
// as Outgoing; a READ the user made elsewhere is EventReadElsewhere.
func (c *Client) show(l *link, f *cimpb.Frame) bool {
	if m := f.GetMsg(); f.GetType() == cimpb.Type_MSG {
		own := sentBy(l.userID(), m)
		if id := m.GetMsgId(); id != "" {
			sm := shownMsg{group: m.GetGroup(), seq: m.GetSeq(), own: own, reaction: m.GetOp() == cimpb.MsgOp_MSG_OP_REACT}
			if seen := c.shown.ContainsOrAdd(id, sm); seen {
				l.log.Debug("dropping a message shown before", "msg_id", id, "seq", m.GetSeq())
				return true
			}
		}
		if own && c.sentHere(m.GetClientMsgId()) {
			l.log.Debug("own message echoed", "msg_id", m.GetMsgId(), "client_msg_id", m.GetClientMsgId(), "seq", m.GetSeq())
			return true
		}
		return c.deliver(l, Event{Kind: EventMessage, Msg: m, Outgoing: own, Gateway: l.gateway})
	}
	rc := f.GetReceipt()
	if readElsewhere(l.userID(), rc) {
		if len(rc.Items) == 0 && rc.MsgId != "" {
			rc.Items = []*cimpb.ReceiptItem{{MsgId: rc.MsgId}}
		}
		return c.deliver(l, Event{Kind: EventReadElsewhere, Receipt: rc, Gateway: l.gateway})
	}
	if len(rc.GetItems()) == 0 {
		return c.showReceipt(l, rc)
	}
	// One receipt for several messages of this client (one acknowledgement
	// or READ by the peer): the application sees one receipt per message.
	for _, it := range rc.Items {
		one := &cimpb.Receipt{Status: rc.Status, MsgId: it.GetMsgId(), ClientMsgId: it.GetClientMsgId(),
			By: rc.By, TimestampMs: rc.TimestampMs, Seq: rc.Seq, Group: rc.Group, Count: rc.Count}
		if !c.showReceipt(l, one) {
			return false
		}
	}
	return true
}

// sentBy reports whether m is a copy of a message user self sent, for its
// devices (--login-policy platform): from self, neither a broadcast (never
// copied) nor a private message to self (stored once, as an incoming one).
func sentBy(self string, m *cimpb.Msg) bool {
	if self == "" || m.GetFrom() != self || m.GetBroadcast() {
		return false
	}
	return m.GetGroup() != "" || m.GetTo() != self
}

// sentHere reports whether clientMsgID is one of this Client's sends: made
// by it, or given to SendMsg by the application and still remembered.
func (c *Client) sentHere(clientMsgID string) bool {
	if clientMsgID == "" {
		return false
	}
	return c.ids.ours(clientMsgID) || c.out.has(clientMsgID)
}

// readElsewhere reports whether rc is a READ the user self made on another
// device (--login-policy platform): by self, about a peer's or a group's
// messages. A READ by self without either is the user reading its own
// message to itself: a receipt like any.
func readElsewhere(self string, rc *cimpb.Receipt) bool {
	return self != "" && rc.GetStatus() == cimpb.ReceiptStatus_RECEIPT_READ && rc.GetBy() == self &&
		(rc.GetPeer() != "" || rc.GetGroup() != "")
}

// showReceipt turns a receipt for one message into events: the SENT it
// implies when that was never seen, then the receipt unless it repeats a
// status already told.
func (c *Client) showReceipt(l *link, rc *cimpb.Receipt) bool {
	emit, sent := c.out.receipt(rc)
	if sent != nil && !c.deliver(l, Event{Kind: EventReceipt, Receipt: sent, Gateway: l.gateway}) {
		return false
	}
	if !emit {
		return true
	}
	return c.deliver(l, Event{Kind: EventReceipt, Receipt: rc, Gateway: l.gateway})
}

// deliver emits an event from the reader, marking the wait as the
// application's, not the link's.
func (c *Client) deliver(l *link, ev Event) bool {
	l.stalled.Store(true)
	ok := c.emit(ev)
	l.stalled.Store(false)
	l.progress.Add(1)
	return ok
}

// requestSync asks the control loop for a SYNC on l.
func (c *Client) requestSync(l *link) {
	c.mu.Lock()
	c.syncOn = l
	c.mu.Unlock()
	c.poke()
}

// poke wakes the control loop.
func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Send sends text to one user (id or name) and returns the client_msg_id
// that RECEIPT and ERROR events will carry.
func (c *Client) Send(ctx context.Context, to, text string) (string, error) {
	if to == "" {
		return "", ErrNoRecipient
	}
	return c.sendText(ctx, to, false, "", text)
}

// Broadcast sends text to everybody online (CIM's group chat).
func (c *Client) Broadcast(ctx context.Context, text string) (string, error) {
	return c.sendText(ctx, "", true, "", text)
}

// sendText sends a KIND_TEXT message, a reply to the message replyTo when
// set, and returns its client_msg_id. The Msg and Frame it encodes are
// reused (SendMsg keeps neither; the outbox resends the encoded frame,
// ReplyTo included): a busy sender leaves the encoded frame and its outbox
// record as garbage.
func (c *Client) sendText(ctx context.Context, to string, broadcast bool, replyTo, text string) (string, error) {
	m := msgPool.Get().(*cimpb.Msg)
	m.To, m.Broadcast, m.Kind, m.Body = to, broadcast, cimpb.Kind_KIND_TEXT, append(m.Body[:0], text...)
	m.ReplyTo = replyTo
	err := c.sendMsg(ctx, m, text)
	id, body := m.GetClientMsgId(), m.Body
	m.Reset()
	if cap(body) <= maxPooledBody {
		m.Body = body[:0]
	}
	msgPool.Put(m)
	return id, err
}

// maxPooledBody is the largest body buffer a pooled Msg keeps.
const maxPooledBody = 1 << 10

var (
	msgPool   = sync.Pool{New: func() any { return new(cimpb.Msg) }}
	framePool = sync.Pool{New: func() any { return new(cimpb.Frame) }}
)

// SendMsg sends m as an uplink MSG, filling m.ClientMsgId when empty. It
// returns once the frame is written to a gateway; the route's verdict comes
// later as EventReceipt or EventError. Before Start has connected and while
// the link is down it waits for a connection, bounded by ctx.
//
// After that the client keeps the message until the route answers: it is
// written again with the same client_msg_id on every new link and after
// each unanswered try (Config.ResendTimeout, ResendMax); the route
// deduplicates, so the recipient sees it once. ERROR Unavailable and ERROR
// RateLimited (EventRetrying tells the latter, once) are retried the same
// way; other ERRORs (BadArgument, BadAccount, TooLarge…) are final. A
// broadcast is not written twice (the route cannot deduplicate it) unless
// the gateway said it dropped it (RateLimited). Status and Recent report how
// far it got.
//
// It fails at once after Close (ErrClosed) or once the client stopped
// (ErrStopped), and then the message is not kept; so does a ReplyTo that
// is not a msgId (ErrBadReplyTo), a reaction (MSG_OP_REACT) React would
// refuse (ErrNoMessage, ErrBadRefMsgID, ErrBadReaction), and Mentions the
// route would refuse (ErrBadMentions on anything but a new group message,
// or an empty one; ErrTooManyMentions). m itself is not kept or modified
// after it returns.
func (c *Client) SendMsg(ctx context.Context, m *cimpb.Msg) error {
	if m == nil {
		return errors.New("client: nil message")
	}
	var text string
	if m.GetKind() == cimpb.Kind_KIND_TEXT {
		text = string(m.GetBody())
	}
	return c.sendMsg(ctx, m, text)
}

// sendMsg is SendMsg with the text of a KIND_TEXT message as a string.
func (c *Client) sendMsg(ctx context.Context, m *cimpb.Msg, text string) error {
	if r := m.GetReplyTo(); r != "" && !isMsgID(r) {
		return ErrBadReplyTo
	}
	if m.GetOp() == cimpb.MsgOp_MSG_OP_REACT {
		if err := checkReaction(m.GetRefMsgId(), m.GetBody()); err != nil {
			return err
		}
	}
	if err := checkMentions(m); err != nil {
		return err
	}
	if m.GetClientMsgId() == "" {
		m.ClientMsgId = c.ids.next()
	}
	b, err := encodeMsg(m, c.cfg.MaxFrame)
	if err != nil {
		return err
	}
	// Recorded before the write, so that even the fastest answer finds it.
	c.out.add(m, text, b, time.Now())
	if err := c.write(ctx, b); err != nil {
		c.out.cancel(m.GetClientMsgId())
		return err
	}
	if c.out.written(m.GetClientMsgId(), time.Now()) {
		c.poke()
	}
	return nil
}

// encodeMsg encodes m as a MSG frame of at most maxFrame bytes, allocating
// only the result.
func encodeMsg(m *cimpb.Msg, maxFrame int) ([]byte, error) {
	f := framePool.Get().(*cimpb.Frame)
	f.Type, f.Msg = cimpb.Type_MSG, m
	b, err := codec.AppendFrameMax(nil, f, maxFrame)
	f.Reset()
	framePool.Put(f)
	if errors.Is(err, codec.ErrFrameTooLarge) {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("client: encoding message: %w", err)
	}
	return b, nil
}

// write writes an encoded frame on the current link, waiting for one
// (bounded by ctx); a frame whose link broke mid-write goes on the next.
func (c *Client) write(ctx context.Context, b []byte) error {
	var stale *link
	for {
		l, err := c.currentLink(ctx, stale)
		if err != nil {
			return err
		}
		err = l.send(ctx, b)
		if !errors.Is(err, errLinkDown) {
			return err
		}
		stale = l
	}
}

// currentLink returns the current link open for sends other than stale,
// waiting for one.
func (c *Client) currentLink(ctx context.Context, stale *link) (*link, error) {
	for {
		c.mu.Lock()
		if c.stopErr != nil {
			err := c.stopErr
			c.mu.Unlock()
			return nil, err
		}
		if l := c.cur; l != nil && c.open && l != stale {
			c.mu.Unlock()
			return l, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Status returns what the client knows about one of its messages, by
// client_msg_id: the best status so far (SENT, DELIVERED, READ), or pending
// or failed. It knows the last Config.SentKept (default 1000) messages
// sent by this Client, and every one still waiting for an answer.
func (c *Client) Status(clientMsgID string) (SentMessage, bool) {
	return c.out.get(clientMsgID)
}

// Recent returns the n most recently sent messages (all it remembers when
// n <= 0), oldest first, with their status.
func (c *Client) Recent(n int) []SentMessage {
	return c.out.recent(n)
}

// Pending is how many sent messages still wait for the route's answer.
func (c *Client) Pending() int { return c.out.pendingCount() }

// MarkRead tells peer (the sender: user id or name) that the messages with
// these msgIds were read: one READ frame (more for very many ids), which
// the route turns into RECEIPT_READs in peer's inbox. Ids of group messages
// this client showed lately (the last 4096 messages) are read in their
// group: READ{group, peer}, as MarkGroupRead sends. An ACK for what was
// shown goes first, so DELIVERED reaches peer before READ. Ids of the
// user's own messages (Event.Outgoing) and of reactions, which are not
// chat messages and never unread, are skipped. It waits for a
// connection like SendMsg but is not resent: a READ lost with its link is
// lost.
func (c *Client) MarkRead(ctx context.Context, peer string, msgIDs ...string) error {
	if peer == "" {
		return ErrNoRecipient
	}
	if len(msgIDs) == 0 {
		return nil
	}
	var groups []string // in the order they first appear; "" for private ones
	byGroup := map[string][]string{}
	for _, id := range msgIDs {
		g := ""
		if m, ok := c.shown.Peek(id); ok {
			g = m.group
		}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], id)
	}
	if err := c.ackShown(ctx, msgIDs); err != nil {
		return err
	}
	for _, g := range groups {
		if err := c.writeReads(ctx, peer, g, byGroup[g]); err != nil {
			return err
		}
	}
	return nil
}

// MarkGroupRead tells the route that the messages with these msgIds, sent
// by peer (user id or name) to group gid, were read: READ{msg_ids, peer,
// group}. The route counts the reader for the sender, who learns it as a
// live RECEIPT_READ with Receipt.Group and Receipt.Count. Like MarkRead it
// acknowledges what was shown first and is not resent.
func (c *Client) MarkGroupRead(ctx context.Context, gid, peer string, msgIDs ...string) error {
	switch {
	case gid == "":
		return ErrNoGroup
	case peer == "":
		return ErrNoRecipient
	case len(msgIDs) == 0:
		return nil
	}
	if err := c.ackShown(ctx, msgIDs); err != nil {
		return err
	}
	return c.writeReads(ctx, peer, gid, msgIDs)
}

// ackShown writes the ACK for what was shown and not yet acknowledged,
// including the messages read: the application holds them, so the reader
// has handed over everything before them, even if it has not yet counted
// the last one it handed over (it counts after the hand-over).
func (c *Client) ackShown(ctx context.Context, read []string) error {
	var upTo uint64
	for _, id := range read {
		if m, ok := c.shown.Peek(id); ok {
			upTo = max(upTo, m.seq)
		}
	}
	if upTo > 0 {
		c.acks.show(upTo, 0, time.Now())
	}
	if seq, ok := c.acks.unacked(); ok {
		if err := c.write(ctx, ackFrame(seq)); err != nil {
			return err
		}
		c.acks.sent(seq, time.Now())
	}
	return nil
}

// writeReads writes READ frames for msgIDs of peer (in group, when set),
// split so that no frame comes near the limit.
func (c *Client) writeReads(ctx context.Context, peer, group string, msgIDs []string) error {
	budget := c.cfg.MaxFrame/2 - len(peer) - len(group)
	var batch []string
	var seqs []uint64
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, err := codec.Encode(&cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{MsgIds: batch, Seqs: seqs, Peer: peer, Group: group}})
		if err != nil {
			return err
		}
		batch, seqs, size = nil, nil, 0
		return c.write(ctx, b)
	}
	for _, id := range msgIDs {
		// The route counts a READ only for the inbox entry it names: a
		// message not among those shown lately has no known seq.
		m, ok := c.shown.Peek(id)
		if !ok || m.seq == 0 || m.own || m.reaction {
			continue
		}
		if len(id)+16 > budget {
			return ErrTooLarge
		}
		if size+len(id)+16 > budget || len(batch) == maxReadIDs {
			if err := flush(); err != nil {
				return err
			}
		}
		batch, seqs = append(batch, id), append(seqs, m.seq)
		size += len(id) + 16
	}
	return flush()
}

// maxReadIDs is how many msgIds one READ carries: the route counts at most
// this many per READ.
const maxReadIDs = 100

func ackFrame(seq uint64) []byte {
	return mustEncode(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: seq}})
}

// Close acknowledges what was shown and not yet acknowledged, logs the
// session off at the route (POST /offLine, which also revokes its resume
// token: Config.OnResumeToken hears ""), closes the connection, stops
// reconnecting, waits for every goroutine the client started, sends
// EventClosed and closes the Events channel. If the channel is full,
// EventClosed waits for room until ctx ends. A second Close (or
// Disconnect) waits for the first and returns nil. The error reports a
// failed /offLine (the gateway's own disconnect notice still takes the
// session offline) or ctx ending.
func (c *Client) Close(ctx context.Context) error { return c.end(ctx, true) }

// Disconnect ends the client as Close does but without logging off: the
// user is "away", not signed out. The route takes the session offline when
// the connection closes, and the last resume token stays good, so a Client
// started later with it as Config.ResumeToken comes back without the
// password: what an app that is closed, not logged out of, wants.
func (c *Client) Disconnect(ctx context.Context) error { return c.end(ctx, false) }

func (c *Client) end(ctx context.Context, logoff bool) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		select {
		case <-c.closed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.closing = true
	info, stopped, l := c.info, c.stopErr != nil, c.cur
	c.stopErr = ErrClosed
	c.notifyLocked()
	c.mu.Unlock()

	var errs []error
	// What was shown is acknowledged before the session ends, so that the
	// next login does not get it again and its senders learn DELIVERED.
	if seq, ok := c.acks.unacked(); ok && l != nil && !stopped {
		if err := l.send(ctx, ackFrame(seq)); err != nil {
			c.log.Warn("final ACK not sent", "seq", seq, "err", err)
		} else {
			c.acks.sent(seq, time.Now())
		}
	}
	if gs, _ := c.tl.dueAcks(time.Now(), true); len(gs) > 0 && l != nil && !stopped {
		if err := l.send(ctx, mustEncode(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Groups: gs}})); err != nil {
			c.log.Warn("final group ACK not sent", "err", err)
		} else {
			c.tl.acked(gs, time.Now())
		}
	}
	// After a KICK the session is no longer ours; logging it off could only
	// race with whoever holds the account now.
	if logoff && info.SessionID != "" && !stopped {
		// The latest login's session is the one the route holds (and the
		// access token's), even when reconnecting had not finished with it.
		if err := c.api.offlineLatest(ctx, info.UserID, info.SessionID); err != nil {
			c.log.Warn("offLine failed", "err", err)
			errs = append(errs, fmt.Errorf("client: offLine: %w", err))
		}
	}
	c.cancel()
	c.wg.Wait()
	if logoff && info.SessionID != "" {
		// Signed out: even after a failed /offLine the token is no longer
		// the application's to keep. (A client that never logged in has
		// revoked nothing.)
		c.setResume("", 0)
	}
	if c.ownHTTP != nil {
		c.ownHTTP.CloseIdleConnections()
	}

	select {
	case c.events <- Event{Kind: EventClosed, At: time.Now()}:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("client: EventClosed not delivered: %w", ctx.Err()))
	}
	close(c.events)
	close(c.closed)
	return errors.Join(errs...)
}

// ChangePassword changes the user's password (API.ChangePassword) and
// keeps this client logged in: its reconnects use the new password, and
// it keeps the resume token the route handed this session in place of the
// revoked ones (Config.OnResumeToken hears it). It returns how many other
// sessions ended.
func (c *Client) ChangePassword(ctx context.Context, current, next string) (int, error) {
	s, err := c.api.ChangePassword(ctx, current, next)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.password = next
	c.mu.Unlock()
	c.setResume(s.ResumeToken, s.ResumeExpiresAt)
	return s.SessionsEnded, nil
}

// DeleteAccount deletes the user's account for good (API.DeleteAccount)
// and then ends the client as Disconnect does: there is no session left to
// log off, and no resume token to keep (Config.OnResumeToken hears "").
// EventKicked ("account deleted") may come before EventClosed. A refusal
// (codes.Forbidden: wrong password) leaves the client as it was.
func (c *Client) DeleteAccount(ctx context.Context, password string) (User, error) {
	u, err := c.api.DeleteAccount(ctx, password)
	if err != nil {
		return User{}, err
	}
	c.setResume("", 0)
	if err := c.end(ctx, false); err != nil {
		return u, err
	}
	return u, nil
}

// LogoutOthers ends the user's other sessions and remembered logins
// (API.LogoutOthers); this client keeps the resume token the route handed
// it. It returns how many other sessions ended.
func (c *Client) LogoutOthers(ctx context.Context, password string) (int, error) {
	s, err := c.api.LogoutOthers(ctx, password)
	if err != nil {
		return 0, err
	}
	c.setResume(s.ResumeToken, s.ResumeExpiresAt)
	return s.SessionsEnded, nil
}
