package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/internal/testenv"
	"golang.org/x/net/websocket"
)

// centrifugeVersion is the github.com/centrifugal/centrifuge version in
// bench/go.mod (the library has no version constant of its own).
const centrifugeVersion = "v0.40.1"

// p2pCentrifuge runs the private-message latency workload on a
// centrifuge.Node (the engine of Centrifugo) with its websocket transport on
// a loopback HTTP server: every recipient subscribes to its personal channel
// "personal:<user>", every sender publishes to its recipient's channel
// (publications without history: nothing is stored, unless the mode is
// cfRedisHistory). With Redis the node uses the Redis broker against a
// redis-server of its own; otherwise the in-memory broker. The node runs in
// this process, so its CPU is in the load generator's (with Redis the
// cluster CPU column is the redis-server's), or with peer.own in a process
// of its own (this binary's cfnode child), as a Centrifugo server does and
// as gocim's gateways do: then the cluster CPU column is that process's and
// the redis-server's, and the load generator's is its clients' alone.
//
// The Go client github.com/centrifugal/centrifuge-go is not served by the
// module proxy here, so the clients are a minimal one below: Centrifuge's
// JSON protocol (connect, subscribe, publish, pong) over
// golang.org/x/net/websocket. Publishes are sent without waiting for the
// reply, like NATS's; error replies are counted.
//
// With sat, rates are saturation steps: the loop stops after the first step
// that does not hold (see holds).
func p2pCentrifuge(t *run.T, peer cfPeer, pairs int, rates []float64, dur, wait time.Duration, sat bool) []row {
	mode := peer.mode
	withRedis := mode != cfMemory
	system := "centrifuge (in-memory)"
	engine := "in-memory broker"
	var pids []int
	var redisAddr string
	if withRedis {
		r := testenv.StartRedis(t)
		defer r.Kill()
		redisAddr = r.Addr
		system = "centrifuge (Redis engine)"
		engine = "Redis broker (PUBLISH, no history), redis-server of its own"
		if mode == cfRedisHistory {
			system = "centrifuge (Redis, history)"
			engine = "Redis broker with history (every publication kept in its channel's stream, size 10000, TTL 7 days, like a gocim inbox), redis-server of its own"
		}
		pids = []int{r.Cmd.Process.Pid}
	}
	// where says where the node runs and whose CPU the cluster column is.
	where, cluster := "node in the loadgen process (its CPU is in loadgen CPU", ""
	if withRedis {
		cluster = "; cluster CPU = the redis-server's"
	}
	var url string
	if peer.own {
		system = strings.TrimSuffix(system, ")") + ", own process)"
		where, cluster = "node in a process of its own (gocim-bench cfnode", "; cluster CPU = that process's"
		if withRedis {
			cluster += " and the redis-server's"
		}
		args := []string{"cfnode", "--mode", mode.String()}
		if withRedis {
			args = append(args, "--redis", redisAddr)
		}
		child := []*loadgen{startChild(t, 0, args...)}
		defer stopLoadgens(child)
		line := awaitLoadgens(t, child, "ready", 30*time.Second)[0]
		url = strings.TrimPrefix(line, "ready url=")
		pids = append(pids, child[0].cmd.Process.Pid)
	} else {
		h, stop, err := newCFNode(mode, redisAddr)
		if err != nil {
			t.Fatalf("%v", err)
		}
		defer stop()
		srv := httptest.NewServer(h)
		defer srv.Close()
		url = "ws" + strings.TrimPrefix(srv.URL, "http") + cfPath
	}
	where += cluster + ")"

	var cur atomic.Pointer[p2pRun]
	var pubErrs atomic.Int64
	onPub := func(data []byte) {
		var body string
		if json.Unmarshal(data, &body) != nil {
			return
		}
		if r := cur.Load(); r != nil {
			r.arrived(body, time.Now())
		}
	}
	setup := time.Now()
	senders := make([]*cfClient, pairs)
	var conns []*cfClient
	for i := 0; i < pairs; i++ {
		rc, err := dialCentrifuge(url, fmt.Sprintf("r%d", i), true, onPub, &pubErrs)
		if err != nil {
			t.Fatalf("centrifuge recipient %d: %v", i, err)
		}
		sc, err := dialCentrifuge(url, fmt.Sprintf("s%d", i), false, nil, &pubErrs)
		if err != nil {
			t.Fatalf("centrifuge sender %d: %v", i, err)
		}
		conns = append(conns, rc, sc)
		senders[i] = sc
	}
	setupSecs := time.Since(setup).Seconds()
	defer func() {
		for _, c := range conns {
			c.ws.Close()
		}
	}()

	var rows []row
	for _, rate := range rates {
		r := newP2PRun(pairs, rate, dur)
		cur.Store(r)
		pubErrs.Store(0)
		cpu := startCPU(pids)
		start, errs := r.drive(func(i int, body string) error {
			return senders[i].publish(personal(fmt.Sprintf("r%d", i)), body)
		})
		r.settle(wait)
		clusterCPU, loadCPU := cpu.stop()
		out := r.result(system, fmt.Sprintf("centrifuge %s %s, %s, websocket + JSON protocol, personal channels, %d pairs, %v window",
			centrifugeVersion, where, engine, pairs, dur), rate, start)
		out.LoadgenCPU, out.Transport = loadCPU, "websocket"
		if len(pids) > 0 {
			out.ClusterCPU = cores(clusterCPU)
		}
		out.SetupSeconds = setupSecs
		if n := pubErrs.Load(); errs > 0 || n > 0 {
			out.Setting += fmt.Sprintf("; %d publish write errors, %d error replies", errs, n)
		}
		cur.Store(nil)
		rows = append(rows, out)
		if sat && !holds(out) {
			break
		}
	}
	return rows
}

// cfEngine is how the Centrifuge node keeps publications.
type cfEngine int

const (
	cfMemory       cfEngine = iota // in-memory broker
	cfRedis                        // Redis broker, publications not kept
	cfRedisHistory                 // Redis broker, every publication kept in the channel's history
)

var cfEngineNames = [...]string{cfMemory: "memory", cfRedis: "redis", cfRedisHistory: "history"}

// String is the engine's cfnode --mode.
func (e cfEngine) String() string { return cfEngineNames[e] }

// cfPeer says how a Centrifuge peer runs.
type cfPeer struct {
	mode cfEngine
	// own: the node runs in a process of its own (cfnodeMain), like a
	// Centrifugo server, instead of in the load generator's.
	own bool
}

// cfHistory is what cfRedisHistory keeps per channel: the limits of a
// gocim inbox (--inbox-max, --inbox-ttl), so both store every message.
var cfHistory = centrifuge.PublishOptions{HistorySize: 10000, HistoryTTL: 7 * 24 * time.Hour}

// cfPath is the node's websocket endpoint.
const cfPath = "/connection/websocket"

// newCFNode starts a Centrifuge node with mode's broker (Redis at
// redisAddr unless cfMemory) and returns its HTTP handler (the websocket
// endpoint at cfPath) and a function that shuts it down. A user connects
// with {"user": name} as its connect data, may subscribe to its own
// personal channel only and publish to others' only.
func newCFNode(mode cfEngine, redisAddr string) (http.Handler, func(), error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
	if err != nil {
		return nil, nil, fmt.Errorf("centrifuge: %w", err)
	}
	var shard *centrifuge.RedisShard
	if mode != cfMemory {
		shard, err = centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: redisAddr})
		if err != nil {
			return nil, nil, fmt.Errorf("centrifuge redis shard: %w", err)
		}
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{Shards: []*centrifuge.RedisShard{shard}})
		if err != nil {
			shard.Close()
			return nil, nil, fmt.Errorf("centrifuge redis broker: %w", err)
		}
		node.SetBroker(broker)
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		var d struct {
			User string `json:"user"`
		}
		if json.Unmarshal(e.Data, &d) != nil || d.User == "" {
			return centrifuge.ConnectReply{}, centrifuge.ErrorUnauthorized
		}
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: d.User}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		user := c.UserID()
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if e.Channel != personal(user) {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			cb(centrifuge.SubscribeReply{}, nil)
		})
		c.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			if !strings.HasPrefix(e.Channel, "personal:") || e.Channel == personal(user) {
				cb(centrifuge.PublishReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			var reply centrifuge.PublishReply
			if mode == cfRedisHistory {
				reply.Options = cfHistory
			}
			cb(reply, nil)
		})
	})
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node.Shutdown(ctx)
		if shard != nil {
			shard.Close()
		}
	}
	if err := node.Run(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("centrifuge run: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(cfPath, centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	return mux, stop, nil
}

// cfnodeMain is the cfnode child: a Centrifuge node in a process of its
// own, serving websocket clients on a loopback port. It says "ready
// url=<websocket URL>" once it listens and runs until its stdin ends (the
// line protocol of the loadgen children, loadgen.go).
func cfnodeMain(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("gocim-bench cfnode", flag.ContinueOnError)
	modeName := fs.String("mode", cfMemory.String(), "broker: memory, redis (no history) or history (Redis, every publication kept)")
	redisAddr := fs.String("redis", "", "redis-server address, for redis and history")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cio := newChildIO(stdin, stdout)
	mode := cfEngine(slices.Index(cfEngineNames[:], *modeName))
	if mode < 0 || (mode != cfMemory && *redisAddr == "") || fs.NArg() > 0 {
		cio.say("failed bad arguments %q", args)
		return 2
	}
	h, stop, err := newCFNode(mode, *redisAddr)
	if err != nil {
		cio.say("failed %v", err)
		return 1
	}
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cio.say("failed listen: %v", err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	cio.say("ready url=ws://%s%s", ln.Addr(), cfPath)
	<-cio.stop
	return 0
}

func personal(user string) string { return "personal:" + user }

// cfClient is a minimal Centrifuge client (JSON protocol over websocket).
type cfClient struct {
	ws     *websocket.Conn
	nextID atomic.Uint32
}

type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data json.RawMessage `json:"data"`
		} `json:"pub"`
	} `json:"push"`
}

// dialCentrifuge connects as user, subscribes to the user's personal channel
// if subscribe, then reads in the background: publications go to onPub,
// error replies count in errs, server pings are answered.
func dialCentrifuge(url, user string, subscribe bool, onPub func([]byte), errs *atomic.Int64) (*cfClient, error) {
	ws, err := websocket.Dial(url, "", "http://127.0.0.1/")
	if err != nil {
		return nil, err
	}
	c := &cfClient{ws: ws}
	fail := func(err error) (*cfClient, error) {
		ws.Close()
		return nil, err
	}
	if err := c.call(fmt.Sprintf(`{"id":%d,"connect":{"data":{"user":%q}}}`, c.nextID.Add(1), user)); err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	if subscribe {
		if err := c.call(fmt.Sprintf(`{"id":%d,"subscribe":{"channel":%q}}`, c.nextID.Add(1), personal(user))); err != nil {
			return fail(fmt.Errorf("subscribe: %w", err))
		}
	}
	go func() {
		for {
			var frame string
			if err := websocket.Message.Receive(ws, &frame); err != nil {
				return
			}
			for _, line := range strings.Split(frame, "\n") {
				line = strings.TrimSpace(line)
				if line == "" {
					continue
				}
				if line == "{}" { // server ping
					websocket.Message.Send(ws, "{}")
					continue
				}
				var rep cfReply
				if json.Unmarshal([]byte(line), &rep) != nil {
					continue
				}
				if rep.Error != nil {
					errs.Add(1)
				}
				if rep.Push != nil && rep.Push.Pub != nil && onPub != nil {
					onPub(rep.Push.Pub.Data)
				}
			}
		}
	}()
	return c, nil
}

// call sends one command and waits (before the reader runs) for its reply.
func (c *cfClient) call(cmd string) error {
	var want struct {
		ID uint32 `json:"id"`
	}
	if err := json.Unmarshal([]byte(cmd), &want); err != nil {
		return err
	}
	if err := websocket.Message.Send(c.ws, cmd); err != nil {
		return err
	}
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.ws.SetReadDeadline(time.Time{})
	for {
		var frame string
		if err := websocket.Message.Receive(c.ws, &frame); err != nil {
			return err
		}
		for _, line := range strings.Split(frame, "\n") {
			var rep cfReply
			if json.Unmarshal([]byte(line), &rep) != nil || rep.ID != want.ID {
				continue
			}
			if rep.Error != nil {
				return fmt.Errorf("error %d: %s", rep.Error.Code, rep.Error.Message)
			}
			return nil
		}
	}
}

// publish sends a publication to channel without waiting for the reply.
func (c *cfClient) publish(channel, body string) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ch, _ := json.Marshal(channel)
	return websocket.Message.Send(c.ws, fmt.Sprintf(`{"id":%d,"publish":{"channel":%s,"data":%s}}`, c.nextID.Add(1), ch, data))
}
