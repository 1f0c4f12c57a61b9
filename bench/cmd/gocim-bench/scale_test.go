package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseScale(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || !o.workloads["scale"] || o.scaleConns != 100000 || o.scaleGateways != 6 || o.scaleProcs != 8 ||
		o.scaleRate != 1000 || o.scaleDuration != 20*time.Second || o.scaleGroup != 500 {
		t.Fatalf("default: %+v %v", o, err)
	}
	o, err = parse([]string{"--quick"}, io.Discard)
	if err != nil || !o.workloads["scale"] || o.scaleConns != 2000 || o.scaleGateways != 2 || o.scaleProcs != 1 ||
		o.scaleRate != 500 || o.scaleDuration != 2*time.Second || o.scaleGroup != 50 {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse([]string{"--workloads", "scale", "--scale-conns", "50000", "--scale-gateways", "3", "--scale-procs", "5"}, io.Discard)
	if err != nil || o.workloads["idle"] || o.scaleConns != 50000 || o.scaleGateways != 3 || o.scaleProcs != 5 {
		t.Fatalf("scale only: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"--scale-conns", "100000", "--scale-gateways", "5"}, // 20,020 per gateway: over the open-file cap
		{"--scale-conns", "40000", "--scale-procs", "2"},     // 20,000 per child
		{"--scale-gateways", "1"}, {"--scale-procs", "101"}, {"--scale-rate", "50001"},
		{"--scale-duration", "10ms"}, {"--scale-group", "1"},
		{"--scale-rate", "10", "--scale-duration", "1s"}, // 10 msgs for 50 pairs
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestCommandStats(t *testing.T) {
	info := parseInfo("# Commandstats\r\ncmdstat_evalsha:calls=30,usec=900,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_rpush:calls=10,usec=20,usec_per_call=2.00\r\ncmdstat_info:calls=7,usec=1\r\n\r\n")
	before := parseCommandStats(info)
	if before["evalsha"] != 30 || before["rpush"] != 10 || before["info"] != 0 || len(before) != 2 {
		t.Fatalf("parsed %v", before)
	}
	after := commandCalls{"evalsha": 50, "rpush": 10, "get": 5}
	d := after.minus(before)
	if d.total() != 25 || d["rpush"] != 0 || d["get"] != 5 {
		t.Fatalf("minus: %v", d)
	}
	if got := d.per(5, 1); got != "evalsha 4.00, …" {
		t.Errorf("per: %q", got)
	}
}

// TestChildIO: a child's side of the line protocol reports an unexpected
// command and stops when the parent closes stdin.
func TestChildIO(t *testing.T) {
	var out lineBuf
	r, w := io.Pipe()
	c := newChildIO(r, &out)
	go io.WriteString(w, "login\nbogus\n")
	if ok, code := c.await("login"); !ok || code != 0 {
		t.Fatalf("login: %v %d", ok, code)
	}
	if ok, code := c.await("login"); ok || code != 1 || !strings.HasPrefix(string(out.b), "failed unexpected command") {
		t.Fatalf("bogus: %v %d %q", ok, code, out.b)
	}
	w.Close()
	<-c.stop // stdin ended
	if ok, code := c.await("login"); ok || code != 0 {
		t.Fatalf("after stdin closed: %v %d", ok, code)
	}
}
