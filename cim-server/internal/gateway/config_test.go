package gateway

import (
	"flag"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/envflag"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:9000"
	c.TokenSecret = "0123456789abcdef"
	c.InternalSecret = "internal-0123456789"
	return c
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults with secret and specific listen", func(*Config) {}, ""},
		{"unspecified listen needs advertise host", func(c *Config) { c.Listen = "0.0.0.0:9000" }, "--advertise-host"},
		{"empty host needs advertise host", func(c *Config) { c.Listen = ":9000" }, "--advertise-host"},
		{"ipv6 any needs advertise host", func(c *Config) { c.Listen = "[::]:9000" }, "--advertise-host"},
		{"unspecified listen with advertise host", func(c *Config) { c.Listen = "0.0.0.0:9000"; c.AdvertiseHost = "10.1.2.3" }, ""},
		{"advertise host with port", func(c *Config) { c.AdvertiseHost = "10.1.2.3:9000" }, "without port"},
		{"bad listen", func(c *Config) { c.Listen = "9000" }, "--listen"},
		{"bad http listen", func(c *Config) { c.HTTPListen = "nope" }, "--http-listen"},
		{"missing secret", func(c *Config) { c.TokenSecret = "" }, "--token-secret is required"},
		{"short secret", func(c *Config) { c.TokenSecret = "0123456789abcdef,short" }, "secret #2 is 5 bytes"},
		{"missing internal secret", func(c *Config) { c.InternalSecret = " , " }, "--internal-secret is required"},
		{"short internal secret", func(c *Config) { c.InternalSecret = "internal-0123456789,old" }, "--internal-secret: secret #2 is 3 bytes"},
		{"two internal secrets", func(c *Config) { c.InternalSecret = "internal-0123456789, previous-0123456789" }, ""},
		{"tls cert without key", func(c *Config) { c.TLSCert = "cert.pem" }, "give both or neither"},
		{"tls key without cert", func(c *Config) { c.TLSKey = "key.pem" }, "give both or neither"},
		{"tls both", func(c *Config) { c.TLSCert, c.TLSKey = "cert.pem", "key.pem" }, ""},
		{"zero max text", func(c *Config) { c.MaxText = 0 }, "--max-text"},
		{"negative msg rate", func(c *Config) { c.MsgRate = -1 }, "--msg-rate"},
		{"NaN msg rate", func(c *Config) { c.MsgRate = math.NaN() }, "--msg-rate"},
		{"infinite msg rate", func(c *Config) { c.MsgRate = math.Inf(1) }, "--msg-rate"},
		{"msg rate off", func(c *Config) { c.MsgRate = 0 }, ""},
		{"fractional msg rate", func(c *Config) { c.MsgRate = 0.5 }, ""},
		{"zero msg burst", func(c *Config) { c.MsgBurst = 0 }, "--msg-burst"},
		{"huge msg burst", func(c *Config) { c.MsgBurst = 1 << 30 }, "--msg-burst"},
		{"gc percent below -1", func(c *Config) { c.GCPercent = -2 }, "--gc-percent"},
		{"negative gc floor", func(c *Config) { c.GCFloorMiB = -1 }, "--gc-floor"},
		{"huge gc floor", func(c *Config) { c.GCFloorMiB = 1 << 20 }, "--gc-floor"},
		{"no gc floor", func(c *Config) { c.GCFloorMiB = 0 }, ""},
		{"negative idle buffers", func(c *Config) { c.IdleBuffers = -time.Second }, "--idle-buffers"},
		{"idle buffers off", func(c *Config) { c.IdleBuffers = 0 }, ""},
		{"negative linger min", func(c *Config) { c.UplinkLingerMin = -1 }, "--uplink-linger-min"},
		{"NaN linger min", func(c *Config) { c.UplinkLingerMin = math.NaN() }, "--uplink-linger-min"},
		{"linger always", func(c *Config) { c.UplinkLingerMin = 0 }, ""},
		{"no route", func(c *Config) { c.Route = " , " }, "at least one route"},
		{"bad route url", func(c *Config) { c.Route = "http://ok:1,127.0.0.1:8080" }, "want an http(s) URL"},
		{"bad zk server", func(c *Config) { c.ZK = "zk1" }, "--zk server"},
		{"zk disabled skips zk checks", func(c *Config) { c.ZK = ""; c.ZKRoot = "bad" }, ""},
		{"relative zk root", func(c *Config) { c.ZKRoot = "cim" }, "--zk-root"},
		{"short zk session", func(c *Config) { c.ZKSessionTimeout = 100 * time.Millisecond }, "--zk-session-timeout"},
		{"tiny max frame", func(c *Config) { c.MaxFrame = 10 }, "--max-frame"},
		{"zero read timeout", func(c *Config) { c.ReadTimeout = 0 }, "--read-timeout"},
		{"negative drain", func(c *Config) { c.Drain = -time.Second }, "--drain"},
		{"zero write queue", func(c *Config) { c.WriteQueue = 0 }, "--write-queue"},
		{"zero write queue bytes", func(c *Config) { c.WriteQueueBytes = 0 }, "--write-queue-bytes"},
		{"write queue bytes below max frame", func(c *Config) { c.WriteQueueBytes = 100 }, ""},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"bad log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"negative max conns", func(c *Config) { c.MaxConns = -1 }, "--max-conns"},
		{"negative max unauth", func(c *Config) { c.MaxUnauth = -1 }, "--max-unauth"},
		{"negative per-address cap", func(c *Config) { c.MaxUnauthPerAddr = -1 }, "--max-unauth-per-addr"},
		{"unauth cap not below conn cap", func(c *Config) { c.MaxConns, c.MaxUnauth = 100, 100 }, "want below --max-conns"},
		{"per-address cap over unauth cap", func(c *Config) { c.MaxUnauth, c.MaxUnauthPerAddr = 10, 11 }, "want at most --max-unauth"},
		{"explicit caps", func(c *Config) { c.MaxConns, c.MaxUnauth, c.MaxUnauthPerAddr = 1000, 100, 10 }, ""},
		{"no per-address cap", func(c *Config) { c.MaxUnauthPerAddr = 0 }, ""},
		{"negative sync rate", func(c *Config) { c.SyncRate = -1 }, "--sync-rate"},
		{"NaN sync rate", func(c *Config) { c.SyncRate = math.NaN() }, "--sync-rate"},
		{"sync pace off", func(c *Config) { c.SyncRate = 0 }, ""},
		{"zero sync burst", func(c *Config) { c.SyncBurst = 0 }, "--sync-burst"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestAdvertiseHostDefaultsToListenHost(t *testing.T) {
	c := validConfig()
	c.Listen = "192.168.1.5:0"
	if h, err := c.advertiseHost(); err != nil || h != "192.168.1.5" {
		t.Fatalf("advertiseHost = %q, %v", h, err)
	}
	c.AdvertiseHost = "gw1.example"
	if h, _ := c.advertiseHost(); h != "gw1.example" {
		t.Fatalf("advertiseHost = %q, want the explicit one", h)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Setenv("CIM_TOKEN_SECRET", "from-the-environment")
	t.Setenv("CIM_WRITE_QUEUE", "32")
	t.Setenv("CIM_INTERNAL_SECRET", "internal-from-the-env, old-internal-secret")
	t.Setenv("CIM_MSG_RATE", "2.5")
	t.Setenv("CIM_TLS_CERT", "/etc/cim/cert.pem")
	t.Setenv("CIM_TLS_KEY", "/etc/cim/key.pem")
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := envflag.Parse(fs, []string{"--listen", "127.0.0.1:1", "--route", "http://a:1,http://b:2", "--write-queue", "8"}); err != nil {
		t.Fatal(err)
	}
	if c.TokenSecret != "from-the-environment" || c.WriteQueue != 8 || c.Drain != 3*time.Second || c.ZKRoot != "/cim" {
		t.Fatalf("config %+v", c)
	}
	if s := c.InternalSecrets(); len(s) != 2 || s[0] != "internal-from-the-env" || s[1] != "old-internal-secret" {
		t.Fatalf("internal secrets %q", s)
	}
	if c.MsgRate != 2.5 || c.MsgBurst != 100 || c.MaxText != 4096 || c.TLSCert != "/etc/cim/cert.pem" || c.TLSKey != "/etc/cim/key.pem" {
		t.Fatalf("config %+v", c)
	}
	if urls := c.RouteURLs(); len(urls) != 2 || urls[1] != "http://b:2" {
		t.Fatalf("route URLs %v", urls)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConnLimits: caps not set are derived from the open-file limit, with a
// reserve for the process's own files and a quarter for unauthenticated
// connections; the per-address cap never exceeds the unauthenticated one.
func TestConnLimits(t *testing.T) {
	cases := []struct {
		name                  string
		conns, unauth, perAdr int
		nofile                uint64
		want                  connLimits
	}{
		{"bench host (20000 files)", 0, 0, 64, 20000, connLimits{19744, 4936, 64}},
		{"default 1024 files", 0, 0, 64, 1024, connLimits{922, 230, 64}},
		{"tiny limit", 0, 0, 64, 100, connLimits{68, 17, 17}},
		{"unlimited files", 0, 0, 64, math.MaxUint64, connLimits{1 << 30, 1 << 28, 64}},
		{"unknown limit, nothing set", 0, 0, 64, 0, connLimits{0, 0, 64}},
		{"explicit caps win", 5000, 300, 8, 20000, connLimits{5000, 300, 8}},
		{"explicit unauth over a derived small cap", 0, 500, 64, 200, connLimits{168, 84, 64}},
		{"per-address off", 0, 0, 0, 20000, connLimits{19744, 4936, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.MaxConns, c.MaxUnauth, c.MaxUnauthPerAddr = tc.conns, tc.unauth, tc.perAdr
			if got := c.connLimits(tc.nofile); got != tc.want {
				t.Fatalf("connLimits(%d) = %+v, want %+v", tc.nofile, got, tc.want)
			}
		})
	}
	// The bench holds 19,100 logged-in connections on one gateway with
	// 20,000 open files: the derived cap must leave them room.
	c := validConfig()
	if l := c.connLimits(20000); l.total < 19100 {
		t.Fatalf("derived cap %d leaves the idle bench no room", l.total)
	}
}
