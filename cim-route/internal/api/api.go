// Package api is the route service's HTTP edge (gin): the public handler —
// the CIM endpoints, /api/push, history, uploads and downloads, groups, IoT
// devices — and the internal handler with the endpoints gateways call
// (sessions, uplinks, device logins); who may call what
// (access tokens, API keys, the internal secret) and the mapping of errors
// to result codes. Every JSON answer is {"code","message","data"}; the
// internal uplink call speaks protobuf. Handlers only authenticate, decode,
// validate shape and encode; the logic lives behind the Service interface.
//
// The handlers are safe for concurrent use.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/apikey"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/openapi"
	"github.com/gocim/gocim/cim-route/internal/ratelimit"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/web"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/pprofhttp"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// Service is what the handlers need (router.Router implements it): small
// interfaces by concern, so that a test can fake the part it exercises.
type Service interface {
	Accounts
	Messages
	Files
	Groups
	Devices
	Blocks
	Mutes
	GatewayCalls
	// Health reports how many gateways are live (errs.ErrUnavailable when
	// storage is not).
	Health(ctx context.Context) (int, error)
}

// Accounts are registration, login and sessions (/registerAccount, /login,
// /offLine, /onlineUser, and the bearer tokens' sessions).
type Accounts interface {
	Register(ctx context.Context, name, password string) (router.User, error)
	Login(ctx context.Context, req router.LoginRequest) (router.Session, error)
	// CheckSession: nil if sid is uid's current session, else an error
	// wrapping errs.ErrUnauthorized (or errs.ErrUnavailable).
	CheckSession(ctx context.Context, uid, sid string) error
	OnlineUsers(ctx context.Context, page router.Page) ([]router.User, error)
	// Presence: viewer is the bearer's user ("" for an API key).
	Presence(ctx context.Context, viewer string, users []string) ([]router.PresenceState, error)
	// Logoff ends uid's session sid; an empty sid is the current one.
	Logoff(ctx context.Context, uid, sid string) error
	// ChangePassword and LogoutOthers secure uid's account from its
	// session sid, with its password (POST /account/password,
	// /account/logout-others).
	ChangePassword(ctx context.Context, uid, sid, current, next string) (router.Secured, error)
	LogoutOthers(ctx context.Context, uid, sid, password string) (router.Secured, error)
	// DeleteAccount deletes uid's account from its session sid, with its
	// password (POST /account/delete).
	DeleteAccount(ctx context.Context, uid, sid, password string) (router.User, error)
	// LimitKey names the account of a /login or /registerAccount attempt
	// for its rate limit bucket (one per account, by id or any spelling).
	LimitKey(ctx context.Context, userID, userName string) string
}

// Messages are the HTTP ways to send and read messages (/p2pRoute,
// /groupRoute, /api/push, /history, /delay, group receipt counts).
type Messages interface {
	P2P(ctx context.Context, from, to, text string) (string, error)
	Broadcast(ctx context.Context, from, text string) (string, int, error)
	Push(ctx context.Context, req router.PushRequest) (router.PushResult, error)
	History(ctx context.Context, q router.HistoryQuery) (router.HistoryPage, error)
	// DeleteHistory hides messages from uid's own history (POST
	// /history/delete).
	DeleteHistory(ctx context.Context, uid string, msgIDs []string) error
	GroupReceipts(ctx context.Context, uid string, msgIDs []string) (map[string]router.ReceiptCount, error)
	// Delay keeps a private message and sends it after d (POST /delay).
	Delay(ctx context.Context, from, to, text string, d time.Duration) (router.DelayedMsg, error)
}

// Files are uploads and downloads (/upload, /files/).
type Files interface {
	Upload(ctx context.Context, uid, sid, name, contentType string, size int64, body io.Reader) (files.Info, error)
	OpenFile(ref string) (files.File, files.Info, time.Time, error)
	// FileFetched notes that uid downloaded ref (a file fetched by someone
	// other than its uploader is in use and does not expire unreferenced).
	FileFetched(uid string, info files.Info)
}

// Groups are the group endpoints (/groups...).
type Groups interface {
	CreateGroup(ctx context.Context, uid, name string, open bool) (router.Group, error)
	Groups(ctx context.Context, uid string) ([]router.Group, error)
	Group(ctx context.Context, uid, gid string) (router.Group, error)
	GroupMembers(ctx context.Context, uid, gid string, page router.Page) ([]router.User, error)
	JoinGroup(ctx context.Context, uid, gid string) (router.Group, error)
	InviteToGroup(ctx context.Context, uid, gid string, users []string) ([]string, error)
	LeaveGroup(ctx context.Context, uid, gid string) error
	KickFromGroup(ctx context.Context, uid, gid, user string) error
	RenameGroup(ctx context.Context, uid, gid, name string) (router.Group, error)
	TransferGroup(ctx context.Context, uid, gid, user string) (router.Group, error)
	DissolveGroup(ctx context.Context, uid, gid string) error
}

// Devices are the admin's IoT device endpoints (/devices...); a device is
// named by id or name.
type Devices interface {
	CreateDevice(ctx context.Context, name string) (router.DeviceSecret, error)
	Devices(ctx context.Context, after string, limit int) ([]router.DeviceInfo, string, error)
	Device(ctx context.Context, ref string) (router.DeviceInfo, error)
	RevokeDevice(ctx context.Context, ref string) error
	RotateDeviceSecret(ctx context.Context, ref string) (router.DeviceSecret, error)
}

// GatewayCalls are what gateways call on the internal listener
// (package contract names the paths).
type GatewayCalls interface {
	SessionOnline(ctx context.Context, s contract.Session) error
	SessionOffline(ctx context.Context, s contract.Session) error
	Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error)
	// DeviceLogin trades a device's credential for a gateway token.
	DeviceLogin(ctx context.Context, req contract.DeviceLogin) (contract.DeviceToken, error)
}

// APIKeyHeader carries an application back-end's API key. The internal
// secret comes in contract.Header.
const APIKeyHeader = "X-API-Key"

// minPushBody is the body limit of POST /api/push when --max-body is
// smaller: 10,000 recipients do not fit in 64 KiB, and only API keys with
// the push scope get that far.
const minPushBody = 1 << 20

// Config configures the handlers.
type Config struct {
	Service Service
	Logger  *slog.Logger

	// TokenKeys verify access tokens (Authorization: Bearer).
	TokenKeys [][]byte
	// APIKeys are the application back-ends' keys (X-API-Key); nil: none.
	APIKeys *apikey.Ring
	// InternalSecrets are the accepted contract.Header values. Without any,
	// every /internal/* call is refused.
	InternalSecrets []string
	// LoginRate and LoginBurst limit /login and /registerAccount per client
	// IP and per user name (token buckets); LoginRate <= 0: no limit.
	LoginRate  float64
	LoginBurst int
	// TrustedProxies (IPs or CIDRs) may name the client in
	// X-Forwarded-For / X-Real-IP; none: the peer address is the client.
	TrustedProxies []string
	// CORSOrigins may call the public API from their pages (another
	// origin); "*": any. None: no CORS headers, so browsers keep other
	// origins' pages from reading answers.
	CORSOrigins []string
	// Pprof mounts Go's profiles at /debug/pprof/ on the internal handler,
	// behind the internal secret.
	Pprof bool

	// MaxBody bounds JSON request bodies (default 64 KiB); larger ones get
	// 413 / 4131.
	MaxBody int64
	// MaxUplink bounds an uplink batch (default 64 MiB: a gateway batch
	// may carry many frames of up to 64 KiB each).
	MaxUplink int64
	// MaxUpload bounds POST /upload bodies (default 10 MiB); larger ones get
	// 413 / 4131.
	MaxUpload int64

	// RegisterRate and RegisterBurst bound /registerAccount for all
	// clients together (besides LoginRate per address); <= 0: no limit.
	RegisterRate  float64
	RegisterBurst int
	// HistoryRate and HistoryBurst bound /history per user; <= 0: no
	// limit. Over it: 429 / 4291.
	HistoryRate  float64
	HistoryBurst int
	// UploadRate and UploadBurst bound /upload per user; <= 0: no limit.
	// Over it: 429 / 4293.
	UploadRate  float64
	UploadBurst int
	// ListRate and ListBurst bound a user's listing requests (online
	// users, presence, groups, members: answers of up to a thousand
	// entries) and changes of its blocks, mutes and groups per second;
	// <= 0: no limit. API keys are not limited. Over it: 429 / 4291.
	ListRate  float64
	ListBurst int
	// Limiters makes the rate limiters above: the app shares them in
	// Redis (ratelimit.Shared), so that each budget is the cluster's
	// whatever the number of route processes; nil keeps them in this
	// process.
	Limiters ratelimit.Maker
	// ReadTimeout and WriteTimeout are the server's (app sets them);
	// /upload and /files extend them by the transfer's size at
	// TransferMinRate bytes/s (default 64 KiB/s), so a slow client gets
	// what a fair one needs and no more. Zero: no deadline is touched.
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	TransferMinRate int64

	Now func() time.Time // default time.Now (token expiry)
}

type handler struct {
	svc       Service
	log       *slog.Logger
	tokenKeys [][]byte
	apiKeys   *apikey.Ring
	internal  *contract.Secrets
	limiter   *ratelimit.Limiter
	// registrations (one bucket, "all"), histories and uploads (per user)
	registrations *ratelimit.Limiter
	histories     *ratelimit.Limiter
	uploads       *ratelimit.Limiter
	lists         *ratelimit.Limiter
	readTimeout   time.Duration
	writeTimeout  time.Duration
	minRate       int64
	maxBody       int64
	maxUplink     int64
	maxUpload     int64
	now           func() time.Time
}

var releaseMode sync.Once

func newHandler(cfg Config) *handler {
	// Gin's debug mode prints route tables to stdout, which carries only the
	// ready line.
	releaseMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.MaxUplink <= 0 {
		cfg.MaxUplink = 64 << 20
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 10 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TransferMinRate <= 0 {
		cfg.TransferMinRate = 64 << 10
	}
	limiter := cfg.Limiters
	if limiter == nil {
		limiter = ratelimit.New
	}
	perUser := func(name string, rate float64, burst int) *ratelimit.Limiter {
		return limiter(ratelimit.Config{Name: name, Rate: rate, Burst: burst, Dimensions: 1})
	}
	return &handler{
		registrations: limiter(ratelimit.Config{Name: "register", Rate: cfg.RegisterRate, Burst: cfg.RegisterBurst, Dimensions: 1, Size: 1}),
		histories:     perUser("history", cfg.HistoryRate, cfg.HistoryBurst),
		uploads:       perUser("upload", cfg.UploadRate, cfg.UploadBurst),
		lists:         perUser("list", cfg.ListRate, cfg.ListBurst),
		readTimeout:   cfg.ReadTimeout, writeTimeout: cfg.WriteTimeout, minRate: cfg.TransferMinRate,
		svc: cfg.Service, log: cfg.Logger.With("component", "api"),
		tokenKeys: cfg.TokenKeys, apiKeys: cfg.APIKeys, internal: contract.NewSecrets(cfg.InternalSecrets),
		limiter: limiter(ratelimit.Config{Name: "login", Rate: cfg.LoginRate, Burst: cfg.LoginBurst, Dimensions: 2}),
		maxBody: cfg.MaxBody, maxUplink: cfg.MaxUplink, maxUpload: cfg.MaxUpload, now: cfg.Now,
	}
}

// engine is a gin engine with the JSON envelope for panics, unknown paths
// and wrong methods.
func (h *handler) engine() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(gin.CustomRecovery(func(c *gin.Context, rec any) {
		h.log.Error("handler panic", "path", c.Request.URL.Path, "panic", rec)
		c.AbortWithStatusJSON(http.StatusInternalServerError, envelope{Code: codes.Internal, Message: codes.Internal.Text()})
	}))
	e.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, envelope{Code: codes.BadArgument, Message: "no such endpoint: " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, envelope{Code: codes.BadArgument, Message: "method " + c.Request.Method + " not allowed here"})
	})
	return e
}

// NewPublic returns the handler of the public listener (--listen): the
// user and application API. /internal/* is not served here.
func NewPublic(cfg Config) (http.Handler, error) {
	h := newHandler(cfg)
	e := h.engine()
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	if len(cfg.CORSOrigins) > 0 {
		e.Use(cors(cfg.CORSOrigins))
	}
	web.Mount(e) // the chat page at /, its files under /web/
	openapi.Mount(e)
	bearer := access{bearer: true}
	userOrKey := func(s apikey.Scope) access { return access{bearer: true, scope: s} }

	e.POST("/registerAccount", h.register)
	e.POST("/login", h.login)
	e.GET("/healthz", h.healthz)
	e.GET("/onlineUser", h.authorize(userOrKey(apikey.Admin)), h.limitList, h.onlineUsers)
	e.GET("/presence", h.authorize(userOrKey(apikey.Admin)), h.limitList, h.presence)
	e.POST("/offLine", h.authorize(access{bearer: true, stale: true, scope: apikey.Admin}), h.offline)
	e.POST("/account/password", h.authorize(bearer), h.changePassword)
	e.POST("/account/logout-others", h.authorize(bearer), h.logoutOthers)
	e.POST("/account/delete", h.authorize(bearer), h.deleteAccount)
	e.GET("/history", h.authorize(bearer), h.history)
	e.POST("/history/delete", h.authorize(bearer), h.deleteHistory)
	e.POST("/delay", h.authorize(bearer), h.delay)
	e.GET("/blocks", h.authorize(bearer), h.limitList, h.blocks)
	e.POST("/blocks", h.authorize(bearer), h.limitList, h.block)
	e.DELETE("/blocks/:user", h.authorize(bearer), h.limitList, h.unblock)
	e.GET("/mutes", h.authorize(bearer), h.limitList, h.mutes)
	e.POST("/mutes", h.authorize(bearer), h.limitList, h.mute)
	e.DELETE("/mutes", h.authorize(bearer), h.limitList, h.unmute)
	e.POST("/upload", h.authorize(bearer), h.upload)
	e.GET("/files/:ref", h.authorize(bearer), h.file)
	e.POST("/p2pRoute", h.authorize(userOrKey(apikey.Push)), h.p2p)
	e.POST("/groupRoute", h.authorize(userOrKey(apikey.Push)), h.group)
	e.POST("/api/push", h.authorize(access{scope: apikey.Push}), h.push)

	d := e.Group("/devices", h.authorize(access{scope: apikey.Admin}))
	d.POST("", h.createDevice)
	d.GET("", h.listDevices)
	d.GET("/:id", h.getDevice)
	d.DELETE("/:id", h.revokeDevice)
	d.POST("/:id/secret", h.rotateDeviceSecret)

	adm := e.Group("/admin", h.authorize(access{scope: apikey.Admin}))
	adm.GET("/gateways", h.adminGateways)
	adm.POST("/gateways/:id/drain", h.adminDrain)
	adm.POST("/users/:id/kick", h.adminKick)
	adm.POST("/users/:id/ban", h.adminBan)
	adm.POST("/users/:id/unban", h.adminUnban)
	adm.POST("/users/:id/password", h.adminPassword)
	adm.DELETE("/users/:id", h.adminDelete)

	g := e.Group("/groups", h.authorize(bearer))
	// Changes take from the listing bucket too: each costs Redis writes
	// and may queue a webhook event, whose queue all users share.
	g.POST("", h.limitList, h.createGroup)
	g.GET("", h.limitList, h.myGroups)
	g.GET("/receipts", h.limitList, h.groupReceipts)
	g.GET("/:gid", h.limitList, h.getGroup)
	g.GET("/:gid/members", h.limitList, h.groupMembers)
	g.POST("/:gid/join", h.limitList, h.joinGroup)
	g.POST("/:gid/invite", h.limitList, h.inviteToGroup)
	g.POST("/:gid/leave", h.limitList, h.leaveGroup)
	g.POST("/:gid/kick", h.limitList, h.kickFromGroup)
	g.POST("/:gid/owner", h.limitList, h.transferGroup)
	g.POST("/:gid/rename", h.limitList, h.renameGroup)
	g.POST("/:gid/dissolve", h.limitList, h.dissolveGroup)
	return e, nil
}

// NewInternal returns the handler of the internal listener
// (--internal-listen): the gateways' /internal/* calls, each requiring the
// internal secret, and /healthz.
func NewInternal(cfg Config) http.Handler {
	h := newHandler(cfg)
	e := h.engine()
	e.GET("/healthz", h.healthz)
	e.POST(contract.PathOnline, h.requireInternal, h.sessionOnline)
	e.POST(contract.PathOffline, h.requireInternal, h.sessionOffline)
	e.POST(contract.PathUplink, h.requireInternal, h.uplink)
	e.POST(contract.PathDeviceLogin, h.requireInternal, h.deviceLogin)
	if cfg.Pprof {
		e.GET(pprofhttp.Prefix+"*profile", h.requireInternal, gin.WrapH(pprofhttp.Handler()))
	}
	return e
}

// envelope is every JSON answer.
type envelope struct {
	Code    codes.Code `json:"code"`
	Message string     `json:"message"`
	Data    any        `json:"data"`
}

func ok(c *gin.Context, data any) {
	c.JSON(http.StatusOK, envelope{Code: codes.OK, Message: codes.OK.Text(), Data: data})
}

func (h *handler) fail(c *gin.Context, err error) {
	code, status, known := classify(err)
	msg := err.Error()
	switch {
	case !known:
		h.log.Error("request failed", "path", c.Request.URL.Path, "err", err)
		msg = codes.Internal.Text()
	case status >= 500:
		h.log.Warn("request failed", "path", c.Request.URL.Path, "code", code, "err", err)
	default:
		h.log.Debug("request rejected", "path", c.Request.URL.Path, "code", code, "err", err)
	}
	c.JSON(status, envelope{Code: code, Message: msg})
}

// read returns the body, at most limit bytes.
func read(c *gin.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: more than %d bytes", errs.ErrTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", errs.ErrBadArgument, err)
	}
	return body, nil
}

// bind decodes a JSON body of at most --max-body bytes into v.
func (h *handler) bind(c *gin.Context, v any) error {
	return h.decode(c, h.maxBody, v, false)
}

// bindOptional is bind for an optional body: an empty one leaves v alone.
func (h *handler) bindOptional(c *gin.Context, v any) error {
	return h.decode(c, h.maxBody, v, true)
}

// decode reads at most limit bytes and decodes them into v. Unknown fields
// are ignored; wrong types and bad JSON are errs.ErrBadArgument.
func (h *handler) decode(c *gin.Context, limit int64, v any, optional bool) error {
	body, err := read(c, limit)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return fmt.Errorf("%w: empty body, want a JSON object", errs.ErrBadArgument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: bad JSON: %v", errs.ErrBadArgument, err)
	}
	return nil
}
