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
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/proto/token"
)

// Login policies.
const (
	PolicyKick   = "kick"
	PolicyReject = "reject"
)

// Balance strategies.
const (
	BalanceRoundRobin = "round-robin"
	BalanceHash       = "hash"
)

// Config is everything cim-route can be told.
type Config struct {
	Listen          string        // HTTP listen address
	ZK              string        // comma-separated ZooKeeper servers
	ZKRoot          string        // gateways register under <ZKRoot>/servers
	Redis           string        // comma-separated Redis addresses
	RedisPassword   string        //
	RedisDB         int           //
	RedisMasterName string        // sentinel master name; Redis then lists sentinels
	RedisPrefix     string        // prefix of every key
	TokenSecret     string        // comma-separated HMAC keys; the first signs
	TokenTTL        time.Duration // token lifetime and pending-route TTL
	LoginPolicy     string        // kick | reject
	Balance         string        // round-robin | hash
	HealthInterval  time.Duration // gateway /healthz period
	PushTimeout     time.Duration // timeout of one gateway /push call
	BcryptCost      int           //
	InboxMax        int           // entries kept per inbox
	InboxTTL        time.Duration // inbox entries older than this are trimmed
	DedupWindow     time.Duration // how long a resend is recognized
	SyncLimit       int           // default and maximum entries per SYNC answer
	UploadDir       string        // where POST /upload stores files
	UploadMax       int64         // largest upload in bytes
	LogLevel        string        // debug | info | warn | error
	LogFormat       string        // text | json
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		Listen:         "0.0.0.0:8080",
		ZK:             "127.0.0.1:2181",
		ZKRoot:         "/cim",
		Redis:          "127.0.0.1:6379",
		RedisPrefix:    "cim:",
		TokenTTL:       60 * time.Second,
		LoginPolicy:    PolicyKick,
		Balance:        BalanceRoundRobin,
		HealthInterval: 2 * time.Second,
		PushTimeout:    3 * time.Second,
		BcryptCost:     bcrypt.DefaultCost,
		InboxMax:       10000,
		InboxTTL:       7 * 24 * time.Hour,
		DedupWindow:    24 * time.Hour,
		SyncLimit:      200,
		UploadDir:      filepath.Join(os.TempDir(), "gocim-uploads"),
		UploadMax:      10 << 20,
		LogLevel:       "info",
		LogFormat:      "text",
	}
}

// RegisterFlags binds c's fields to flags in fs; the current values of c are
// the defaults --help shows.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address (host:port; port 0 picks a free one)")
	fs.StringVar(&c.ZK, "zk", c.ZK, "ZooKeeper servers, comma-separated")
	fs.StringVar(&c.ZKRoot, "zk-root", c.ZKRoot, "ZooKeeper root; gateways register under <root>/servers")
	fs.StringVar(&c.Redis, "redis", c.Redis, "Redis addresses, comma-separated (several = cluster; sentinels with --redis-master-name)")
	fs.StringVar(&c.RedisPassword, "redis-password", c.RedisPassword, "Redis password")
	fs.IntVar(&c.RedisDB, "redis-db", c.RedisDB, "Redis database number (single node or sentinel; default 0)")
	fs.StringVar(&c.RedisMasterName, "redis-master-name", c.RedisMasterName, "Redis sentinel master name (empty: no sentinel)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key")
	fs.StringVar(&c.TokenSecret, "token-secret", c.TokenSecret, "login token HMAC secrets, comma-separated, each >= 16 bytes; the first signs (required)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "login token lifetime (also how long an unconfirmed session is kept)")
	fs.StringVar(&c.LoginPolicy, "login-policy", c.LoginPolicy, "when a user logs in twice: kick (the old session) or reject (the new login)")
	fs.StringVar(&c.Balance, "balance", c.Balance, "gateway selection: round-robin or hash (consistent hash on the user id)")
	fs.DurationVar(&c.HealthInterval, "health-interval", c.HealthInterval, "period of the gateways' /healthz check")
	fs.DurationVar(&c.PushTimeout, "push-timeout", c.PushTimeout, "timeout of one /push call to a gateway")
	fs.IntVar(&c.BcryptCost, "bcrypt-cost", c.BcryptCost, "bcrypt cost of password hashes")
	fs.IntVar(&c.InboxMax, "inbox-max", c.InboxMax, "entries kept per user inbox; older ones are trimmed")
	fs.DurationVar(&c.InboxTTL, "inbox-ttl", c.InboxTTL, "inbox entries older than this are trimmed (an idle inbox expires after it)")
	fs.DurationVar(&c.DedupWindow, "dedup-window", c.DedupWindow, "how long a resent message (same sender and clientMsgId) is recognized")
	fs.IntVar(&c.SyncLimit, "sync-limit", c.SyncLimit, "default and maximum number of entries in one SYNC answer")
	fs.StringVar(&c.UploadDir, "upload-dir", c.UploadDir, "directory for uploaded files (POST /upload); created if missing; route replicas must share it")
	fs.Int64Var(&c.UploadMax, "upload-max", c.UploadMax, "largest upload in bytes (10485760 = 10 MiB); larger ones get 413")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
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
	if keys := c.TokenKeys(); len(keys) == 0 {
		bad("--token-secret is required")
	} else {
		for i, k := range keys {
			if len(k) < token.MinKeyLen {
				bad("--token-secret: secret #%d is shorter than %d bytes", i+1, token.MinKeyLen)
			}
		}
	}
	if c.TokenTTL < time.Second {
		bad("--token-ttl %v: must be at least 1s", c.TokenTTL)
	}
	if c.LoginPolicy != PolicyKick && c.LoginPolicy != PolicyReject {
		bad("--login-policy %q: want kick or reject", c.LoginPolicy)
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
	if c.InboxTTL < time.Minute {
		bad("--inbox-ttl %v: must be at least 1m", c.InboxTTL)
	}
	if c.DedupWindow < time.Second {
		bad("--dedup-window %v: must be at least 1s", c.DedupWindow)
	}
	if c.SyncLimit < 1 || c.SyncLimit > 10000 {
		bad("--sync-limit %d: want 1..10000", c.SyncLimit)
	}
	if c.UploadDir == "" {
		bad("--upload-dir: must not be empty")
	}
	if c.UploadMax < 1 {
		bad("--upload-max %d: must be at least 1 byte", c.UploadMax)
	}
	if _, err := c.SlogLevel(); err != nil {
		bad("--log-level: %v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("--log-format %q: want text or json", c.LogFormat)
	}
	return errors.Join(errs...)
}

// ZKServers splits --zk.
func (c *Config) ZKServers() []string { return envflag.List(c.ZK) }

// RedisAddrs splits --redis.
func (c *Config) RedisAddrs() []string { return envflag.List(c.Redis) }

// TokenKeys splits --token-secret; the first key signs.
func (c *Config) TokenKeys() [][]byte { return token.Keys(envflag.List(c.TokenSecret)) }

// SlogLevel parses --log-level.
func (c *Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}

// NewLogger builds the process logger (to w, normally stderr: stdout carries
// only the ready line).
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := c.SlogLevel()
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
