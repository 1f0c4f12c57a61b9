package main

// Reading Redis's own accounting (INFO) around a measured window: memory
// (used_memory) and commands run (commandstats), so that the scale and
// fan-out workloads can say what a connection, a stored message and a
// delivery cost in Redis. A raw RESP exchange: one command, one bulk reply.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// redisInfo returns the INFO section's fields (name → value).
func redisInfo(addr, section string) (map[string]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n", len(section), section); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	head, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	head = strings.TrimSpace(head)
	if !strings.HasPrefix(head, "$") {
		return nil, fmt.Errorf("INFO %s: unexpected reply %q", section, head)
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("INFO %s: bad length %q", section, head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return parseInfo(string(body)), nil
}

// parseInfo parses INFO's "name:value" lines (comments and blanks skipped).
func parseInfo(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// redisUsedMemory is INFO memory's used_memory in bytes (-1 when it cannot
// be read): what Redis's allocator holds for data and its own buffers.
func redisUsedMemory(addr string) int64 {
	m, err := redisInfo(addr, "memory")
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(m["used_memory"], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// commandCalls is INFO commandstats: calls per command, lower case (the
// INFO calls that read it left out).
type commandCalls map[string]int64

func redisCommandCalls(addr string) (commandCalls, error) {
	m, err := redisInfo(addr, "commandstats")
	if err != nil {
		return nil, err
	}
	return parseCommandStats(m), nil
}

// parseCommandStats reads "cmdstat_<name>:calls=N,usec=…" fields.
func parseCommandStats(m map[string]string) commandCalls {
	out := commandCalls{}
	for k, v := range m {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok || name == "info" {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if c, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(c, 10, 64)
				out[name] = n
			}
		}
	}
	return out
}

// minus is c − before, per command (commands with no calls in between left
// out).
func (c commandCalls) minus(before commandCalls) commandCalls {
	out := commandCalls{}
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (c commandCalls) total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// per describes the calls divided by n, busiest first, at most top of
// them: "evalsha 1.46, rpush 1.00, …".
func (c commandCalls) per(n float64, top int) string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range c {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var parts []string
	for i, e := range all {
		if i == top {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, float64(e.v)/n))
	}
	return strings.Join(parts, ", ")
}

// settledCommandCalls reads commandstats for at least least, then until a
// quarter second adds less than 1 % of the calls since before (at most
// 10 s), and returns the calls since before.
func settledCommandCalls(addr string, before commandCalls, least time.Duration) (commandCalls, error) {
	prev, err := redisCommandCalls(addr)
	if err != nil {
		return nil, err
	}
	from := time.Now()
	for deadline := from.Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		cur, err := redisCommandCalls(addr)
		if err != nil {
			return nil, err
		}
		grew := cur.minus(prev).total()
		prev = cur
		if grew*100 <= cur.minus(before).total() && time.Since(from) >= least {
			break
		}
	}
	return prev.minus(before), nil
}
