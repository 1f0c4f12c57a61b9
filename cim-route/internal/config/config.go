// Package config holds cim-route's configuration: one struct with documented
// defaults, its command-line flags (with CIM_* environment fallbacks through
// envflag) and Validate for the rules that span fields.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gocim/gocim/cim-route/internal/apikey"
	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/internal/logging"
	"github.com/gocim/gocim/proto/token"
)

// Login policies.
// Upload stores (--upload-store).
const (
	UploadStoreDisk  = "disk"
	UploadStoreRedis = "redis"
)

const (
	PolicyKick   = "kick"
	PolicyReject = "reject"
	// PolicyPlatform: one session per platform (device slot): a newer
	// login on the same platform kicks the older one, the others stay.
	PolicyPlatform = "platform"
)

// Authenticators (--auth).
const (
	AuthBuiltin = "builtin"
	AuthHTTP    = "http"
	AuthLDAP    = "ldap"
)

// Balance strategies.
const (
	BalanceRoundRobin = "round-robin"
	BalanceHash       = "hash"
)

// DefaultGroupTimeline is --group-timeline-min: groups this large store a
// message once (a timeline) rather than once per member, and give their
// senders no per-member DELIVERED and READ counts.
const DefaultGroupTimeline = 500

// Config is everything cim-route can be told.
type Config struct {
	Listen         string // public API listen address
	InternalListen string // internal listen address (gateways' /internal/* calls)
	InternalSecret string // comma-separated X-CIM-Internal secrets; the first is sent
	TLSCert        string // PEM certificate (chain) of the public listener; empty: plain HTTP
	TLSKey         string // PEM private key of TLSCert
	TrustedProxies string // comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed
	// CORSOrigins are the web origins (scheme://host[:port], comma-separated,
	// or "*") whose pages may call the public API from another origin;
	// empty: none (the route's own chat page is same-origin).
	CORSOrigins     string
	ZK              string        // comma-separated ZooKeeper servers
	ZKRoot          string        // gateways register under <ZKRoot>/servers
	Redis           string        // comma-separated Redis addresses
	RedisPassword   string        //
	RedisDB         int           //
	RedisMasterName string        // sentinel master name; Redis then lists sentinels
	RedisPrefix     string        // prefix of every key
	TokenSecret     string        // comma-separated HMAC keys; the first signs
	TokenTTL        time.Duration // token lifetime and pending-route TTL
	AccessTTL       time.Duration // access (bearer) token lifetime
	ResumeTTL       time.Duration // resume token lifetime (0: none)
	APIKeys         string        // name:secret:scope[+scope],... for application back-ends
	LoginRate       float64       // /login and /registerAccount attempts per second per IP and per name; 0: off
	LoginBurst      int           // bucket size of LoginRate
	Pprof           bool          // serve /debug/pprof/ on the internal listener, behind the internal secret
	GatewayStreams  bool          // keep a stream open to every gateway for pushes and uplinks
	MaxBody         int64         // largest JSON request body in bytes
	Auth            string        // builtin | http | ldap
	AuthURL         string        // --auth http: the application's endpoint
	AuthSecret      string        // --auth http: sent as X-CIM-Auth
	AuthTimeout     time.Duration // one authenticator call (http and ldap)
	LDAPURL         string        // ldap://host:port or ldaps://host:port
	LDAPStartTLS    bool          //
	LDAPCA          string        // PEM CA file for ldaps/StartTLS; empty: the system pool
	LDAPBindDN      string        // service account for the search; empty: anonymous
	LDAPBindPW      string        //
	LDAPBaseDN      string        //
	LDAPFilter      string        // %s is the escaped user name
	LDAPNameAttr    string        // attribute holding the gocim user name
	LoginPolicy     string        // kick | reject | platform
	Balance         string        // round-robin | hash
	HealthInterval  time.Duration // gateway /healthz period
	PushTimeout     time.Duration // timeout of one gateway /push call
	BcryptCost      int           //
	InboxMax        int           // entries kept per inbox
	InboxTTL        time.Duration // inbox entries older than this are trimmed
	InboxPerSender  int           // each sender's share of an inbox's unread entries; 0: none
	DedupWindow     time.Duration // how long a resend is recognized
	EditWindow      time.Duration // how long after sending a message may be recalled or edited (0: never)
	SyncLimit       int           // default and maximum entries per SYNC answer
	GroupTimeline   int           // groups of at least this many members keep one timeline (0: never)
	MaxFrame        int           // largest frame a client takes (as the gateways' and clients' --max-frame)
	GroupMaxMembers int           // members a group may have
	UploadStore     string        // disk | redis: where uploads live (package files)
	UploadDir       string        // where POST /upload stores files (--upload-store disk)
	UploadMax       int64         // largest upload in bytes
	LogLevel        string        // debug | info | warn | error
	LogFormat       string        // text | json

	// Abuse limits of the HTTP edge (issue 11): what one client, one user
	// and everybody together may cost.
	ReadTimeout      time.Duration // reading one whole request (longer for /upload, see TransferMinRate)
	WriteTimeout     time.Duration // writing one answer (longer for /files downloads)
	MaxConnsPerAddr  int           // public listener: connections per client IPv4 address or IPv6 /64; 0: no limit
	MaxConns         int           // public listener: connections in total; 0: the open-file limit minus a reserve
	TransferMinRate  int64         // bytes/s an upload or download must at least move; sizes its deadline
	RegisterRate     float64       // /registerAccount per second, all clients together; 0: no limit
	RegisterBurst    int           // bucket size of RegisterRate
	HashQueue        int           // password checks waiting for a bcrypt slot; more get 503/5032
	HistoryRate      float64       // /history requests per second per user; 0: no limit
	HistoryBurst     int           // bucket size of HistoryRate
	ListRate         float64       // listing requests (online users, presence, groups, members) and block, mute and group changes per second per user; 0: no limit
	ListBurst        int           // bucket size of ListRate
	OnlineReadRate   int           // routes a second the online list's whole readings read on average, per process; 0: every 2 s whatever its size
	InvitesPerHour   int           // group invitations one user may send per hour; 0: no limit
	GroupsPerHour    int           // groups one user may create per hour; 0: no limit
	GroupsPerUser    int           // groups one user may be a member of (owned included), 1..1000
	GroupCopiesRate  float64       // inbox copies per second one user's messages to groups without a timeline may store; 0: no limit
	GroupCopiesBurst int           // bucket size of GroupCopiesRate (at least --group-max-members)
	GroupPushRate    float64       // deliveries per second one user's messages to groups with a timeline may cause; 0: no limit
	GroupPushBurst   int           // bucket size of GroupPushRate (at least --group-max-members)
	UploadRate       float64       // uploads per second per user; 0: no limit
	UploadBurst      int           // bucket size of UploadRate
	UploadQuota      int64         // bytes one user may upload per day; 0: no limit
	UploadTotal      int64         // bytes all stored uploads may take; 0: no limit
	UploadMinFree    int64         // free bytes kept on the upload file system; uploads are refused below
	UploadUnrefTTL   time.Duration // an upload nobody else fetched and no message named is deleted after this
	UploadMaxAge     time.Duration // every upload is deleted after this; 0: kept while referenced
	UploadSweep      time.Duration // period of the upload janitor

	// Webhooks to the app back-end (package webhook; webhooks.go).
	WebhookURL      string        // comma-separated URLs each event is POSTed to; empty: no webhooks
	WebhookSecret   string        // HMAC key of X-Gocim-Signature; required with URLs
	WebhookEvents   string        // comma-separated event types sent; empty: all
	WebhookAppUsers string        // comma-separated user ids or names: messages to them are message.app
	WebhookQueueMax int           // events queued in Redis per URL; more are refused
	WebhookMaxAge   time.Duration // an event still failing after this is dropped
	WebhookTimeout  time.Duration // one webhook request, answer included
	WebhookRetryMax time.Duration // the longest wait between attempts (backoff from 1 s doubles up to it)

	// IoT devices (devices.go).
	MaxDevices             int     // devices that may exist; POST /devices beyond it gets 429/4293
	DeviceLoginRate        float64 // device logins per second, the whole route; 0: no rate limit
	DeviceLoginBurst       int     // bucket size of DeviceLoginRate
	DeviceLoginConcurrency int     // device logins in progress at once
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		Listen:          "0.0.0.0:8080",
		InternalListen:  "127.0.0.1:8090",
		AccessTTL:       24 * time.Hour,
		ResumeTTL:       7 * 24 * time.Hour,
		LoginRate:       2,
		LoginBurst:      20,
		MaxBody:         64 << 10,
		GatewayStreams:  true,
		Auth:            AuthBuiltin,
		AuthTimeout:     3 * time.Second,
		LDAPFilter:      "(uid=%s)",
		LDAPNameAttr:    "uid",
		ZK:              "127.0.0.1:2181",
		ZKRoot:          "/cim",
		Redis:           "127.0.0.1:6379",
		RedisPrefix:     "cim:",
		TokenTTL:        60 * time.Second,
		LoginPolicy:     PolicyKick,
		Balance:         BalanceRoundRobin,
		HealthInterval:  2 * time.Second,
		PushTimeout:     3 * time.Second,
		BcryptCost:      bcrypt.DefaultCost,
		InboxMax:        10000,
		InboxTTL:        7 * 24 * time.Hour,
		InboxPerSender:  1000,
		DedupWindow:     24 * time.Hour,
		EditWindow:      15 * time.Minute,
		SyncLimit:       200,
		GroupTimeline:   DefaultGroupTimeline,
		MaxFrame:        65536,
		GroupMaxMembers: 10000,
		UploadStore:     UploadStoreDisk,
		UploadDir:       filepath.Join(os.TempDir(), "gocim-uploads"),
		UploadMax:       10 << 20,
		LogLevel:        "info",
		LogFormat:       "text",

		ReadTimeout:      30 * time.Second,
		WriteTimeout:     30 * time.Second,
		MaxConnsPerAddr:  1024,
		TransferMinRate:  64 << 10,
		RegisterRate:     10,
		RegisterBurst:    100,
		HashQueue:        256,
		HistoryRate:      5,
		HistoryBurst:     20,
		ListRate:         5,
		OnlineReadRate:   10000,
		ListBurst:        50,
		InvitesPerHour:   1000,
		GroupsPerHour:    100,
		GroupsPerUser:    1000,
		GroupCopiesRate:  2000,
		GroupCopiesBurst: 20000,
		GroupPushRate:    20000,
		GroupPushBurst:   1000000,
		UploadRate:       0.2,
		UploadBurst:      10,
		UploadQuota:      1 << 30,
		UploadTotal:      10 << 30,
		UploadMinFree:    1 << 30,
		UploadUnrefTTL:   24 * time.Hour,
		UploadSweep:      10 * time.Minute,

		WebhookQueueMax: 100000,
		WebhookMaxAge:   24 * time.Hour,
		WebhookTimeout:  10 * time.Second,
		WebhookRetryMax: 5 * time.Minute,

		MaxDevices:             100000,
		DeviceLoginRate:        2000,
		DeviceLoginBurst:       2000,
		DeviceLoginConcurrency: 256,
	}
}

// RegisterFlags binds c's fields to flags in fs; the current values of c are
// the defaults --help shows.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "public API listen address (host:port; port 0 picks a free one); /internal/* is not served here")
	fs.StringVar(&c.InternalListen, "internal-listen", c.InternalListen, "internal listen address for the gateways' /internal/* calls and /healthz; gateways' --route points here")
	fs.StringVar(&c.InternalSecret, "internal-secret", c.InternalSecret, "secrets shared with the gateways (X-CIM-Internal), comma-separated, each >= 16 bytes; the first is sent, all are accepted (required)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) file: the public listener serves HTTPS (needs --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key file of --tls-cert")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", c.TrustedProxies, "reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client for rate limits; empty: the peer address is the client")
	fs.StringVar(&c.CORSOrigins, "cors-origins", c.CORSOrigins, "web origins (scheme://host[:port], comma-separated; * for any) whose pages may call the public API cross-origin; empty: none (the chat page at / is same-origin)")
	fs.StringVar(&c.ZK, "zk", c.ZK, "ZooKeeper servers, comma-separated")
	fs.StringVar(&c.ZKRoot, "zk-root", c.ZKRoot, "ZooKeeper root; gateways register under <root>/servers")
	fs.StringVar(&c.Redis, "redis", c.Redis, "Redis addresses, comma-separated (several = cluster; sentinels with --redis-master-name)")
	fs.StringVar(&c.RedisPassword, "redis-password", c.RedisPassword, "Redis password")
	fs.IntVar(&c.RedisDB, "redis-db", c.RedisDB, "Redis database number (single node or sentinel; default 0)")
	fs.StringVar(&c.RedisMasterName, "redis-master-name", c.RedisMasterName, "Redis sentinel master name (empty: no sentinel)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key")
	fs.StringVar(&c.TokenSecret, "token-secret", c.TokenSecret, "HMAC secrets of gateway and access tokens, comma-separated, each >= 16 bytes; the first signs, all verify (required)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "gateway token lifetime (also how long an unconfirmed session is kept)")
	fs.DurationVar(&c.AccessTTL, "access-ttl", c.AccessTTL, "access (bearer) token lifetime; a token dies earlier when its session ends")
	fs.DurationVar(&c.ResumeTTL, "resume-ttl", c.ResumeTTL, "how long after a password login its resume tokens log in: a client logs in again once with one instead of its password (no bcrypt, no authenticator) and gets the next, which ends at the same time; a newer login on the platform, a log-off, a password reset or a ban revokes it; 0: none")
	fs.StringVar(&c.APIKeys, "api-keys", c.APIKeys, "API keys of application back-ends (X-API-Key), comma-separated name:secret:scope[+scope], secret >= 16 bytes, scopes push and admin")
	fs.Float64Var(&c.LoginRate, "login-rate", c.LoginRate, "/login and /registerAccount attempts per second allowed per client IP and per user name (0: no limit)")
	fs.IntVar(&c.LoginBurst, "login-burst", c.LoginBurst, "attempts allowed at once before --login-rate applies")
	fs.BoolVar(&c.GatewayStreams, "gateway-streams", c.GatewayStreams, "keep one long-lived stream open to each gateway (on its /push) carrying pushes and its uplinks; false: one HTTP request per batch")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go profiles at /debug/pprof/ on --internal-listen (X-CIM-Internal required)")
	fs.Int64Var(&c.MaxBody, "max-body", c.MaxBody, "largest JSON request body in bytes (65536 = 64 KiB); larger ones get 413")
	fs.StringVar(&c.Auth, "auth", c.Auth, "who checks passwords at /login: builtin (Redis accounts), http (--auth-url) or ldap (--ldap-*)")
	fs.StringVar(&c.AuthURL, "auth-url", c.AuthURL, "--auth http: URL the route POSTs {userName,password} to")
	fs.StringVar(&c.AuthSecret, "auth-secret", c.AuthSecret, "--auth http: secret sent as X-CIM-Auth (optional, >= 16 bytes)")
	fs.DurationVar(&c.AuthTimeout, "auth-timeout", c.AuthTimeout, "timeout of one --auth http or ldap check")
	fs.StringVar(&c.LDAPURL, "ldap-url", c.LDAPURL, "--auth ldap: directory URL, ldap://host:port or ldaps://host:port")
	fs.BoolVar(&c.LDAPStartTLS, "ldap-start-tls", c.LDAPStartTLS, "--auth ldap: upgrade an ldap:// connection with StartTLS")
	fs.StringVar(&c.LDAPCA, "ldap-ca", c.LDAPCA, "--auth ldap: PEM CA file trusted for ldaps/StartTLS (empty: the system pool)")
	fs.StringVar(&c.LDAPBindDN, "ldap-bind-dn", c.LDAPBindDN, "--auth ldap: DN of the service account that searches users (empty: anonymous search)")
	fs.StringVar(&c.LDAPBindPW, "ldap-bind-password", c.LDAPBindPW, "--auth ldap: password of --ldap-bind-dn")
	fs.StringVar(&c.LDAPBaseDN, "ldap-base-dn", c.LDAPBaseDN, "--auth ldap: where users are searched, e.g. ou=people,dc=example,dc=org")
	fs.StringVar(&c.LDAPFilter, "ldap-filter", c.LDAPFilter, "--auth ldap: search filter; %s is the escaped user name")
	fs.StringVar(&c.LDAPNameAttr, "ldap-name-attr", c.LDAPNameAttr, "--auth ldap: attribute holding the gocim user name")
	fs.StringVar(&c.LoginPolicy, "login-policy", c.LoginPolicy, "when a user logs in twice: kick (the old session), reject (the new login), or platform (one session per platform — terminal, web, mobile, desktop, device, other — a newer login on the same platform kicks the older)")
	fs.StringVar(&c.Balance, "balance", c.Balance, "gateway selection: round-robin or hash (consistent hash on the user id)")
	fs.DurationVar(&c.HealthInterval, "health-interval", c.HealthInterval, "period of the gateways' /healthz check")
	fs.DurationVar(&c.PushTimeout, "push-timeout", c.PushTimeout, "timeout of one /push call to a gateway")
	fs.IntVar(&c.BcryptCost, "bcrypt-cost", c.BcryptCost, "bcrypt cost of password hashes")
	fs.IntVar(&c.InboxMax, "inbox-max", c.InboxMax, "entries kept per user inbox; older ones are trimmed")
	fs.DurationVar(&c.InboxTTL, "inbox-ttl", c.InboxTTL, "inbox entries older than this are trimmed (an idle inbox expires after it)")
	fs.IntVar(&c.InboxPerSender, "inbox-per-sender", c.InboxPerSender, "once an inbox holds this many unread messages, each sender may add this many more until the user reads on; more get ERROR 4293 (a group message's copy for that member is not stored), so one user cannot push everybody else's messages out of an inbox (0: no share)")
	fs.DurationVar(&c.DedupWindow, "dedup-window", c.DedupWindow, "how long a resent message (same sender and clientMsgId) is recognized")
	fs.DurationVar(&c.EditWindow, "edit-window", c.EditWindow, "how long after sending a message its sender may recall or edit it (0: recall and edit are refused)")
	fs.IntVar(&c.SyncLimit, "sync-limit", c.SyncLimit, "default and maximum number of entries in one SYNC answer")
	fs.IntVar(&c.GroupTimeline, "group-timeline-min", c.GroupTimeline, "a message to a group of at least this many members is stored once, in the group's timeline, not once per member (0: never)")
	fs.IntVar(&c.MaxFrame, "max-frame", c.MaxFrame, "largest frame clients take (the gateways' and clients' --max-frame): a message whose delivery would be larger is refused with ERROR 4131")
	fs.IntVar(&c.GroupMaxMembers, "group-max-members", c.GroupMaxMembers, "members a group may have (owner included); joins beyond it get 409/9201")
	fs.StringVar(&c.UploadStore, "upload-store", c.UploadStore, "where uploads live: disk (--upload-dir; route replicas must share it) or redis (256 KiB pieces in the route's Redis; no shared disk needed)")
	fs.StringVar(&c.UploadDir, "upload-dir", c.UploadDir, "directory for uploaded files (POST /upload) with --upload-store disk; created if missing; route replicas must share it")
	fs.Int64Var(&c.UploadMax, "upload-max", c.UploadMax, "largest upload in bytes (10485760 = 10 MiB); larger ones get 413")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")

	// Abuse limits of the HTTP edge.
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "longest time to read one request, headers and body (both listeners; /upload gets longer, see --transfer-min-rate)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "longest time to write one answer (both listeners; /files downloads get longer, see --transfer-min-rate)")
	fs.IntVar(&c.MaxConnsPerAddr, "max-conns-per-addr", c.MaxConnsPerAddr, "open connections one client IPv4 address (IPv6 /64) may hold on --listen; more are closed at once (0: no limit; trusted proxies are exempt)")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "open connections on --listen in total (0: the open-file limit minus a reserve for Redis, gateways and files)")
	fs.Int64Var(&c.TransferMinRate, "transfer-min-rate", c.TransferMinRate, "slowest an upload or download may be, bytes/s: its deadline is --read-timeout/--write-timeout plus size / this")
	fs.Float64Var(&c.RegisterRate, "register-rate", c.RegisterRate, "/registerAccount per second for all clients together, besides --login-rate per address (0: no limit)")
	fs.IntVar(&c.RegisterBurst, "register-burst", c.RegisterBurst, "registrations allowed at once before --register-rate applies")
	fs.IntVar(&c.HashQueue, "hash-queue", c.HashQueue, "logins (and as many registrations) that may wait for a bcrypt slot (one per core, registrations at most half); more get 503/5032")
	fs.Float64Var(&c.HistoryRate, "history-rate", c.HistoryRate, "/history requests per second per user; more get 429/4291 (0: no limit)")
	fs.IntVar(&c.HistoryBurst, "history-burst", c.HistoryBurst, "/history requests allowed at once before --history-rate applies")
	fs.Float64Var(&c.ListRate, "list-rate", c.ListRate, "listing requests (GET /onlineUser, /presence, /groups, /groups/{gid}, /groups/{gid}/members, /groups/receipts, /blocks, /mutes) and changes (POST /groups, /groups/{gid}/*, /blocks, /mutes and their DELETEs) per second per user; more get 429/4291; API keys are not limited (0: no limit)")
	fs.IntVar(&c.ListBurst, "list-burst", c.ListBurst, "listing requests allowed at once before --list-rate applies")
	fs.IntVar(&c.OnlineReadRate, "online-read-rate", c.OnlineReadRate, "routes a second, on average, that working out the online list (GET /onlineUser, :olu) reads per route process: it is kept 2 s, longer when larger (0: every 2 s whatever its size)")
	fs.IntVar(&c.InvitesPerHour, "invites-per-hour", c.InvitesPerHour, "group invitations one user may send per hour (all at once at most); more get 429/4293 (0: no limit)")
	fs.IntVar(&c.GroupsPerHour, "groups-per-hour", c.GroupsPerHour, "groups one user may create per hour (all at once at most); more get 429/4293 (0: no limit)")
	fs.Float64Var(&c.GroupCopiesRate, "group-copies-rate", c.GroupCopiesRate, "inbox copies per second one user's messages to groups below --group-timeline-min may store (one per member); beyond --group-copies-burst a message gets ERROR 4293 (0: no limit)")
	fs.IntVar(&c.GroupCopiesBurst, "group-copies-burst", c.GroupCopiesBurst, "inbox copies one user's group messages may store at once before --group-copies-rate applies (at least --group-max-members)")
	fs.Float64Var(&c.GroupPushRate, "group-push-rate", c.GroupPushRate, "deliveries per second one user's messages to groups of at least --group-timeline-min may cause (one per member but the sender); beyond --group-push-burst a message gets ERROR 4293 (0: no limit)")
	fs.IntVar(&c.GroupPushBurst, "group-push-burst", c.GroupPushBurst, "deliveries one user's messages to large groups may cause at once before --group-push-rate applies (at least --group-max-members)")
	fs.IntVar(&c.GroupsPerUser, "max-groups-per-user", c.GroupsPerUser, "groups one user may be a member of, owned ones included (1..1000: a login's SYNC lists at most 1000); creating or joining one more gets 429/4293")
	fs.Float64Var(&c.UploadRate, "upload-rate", c.UploadRate, "uploads per second per user; more get 429/4293 (0: no limit)")
	fs.IntVar(&c.UploadBurst, "upload-burst", c.UploadBurst, "uploads allowed at once before --upload-rate applies")
	fs.Int64Var(&c.UploadQuota, "upload-quota", c.UploadQuota, "bytes one user may upload per day (UTC); more get 429/4293 (0: no limit)")
	fs.Int64Var(&c.UploadTotal, "upload-total", c.UploadTotal, "bytes all stored uploads may take together; more get 507/5070 (0: no limit)")
	fs.Int64Var(&c.UploadMinFree, "upload-min-free", c.UploadMinFree, "free bytes kept on the file system of --upload-dir (--upload-store redis: below Redis maxmemory, when set); uploads that would go below get 507/5070 (0: no check)")
	fs.DurationVar(&c.UploadUnrefTTL, "upload-unreferenced-ttl", c.UploadUnrefTTL, "an upload that no message named and nobody but its uploader fetched is deleted after this")
	fs.DurationVar(&c.UploadMaxAge, "upload-max-age", c.UploadMaxAge, "every upload is deleted after this (0: referenced uploads are kept)")
	fs.DurationVar(&c.UploadSweep, "upload-sweep", c.UploadSweep, "period of the upload janitor that deletes expired uploads and recounts the space used")

	// Webhooks.
	fs.StringVar(&c.WebhookURL, "webhook-url", c.WebhookURL, "app back-end URLs (http:// or https://, comma-separated) every event is POSTed to, signed, at least once; empty: no webhooks")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", c.WebhookSecret, "HMAC-SHA256 key of the X-Gocim-Signature header, >= 16 bytes (required with --webhook-url)")
	fs.StringVar(&c.WebhookEvents, "webhook-events", c.WebhookEvents, "event types sent, comma-separated (user.online, user.offline, user.kicked, message.app, message.offline, device.data, group.created, ...); empty: all")
	fs.StringVar(&c.WebhookAppUsers, "webhook-app-users", c.WebhookAppUsers, "user ids or names (comma-separated) that talk to the back-end: a message to one of them is sent as message.app")
	fs.IntVar(&c.WebhookQueueMax, "webhook-queue-max", c.WebhookQueueMax, "events queued in Redis per webhook URL while undelivered; beyond it new events are refused (and counted), queued ones are kept")
	fs.DurationVar(&c.WebhookMaxAge, "webhook-max-age", c.WebhookMaxAge, "a webhook event still failing after this is dropped with a warning")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", c.WebhookTimeout, "timeout of one webhook request; a request that times out is retried")
	fs.DurationVar(&c.WebhookRetryMax, "webhook-retry-max", c.WebhookRetryMax, "longest wait between two attempts of a webhook event (the backoff starts at 1s and doubles up to it)")

	c.registerDeviceFlags(fs)
}

// Parse reads args (and CIM_* variables) over the defaults and validates the
// result. Usage and errors go to out.
func Parse(name string, args []string, out io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	c.RegisterFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, c.Validate()
}

// Validate checks every field and the rules between them.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("--listen %q: %v", c.Listen, err)
	}
	if _, _, err := net.SplitHostPort(c.InternalListen); err != nil {
		bad("--internal-listen %q: %v", c.InternalListen, err)
	}
	checkSecrets(bad, "--internal-secret", c.InternalSecrets())
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key: give both or neither")
	}
	if _, err := c.TrustedProxyList(); err != nil {
		bad("--trusted-proxies: %v", err)
	}
	for _, o := range c.CORSOriginList() {
		if u, err := url.Parse(o); o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			bad("--cors-origins: %q is not an origin (want scheme://host[:port], or *)", o)
		}
	}
	if len(c.ZKServers()) == 0 {
		bad("--zk: no ZooKeeper server given")
	}
	if !strings.HasPrefix(c.ZKRoot, "/") || (len(c.ZKRoot) > 1 && strings.HasSuffix(c.ZKRoot, "/")) {
		bad("--zk-root %q: must start with / and not end with /", c.ZKRoot)
	}
	if len(c.RedisAddrs()) == 0 {
		bad("--redis: no Redis address given")
	}
	if c.RedisDB < 0 {
		bad("--redis-db %d: must be >= 0", c.RedisDB)
	}
	if len(c.RedisAddrs()) > 1 && c.RedisMasterName == "" && c.RedisDB != 0 {
		bad("--redis-db: Redis Cluster has only database 0")
	}
	checkSecrets(bad, "--token-secret", envflag.List(c.TokenSecret))
	if c.TokenTTL < time.Second {
		bad("--token-ttl %v: must be at least 1s", c.TokenTTL)
	}
	if c.ResumeTTL < 0 {
		bad("--resume-ttl %v: must not be negative", c.ResumeTTL)
	}
	if c.AccessTTL < time.Second {
		bad("--access-ttl %v: must be at least 1s", c.AccessTTL)
	}
	if _, err := apikey.Parse(c.APIKeys, token.MinKeyLen); err != nil {
		bad("--api-keys: %v", err)
	}
	if c.LoginRate < 0 {
		bad("--login-rate %v: must be >= 0 (0 turns the limit off)", c.LoginRate)
	}
	if c.LoginBurst < 1 {
		bad("--login-burst %d: must be at least 1", c.LoginBurst)
	}
	if c.MaxBody < 1024 {
		bad("--max-body %d: must be at least 1024 bytes", c.MaxBody)
	}
	c.validateAuth(bad)
	if c.LoginPolicy != PolicyKick && c.LoginPolicy != PolicyReject && c.LoginPolicy != PolicyPlatform {
		bad("--login-policy %q: want kick, reject or platform", c.LoginPolicy)
	}
	if c.Balance != BalanceRoundRobin && c.Balance != BalanceHash {
		bad("--balance %q: want round-robin or hash", c.Balance)
	}
	if c.HealthInterval <= 0 {
		bad("--health-interval %v: must be positive", c.HealthInterval)
	}
	if c.PushTimeout <= 0 {
		bad("--push-timeout %v: must be positive", c.PushTimeout)
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		bad("--bcrypt-cost %d: want %d..%d", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if c.InboxMax < 1 {
		bad("--inbox-max %d: must be at least 1", c.InboxMax)
	}
	if c.InboxPerSender < 0 {
		bad("--inbox-per-sender %d: must be >= 0 (0 turns the share off)", c.InboxPerSender)
	}
	if c.InboxTTL < time.Minute {
		bad("--inbox-ttl %v: must be at least 1m", c.InboxTTL)
	}
	if c.DedupWindow < time.Second {
		bad("--dedup-window %v: must be at least 1s", c.DedupWindow)
	}
	if c.EditWindow < 0 || c.EditWindow > c.InboxTTL {
		bad("--edit-window %v: want 0 (off) up to --inbox-ttl %v", c.EditWindow, c.InboxTTL)
	}
	if c.MaxFrame < 1024 || c.MaxFrame > 16<<20 {
		bad("--max-frame %d: want between 1024 and %d bytes", c.MaxFrame, 16<<20)
	}
	if c.GroupTimeline < 0 {
		bad("--group-timeline-min %d: must be >= 0 (0: never)", c.GroupTimeline)
	}
	if c.SyncLimit < 1 || c.SyncLimit > 10000 {
		bad("--sync-limit %d: want 1..10000", c.SyncLimit)
	}
	if c.GroupMaxMembers < 2 || c.GroupMaxMembers > 1000000 {
		bad("--group-max-members %d: want 2..1000000", c.GroupMaxMembers)
	}
	if c.UploadStore != UploadStoreDisk && c.UploadStore != UploadStoreRedis {
		bad("--upload-store %q: want disk or redis", c.UploadStore)
	}
	if c.UploadDir == "" && c.UploadStore == UploadStoreDisk {
		bad("--upload-dir: must not be empty")
	}
	if c.UploadMax < 1 {
		bad("--upload-max %d: must be at least 1 byte", c.UploadMax)
	}
	c.validateLimits(bad)
	c.validateWebhooks(bad)
	c.validateDevices(bad)
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		bad("--log-level %v", err)
	}
	if err := logging.CheckFormat(c.LogFormat); err != nil {
		bad("--log-format %v", err)
	}
	return errors.Join(errs...)
}

// validateLimits checks the abuse limits of the HTTP edge.
func (c *Config) validateLimits(bad func(string, ...any)) {
	if c.ReadTimeout < time.Second {
		bad("--read-timeout %v: must be at least 1s", c.ReadTimeout)
	}
	if c.WriteTimeout < time.Second {
		bad("--write-timeout %v: must be at least 1s", c.WriteTimeout)
	}
	if c.MaxConnsPerAddr < 0 {
		bad("--max-conns-per-addr %d: must be >= 0 (0 turns the limit off)", c.MaxConnsPerAddr)
	}
	if c.MaxConns < 0 {
		bad("--max-conns %d: must be >= 0 (0: from the open-file limit)", c.MaxConns)
	}
	if c.OnlineReadRate < 0 {
		bad("--online-read-rate %d: must be >= 0 (0: the online list every 2 s whatever its size)", c.OnlineReadRate)
	}
	if c.TransferMinRate < 1024 {
		bad("--transfer-min-rate %d: must be at least 1024 bytes/s", c.TransferMinRate)
	}
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{{"register", c.RegisterRate, c.RegisterBurst}, {"history", c.HistoryRate, c.HistoryBurst}, {"upload", c.UploadRate, c.UploadBurst}, {"list", c.ListRate, c.ListBurst}} {
		if r.rate < 0 {
			bad("--%s-rate %v: must be >= 0 (0 turns the limit off)", r.name, r.rate)
		}
		if r.burst < 1 {
			bad("--%s-burst %d: must be at least 1", r.name, r.burst)
		}
	}
	if c.HashQueue < 0 {
		bad("--hash-queue %d: must be >= 0", c.HashQueue)
	}
	if c.InvitesPerHour < 0 {
		bad("--invites-per-hour %d: must be >= 0 (0 turns the limit off)", c.InvitesPerHour)
	}
	if c.GroupsPerHour < 0 {
		bad("--groups-per-hour %d: must be >= 0 (0 turns the limit off)", c.GroupsPerHour)
	}
	if c.GroupCopiesRate < 0 {
		bad("--group-copies-rate %v: must be >= 0 (0 turns the limit off)", c.GroupCopiesRate)
	}
	if c.GroupCopiesRate > 0 && c.GroupCopiesBurst < c.GroupMaxMembers {
		bad("--group-copies-burst %d: must be at least --group-max-members %d (a message to a full group must fit)", c.GroupCopiesBurst, c.GroupMaxMembers)
	}
	if c.GroupPushRate < 0 {
		bad("--group-push-rate %v: must be >= 0 (0 turns the limit off)", c.GroupPushRate)
	}
	if c.GroupPushRate > 0 && c.GroupPushBurst < c.GroupMaxMembers {
		bad("--group-push-burst %d: must be at least --group-max-members %d (a message to a full group must fit)", c.GroupPushBurst, c.GroupMaxMembers)
	}
	if c.GroupsPerUser < 1 || c.GroupsPerUser > 1000 {
		bad("--max-groups-per-user %d: want 1..1000 (a login's SYNC lists at most 1000 groups)", c.GroupsPerUser)
	}
	if c.UploadQuota < 0 || c.UploadTotal < 0 || c.UploadMinFree < 0 {
		bad("--upload-quota, --upload-total and --upload-min-free must be >= 0 (0 turns each off)")
	}
	if c.UploadUnrefTTL < time.Second {
		bad("--upload-unreferenced-ttl %v: must be at least 1s", c.UploadUnrefTTL)
	}
	if c.UploadMaxAge < 0 || (c.UploadMaxAge > 0 && c.UploadMaxAge < c.UploadUnrefTTL) {
		bad("--upload-max-age %v: must be 0 or at least --upload-unreferenced-ttl", c.UploadMaxAge)
	}
	if c.UploadSweep < 100*time.Millisecond {
		bad("--upload-sweep %v: must be at least 100ms", c.UploadSweep)
	}
}

// validateAuth checks --auth and the flags of the chosen authenticator.
func (c *Config) validateAuth(bad func(string, ...any)) {
	if c.AuthTimeout <= 0 {
		bad("--auth-timeout %v: must be positive", c.AuthTimeout)
	}
	switch c.Auth {
	case AuthBuiltin:
	case AuthHTTP:
		u, err := url.Parse(c.AuthURL)
		switch {
		case c.AuthURL == "":
			bad("--auth http needs --auth-url")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("--auth-url %q: want an http:// or https:// URL", c.AuthURL)
		}
		if c.AuthSecret != "" && len(c.AuthSecret) < token.MinKeyLen {
			bad("--auth-secret: shorter than %d bytes", token.MinKeyLen)
		}
	case AuthLDAP:
		u, err := url.Parse(c.LDAPURL)
		switch {
		case c.LDAPURL == "":
			bad("--auth ldap needs --ldap-url")
		case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "":
			bad("--ldap-url %q: want ldap://host:port or ldaps://host:port", c.LDAPURL)
		case u.Scheme == "ldaps" && c.LDAPStartTLS:
			bad("--ldap-start-tls: not with ldaps:// (already TLS)")
		}
		if c.LDAPBaseDN == "" {
			bad("--auth ldap needs --ldap-base-dn")
		}
		if strings.Count(c.LDAPFilter, "%s") != 1 || !strings.HasPrefix(c.LDAPFilter, "(") {
			bad("--ldap-filter %q: want an LDAP filter with exactly one %%s, e.g. (uid=%%s)", c.LDAPFilter)
		}
		if c.LDAPNameAttr == "" {
			bad("--ldap-name-attr: must not be empty")
		}
	default:
		bad("--auth %q: want builtin, http or ldap", c.Auth)
	}
}

// checkSecrets: a required comma-separated secret list, each long enough.
func checkSecrets(bad func(string, ...any), flagName string, secrets []string) {
	if len(secrets) == 0 {
		bad("%s is required", flagName)
	}
	for i, s := range secrets {
		if len(s) < token.MinKeyLen {
			bad("%s: secret #%d is shorter than %d bytes", flagName, i+1, token.MinKeyLen)
		}
	}
}

// InternalSecrets splits --internal-secret; the first is sent to gateways.
func (c *Config) InternalSecrets() []string { return envflag.List(c.InternalSecret) }

// APIKeyRing parses --api-keys (Validate has checked it).
func (c *Config) APIKeyRing() (*apikey.Ring, error) { return apikey.Parse(c.APIKeys, token.MinKeyLen) }

// CORSOriginList splits --cors-origins.
func (c *Config) CORSOriginList() []string { return envflag.List(c.CORSOrigins) }

// TrustedProxyList splits and checks --trusted-proxies (IPs or CIDRs).
func (c *Config) TrustedProxyList() ([]string, error) {
	list := envflag.List(c.TrustedProxies)
	for _, p := range list {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return nil, fmt.Errorf("%q is neither an IP nor a CIDR", p)
		}
	}
	return list, nil
}

// ZKServers splits --zk.
func (c *Config) ZKServers() []string { return envflag.List(c.ZK) }

// RedisAddrs splits --redis.
func (c *Config) RedisAddrs() []string { return envflag.List(c.Redis) }

// TokenKeys splits --token-secret; the first key signs.
func (c *Config) TokenKeys() [][]byte { return token.Keys(envflag.List(c.TokenSecret)) }

// NewLogger builds the process logger (to w, normally stderr: stdout carries
// only the ready line) from --log-level and --log-format, checked by
// Validate; it falls back to slog's default if they were not.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	l, err := logging.New(w, c.LogLevel, c.LogFormat)
	if err != nil {
		return slog.Default()
	}
	return l
}
