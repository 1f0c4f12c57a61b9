// Package router is the route service's logic, between the HTTP edge (api)
// and the state (Redis store, live gateways, gateway pushes): accounts, login
// (bcrypt, or an external auth.Authenticator with local passwordless
// accounts) with the single-login policy and its gateway and access tokens,
// session confirmations from gateways, message routing (uplink batches,
// /p2pRoute, /groupRoute, /api/push, also from the system user) and the
// clean-up of dead gateways' sessions; reliable delivery: every private
// message and receipt is appended to its recipient's inbox before anything
// is announced, SYNC reads inboxes, ACK and READ produce receipts, plus
// message history and file uploads; and groups: membership (create, join,
// invite, leave, kick, rename, dissolve), group messages stored in every
// member's inbox (the sender's copy is its history), or once in a large
// group's timeline, and their delivered / read counts; and
// IoT devices (iot.go): passwordless accounts with long-lived credentials
// that gateways trade for sessions, whose messages to the app back-end
// (appdata.go) become webhook events queued before they are answered.
//
// Its collaborators are small interfaces defined here, so tests can swap any
// of them. A Router is safe for concurrent use.
package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gocim/gocim/cim-route/internal/auth"
	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/ratelimit"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// Store is the shared state: package store implements it on Redis, package
// memstore in memory (tests). It is the composition of the small interfaces
// below, one per concern; code that needs only one names that one.
type Store interface {
	Accounts
	Quotas
	Sessions
	Resumes
	Inboxes
	Groups
	Delayed
	Revisions
	Reactions
	Mutes
	Devices
	LastSeen
	Admin
	Blocks
	Pinger
}

// LastSeen is when users' sessions last ended (presence.go).
type LastSeen interface {
	// UsersSeen records when (unix ms) a session of each user of seen
	// (by id) ended: an account's last seen moves there if later; an id
	// without an account is left alone.
	UsersSeen(ctx context.Context, seen map[string]int64) error
	// LastSeen returns, in the order of uids, when each was last seen
	// (unix ms; 0: never, or no account).
	LastSeen(ctx context.Context, uids []string) ([]int64, error)
}

// Devices are the records of IoT devices (iot.go): accounts without a
// password, each with a long-lived credential of which only a hash is
// kept, listed in id order and bounded in number.
type Devices interface {
	// CreateDevice creates the account name (no password: it never logs
	// in at /login) and its device record holding secret, a hash;
	// errs.ErrNameTaken when the name exists in any case,
	// errs.ErrQuotaExceeded (nothing created) when max devices exist.
	CreateDevice(ctx context.Context, name string, secret []byte, max int) (model.Device, error)
	// Device reads uid's device record; errs.ErrNotFound when uid is no
	// device.
	Device(ctx context.Context, uid string) (model.Device, error)
	// ListDevices returns up to n devices whose id is above after
	// (numerically; "": from the first), in id order, without secrets.
	ListDevices(ctx context.Context, after string, n int) ([]model.Device, error)
	// SetDeviceSecret replaces uid's credential hash, reinstating a
	// revoked device; errs.ErrNotFound when uid is no device.
	SetDeviceSecret(ctx context.Context, uid string, secret []byte) error
	// RevokeDevice deletes uid's credential, noting when (unix ms); the
	// record stays. errs.ErrNotFound when uid is no device.
	RevokeDevice(ctx context.Context, uid string, at int64) error
	// DeviceConnected records that uid connected at at (unix ms) with the
	// credential whose hash is secret, and returns when it was seen
	// before (0: never). With clean it first raises uid's acknowledged seq
	// to its inbox head: what is stored is taken as delivered.
	// errs.ErrBadAccount, with nothing changed, when secret is no longer
	// the device's credential (rotated or revoked meanwhile).
	DeviceConnected(ctx context.Context, uid string, secret []byte, at int64, clean bool) (int64, error)
	// DevicesSeen records a disconnect at at (unix ms) for those of uids
	// that are devices; the others are left alone. Seen never goes back.
	DevicesSeen(ctx context.Context, uids []string, at int64) error
}

// Revisions are the changes senders made to their messages (recall, edit)
// and the messages users deleted from their own history (issue 15). Both
// live for the inbox TTL and are bounded per user by the inbox length, so
// a user can make the store keep no more of them than of an inbox.
type Revisions interface {
	// Revise records changes of messages: per (sender, message) a recall
	// is final and otherwise the edit with the largest RevID wins. A
	// sender's revisions of messages older than the inbox TTL are dropped,
	// and beyond the inbox length those of its oldest messages.
	Revise(ctx context.Context, rs []model.Revision) error
	// RevisionsOf reads, in one round trip, the revision of each message
	// (the zero Revision: none) and, for a viewer, whether the viewer
	// deleted each from its history (nil without one).
	RevisionsOf(ctx context.Context, viewer string, refs []model.MsgRef) ([]model.Revision, []bool, error)
	// DeleteFromHistory hides messages from uid's history (only uid's).
	// Ids of messages older than the inbox TTL are left out (no inbox
	// holds them); errs.ErrQuotaExceeded, with nothing added, when uid
	// would have more than the inbox length of them.
	DeleteFromHistory(ctx context.Context, uid string, msgIDs []string) error
}

// Reactions are the users' reactions to messages, per conversation
// (model.Reaction). They live for the inbox TTL after a conversation's last
// reaction and are bounded per user and conversation
// (model.ReactionShare) and per message (model.ReactionKinds).
type Reactions interface {
	// React records reactions in order, each replacing its user's earlier
	// one on that message (an empty Emoji: none). A user's reaction on a
	// message beyond model.ReactionShare in a conversation drops the
	// user's reaction on its oldest message there. ok[i] is false when
	// rs[i] was not recorded because its message has model.ReactionKinds
	// other emoji already.
	React(ctx context.Context, rs []model.Reaction) (ok []bool, err error)
	// ReactionsOf reads each message's reactions in one round trip, with
	// the viewer's own ("": none asked).
	ReactionsOf(ctx context.Context, viewer string, refs []model.ReactionRef) ([]model.Reactions, error)
}

// Delayed keeps messages to send later (POST /delay): each is leased to
// one claimer at a time, and comes back due if its send is not confirmed.
type Delayed interface {
	ScheduleMessage(ctx context.Context, m model.DelayedMsg, max int) (model.DelayedMsg, error)
	ClaimDueMessages(ctx context.Context, now time.Time, n int, lease time.Duration) ([]model.DelayedMsg, error)
	DelayedSent(ctx context.Context, ms []model.DelayedMsg) error
}

// Accounts are the users: names (unique in any case), ids, password hashes.
type Accounts interface {
	CreateUser(ctx context.Context, name, pwHash string) (string, error)
	NameTaken(ctx context.Context, name string) (bool, error)
	UserByName(ctx context.Context, name string) (model.User, error)
	UserByID(ctx context.Context, id string) (model.User, error)
	Lookup(ctx context.Context, ids, names []string) (idToName, nameToID map[string]string, err error)
}

// Resumes are the latest resume token of each user's login slot (a
// platform's slot with --login-policy platform, else one per user): its
// nonce and the session it was issued with. A login there replaces it,
// and a resume token is taken once, when it is the latest.
type Resumes interface {
	// SetResume makes nonce, issued with session sid, the latest of uid's
	// slot, for ttl.
	SetResume(ctx context.Context, uid, slot, sid, nonce string, ttl time.Duration) error
	// TakeResume replaces the latest of uid's slot, if it is req.Nonce,
	// with req.Next, issued with session req.SID, for req.TTL; the one it
	// replaced may come back within req.Grace and is then answered the
	// same latest. Otherwise nothing changes, unless req.Nonce is an
	// earlier one of the latest's chain (model.ResumeTake): then the slot
	// is cleared and Reused names the latest's session.
	TakeResume(ctx context.Context, uid, slot string, req model.ResumeTakeReq) (model.ResumeTake, error)
	// DropResumes forgets uid's latest resume tokens issued with session
	// sid; with sid "", all of them.
	DropResumes(ctx context.Context, uid, sid string) error
}

// Quotas count what users spend per day.
type Quotas interface {
	ChargeUpload(ctx context.Context, uid string, n, quota int64) (refund func(ctx context.Context, n int64), err error)
}

// Sessions are the users' routes (gateway, session, state), compared and
// set per user, with the online and per-gateway sets that mirror them.
type Sessions interface {
	ClaimRoute(ctx context.Context, uid string, c model.Claim) (model.Route, error)
	Online(ctx context.Context, uid, sid, gw string) error
	Reassert(ctx context.Context, uid, sid, gw string) error
	DropSession(ctx context.Context, uid, sid string) (model.Route, bool, error)
	DropSessions(ctx context.Context, refs []model.SessionRef) ([]model.SessionRef, error)
	Reclaim(ctx context.Context, gw string, refs []model.SessionRef) ([]bool, error)
	Routes(ctx context.Context, uids []string) (map[string]model.Route, error)
	OnlineIDs(ctx context.Context) ([]string, error)
	ForgetOnline(ctx context.Context, uids []string) error
	Gateways(ctx context.Context) ([]string, error)
	ClearGateway(ctx context.Context, gw string) ([]string, error)
}

// Inboxes are the users' inboxes: appends with dedup, ranges for SYNC,
// acknowledged seqs, read claims and history.
type Inboxes interface {
	Write(ctx context.Context, w model.Write) (model.Written, error)
	Ranges(ctx context.Context, qs []model.RangeQuery) ([]model.Range, error)
	RaiseAcks(ctx context.Context, acks []model.Ack) error
	ClaimReads(ctx context.Context, qs []model.ReadQuery) ([][]model.Entry, error)
	InboxBefore(ctx context.Context, uid string, before uint64, n int) ([]model.Entry, error)
}

// Groups is membership and group messages.
type Groups interface {
	Memberships
	GroupMessages
}

// Memberships are groups and their members and invitations.
type Memberships interface {
	CreateGroup(ctx context.Context, owner, name string, open bool) (model.Group, error)
	JoinGroup(ctx context.Context, gid, uid string, max int) (model.Group, error)
	InviteToGroup(ctx context.Context, gid, by string, users []string, max int) (model.Group, []string, error)
	LeaveGroup(ctx context.Context, gid, uid string) error
	KickFromGroup(ctx context.Context, gid, owner, uid string) error
	RenameGroup(ctx context.Context, gid, owner, name string) (model.Group, error)
	TransferGroup(ctx context.Context, gid, owner, to string) (model.Group, error)
	DissolveGroup(ctx context.Context, gid, owner string) error
	GroupOf(ctx context.Context, gid, viewer string) (model.Group, bool, error)
	UserGroups(ctx context.Context, uid string) ([]model.Group, error)
	GroupIDsOf(ctx context.Context, uids []string) ([][]string, error)
	GroupMembers(ctx context.Context, gids []string, checks []model.MemberRef) (map[string][]string, []bool, error)
}

// GroupMessages are group messages' dedup states and receipt counts.
type GroupMessages interface {
	ClaimGroupMessages(ctx context.Context, ds []model.GroupDedup) ([]model.GroupClaim, error)
	FinishGroupMessages(ctx context.Context, ds []model.GroupDedup) error
	AddGroupReceipts(ctx context.Context, rs []model.GroupReceipt) ([]int, error)
	GroupReceiptCounts(ctx context.Context, sender string, msgIDs []string) ([]model.ReceiptCount, error)
	// TimelinePositions reads, for each (group, member), the group
	// timeline's head and the member's acknowledged position; a member
	// that joined after the timeline began starts at the head it joined at.
	TimelinePositions(ctx context.Context, refs []model.MemberRef) ([]model.TimelinePos, error)
	// RaiseTimelinePositions raises members' positions (never past the
	// head, never down).
	RaiseTimelinePositions(ctx context.Context, ps []model.GroupPos) error
}

// Pinger checks that the store answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Files keeps uploads (package files).
type Files interface {
	// PutFor stores an upload of owner announced as expect bytes (0:
	// unknown); errs.ErrStorageFull when there is no room.
	PutFor(owner string, expect int64, name, contentType string, body io.Reader) (files.Info, error)
	Open(ref string) (files.File, files.Info, time.Time, error)
	Max() int64
	// MarkReferenced keeps an upload from expiring unreferenced.
	MarkReferenced(ref string) error
}

// Gateways is the live gateway list with health (package balance).
type Gateways interface {
	// Pick chooses a live, healthy gateway for a user.
	Pick(userID string) (string, bool)
	// Live reports whether a gateway is in the current live list.
	Live(id string) bool
	Count() int
	// Healthy lists the gateways Pick may hand out: live, passing their
	// health checks and, with verification, proven to hold the internal
	// secret (a broadcast to every gateway goes to these only).
	Healthy() []string
	// MarkDown skips a gateway for logins until its health check passes.
	MarkDown(id string)
}

// Pusher delivers frames to gateways (package fanout).
type Pusher interface {
	Push(ctx context.Context, batches map[string][]*cimpb.Delivery) map[string]fanout.Result
	// Enqueue is Push in two steps: the deliveries are in the gateways'
	// queues when it returns, and wait gives the results.
	Enqueue(ctx context.Context, batches map[string][]*cimpb.Delivery) (wait func() map[string]fanout.Result)
}

// Login policies.
const (
	PolicyKick   = "kick"
	PolicyReject = "reject"
	// PolicyPlatform keeps one session per device slot (contract.SlotFor
	// the login's platform): every device gets every message of its user,
	// and what one sends or reads reaches the others.
	PolicyPlatform = "platform"
)

// Config wires a Router.
type Config struct {
	Store    Store
	Gateways Gateways
	Pusher   Pusher
	// Files stores uploads; nil: uploads are refused.
	Files Files
	// GatewayInfo returns what a gateway published beside its id (its
	// WebSocket URL); nil: nothing.
	GatewayInfo func(id string) contract.GatewayInfo

	TokenKeys [][]byte      // the first signs
	TokenTTL  time.Duration // gateway token lifetime and pending-route TTL
	AccessTTL time.Duration // access (bearer) token lifetime (default 24h)
	// ResumeTTL is a resume token's lifetime (a login without the
	// password, accounts.go); 0: none handed out, none taken.
	ResumeTTL   time.Duration
	LoginPolicy string // PolicyKick (default), PolicyReject or PolicyPlatform
	BcryptCost  int
	// Authenticator checks passwords at login instead of the accounts'
	// bcrypt hashes (--auth http or ldap); nil: builtin. With one, the
	// router keeps a passwordless local account per name and refuses
	// Register.
	Authenticator auth.Authenticator
	// SyncLimit is the default and maximum number of entries in one SYNC
	// answer (default 200).
	SyncLimit int
	// MaxFrame is the largest frame payload a client takes (default
	// codec.DefaultMaxFrame): nothing larger is stored or sent.
	MaxFrame int
	// GroupMaxMembers bounds every group (default DefaultGroupMaxMembers).
	GroupMaxMembers int
	// GroupTimelineMin: a message to a group of at least this many members
	// is stored once, in the group's timeline, instead of once per member
	// (docs/ARCHITECTURE.md, "Group timelines"); 0 never does.
	GroupTimelineMin int
	// Limits bound the work and storage one user can cause (limits.go).
	Limits Limits
	// Limiters makes the per-user rate limiters (invitations, groups): the app
	// shares them in Redis; nil keeps them in this process.
	Limiters ratelimit.Maker
	// EditWindow is how long after sending a message its sender may
	// recall or edit it (revise.go); 0: recall and edit are refused.
	EditWindow time.Duration

	// CacheSize bounds each of the id->name and name->id caches (names never
	// change, so entries never go stale). Default 65536.
	CacheSize int
	// JanitorSettle is how long the janitor waits after a gateway change
	// before clearing dead gateways (default 1s), so a brief lag between
	// route replicas' views never clears a gateway that just appeared.
	JanitorSettle time.Duration
	// BackgroundDeliveries bounds the uplink batches whose deliveries run
	// after the gateway got its answer (default 256). Beyond it a batch
	// delivers before answering, which slows its gateway down: back-pressure.
	BackgroundDeliveries int
	// DelayPending bounds the delayed messages one user has waiting
	// (default DefaultDelayPending).
	DelayPending int
	// MaxWatch bounds the users one connection's SUBSCRIBE watches
	// (default DefaultMaxWatch).
	MaxWatch int
	// OnlineCacheTTL is how long OnlineUsers keeps the online list it
	// worked out (0: it works it out for every call; the app keeps it 2 s).
	OnlineCacheTTL time.Duration
	// OnlineReadRate bounds the routes a whole reading of the online list
	// reads per second, on average: the list is then kept at least as
	// long as its last reading's routes take at this rate (100,000 online
	// at 10,000 a second: 10 s). 0: OnlineCacheTTL alone.
	OnlineReadRate int
	// Events receives what the app back-end's webhooks report (package
	// event); nil: nothing is reported.
	Events event.Sink
	// AppUsers are the accounts that talk to the app back-end
	// (--webhook-app-users): a message stored for one of them is reported
	// as message.app (webhooks.go); nil: none.
	AppUsers *AppUsers

	// MaxDevices bounds the IoT devices (iot.go; default
	// DefaultMaxDevices).
	MaxDevices int
	// DeviceLoginRate and DeviceLoginBurst bound the device logins per
	// second for the whole route (a token bucket; rate <= 0: no rate
	// limit), DeviceLoginConcurrency those in progress at once (default
	// DefaultDeviceLoginConcurrency). Beyond either a login is refused at
	// once with errs.ErrBusy.
	DeviceLoginRate        float64
	DeviceLoginBurst       int
	DeviceLoginConcurrency int

	// InternalSecret is sent in contract.Header on the admin's calls to
	// gateways (admin.go: drain); "": those calls are refused by them.
	InternalSecret string
	// GatewayHTTP makes the admin's calls to gateways (default: a client
	// with a 5s timeout).
	GatewayHTTP *http.Client

	// Observer is told about uplinks, inbox writes, SYNC answers and
	// group fan-outs (observe.go), for the metrics; nil: nobody.
	Observer Observer

	Logger *slog.Logger
	Now    func() time.Time
}

// Router implements the route service.
type Router struct {
	cfg   Config
	st    Store
	gw    Gateways
	push  Pusher
	order groupOrder // large groups' deliveries, in the order they were stored
	log   *slog.Logger
	now   func() time.Time
	names *lru.Cache[string, string] // user id -> name
	ids   *lru.Cache[string, string] // user name -> id
	// current: user id -> the session the fence found current lately, on
	// which gateway, and when (see fence)
	current *lru.Cache[string, currentSession]
	wake    chan struct{} // janitor
	// deliverSlots holds a token per background delivery (see deliverLater).
	deliverSlots chan struct{}
	hash         *hashPool          // bcrypt slots (limits.go)
	invites      *ratelimit.Limiter // per-inviter invitation budget; nil: none
	creates      *ratelimit.Limiter // per-user group creation budget; nil: none
	copies       *ratelimit.Limiter // per-user budget of group inbox copies; nil: none
	pushes       *ratelimit.Limiter // per-user budget of timeline groups' deliveries; nil: none
	online       onlineCache        // OnlineUsers' list
	presence     presenceBatch      // presence changes waiting for a push
	deviceLogins *deviceLimiter     // bounds DeviceLogin (iot.go)
}

// New returns a Router. Store, Gateways, Pusher and TokenKeys are required.
func New(cfg Config) (*Router, error) {
	if cfg.Store == nil || cfg.Gateways == nil || cfg.Pusher == nil {
		return nil, errors.New("router: Store, Gateways and Pusher are required")
	}
	if len(cfg.TokenKeys) == 0 {
		return nil, errors.New("router: no token key")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Minute
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 24 * time.Hour
	}
	if cfg.LoginPolicy == "" {
		cfg.LoginPolicy = PolicyKick
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = 10
	}
	if cfg.SyncLimit <= 0 {
		cfg.SyncLimit = 200
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = codec.DefaultMaxFrame
	}
	if cfg.Limits.GroupsPerUser <= 0 || cfg.Limits.GroupsPerUser > maxListedGroups {
		cfg.Limits.GroupsPerUser = maxListedGroups
	}
	if cfg.GroupMaxMembers <= 0 {
		cfg.GroupMaxMembers = DefaultGroupMaxMembers
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 1 << 16
	}
	if cfg.JanitorSettle == 0 {
		cfg.JanitorSettle = time.Second
	}
	if cfg.MaxWatch <= 0 {
		cfg.MaxWatch = DefaultMaxWatch
	}
	if cfg.DelayPending <= 0 {
		cfg.DelayPending = DefaultDelayPending
	}
	if cfg.BackgroundDeliveries <= 0 {
		cfg.BackgroundDeliveries = 256
	}
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	if cfg.DeviceLoginConcurrency <= 0 {
		cfg.DeviceLoginConcurrency = DefaultDeviceLoginConcurrency
	}
	cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Events == nil {
		cfg.Events = event.Discard{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	names, err := lru.New[string, string](cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	ids, err := lru.New[string, string](cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	current, err := lru.New[string, currentSession](cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	return &Router{
		cfg: cfg, st: cfg.Store, gw: cfg.Gateways, push: cfg.Pusher,
		log: cfg.Logger.With("component", "router"), now: cfg.Now,
		names: names, ids: ids, wake: make(chan struct{}, 1),
		current:      current,
		deliverSlots: make(chan struct{}, cfg.BackgroundDeliveries),
		hash:         newHashPool(cfg.Limits.HashSlots, cfg.Limits.HashQueue),
		invites:      newHourly(cfg.Limiters, "invite", cfg.Limits.InvitesPerHour),
		creates:      newHourly(cfg.Limiters, "group", cfg.Limits.GroupsPerHour),
		copies:       newPerSecond(cfg.Limiters, "copies", cfg.Limits.GroupCopiesPerSecond, cfg.Limits.GroupCopiesBurst),
		pushes:       newPerSecond(cfg.Limiters, "pushes", cfg.Limits.GroupPushesPerSecond, cfg.Limits.GroupPushesBurst),
		deviceLogins: newDeviceLimiter(cfg.DeviceLoginRate, cfg.DeviceLoginBurst, cfg.DeviceLoginConcurrency),
	}, nil
}

// Health checks the storage and returns the number of live gateways.
func (r *Router) Health(ctx context.Context) (int, error) {
	if err := r.st.Ping(ctx); err != nil {
		return 0, err
	}
	return r.gw.Count(), nil
}

// remember caches a user's name both ways; name is the account's own
// spelling (a name as someone typed it goes to rememberName).
func (r *Router) remember(id, name string) {
	r.names.Add(id, name)
	r.ids.Add(name, id)
}
