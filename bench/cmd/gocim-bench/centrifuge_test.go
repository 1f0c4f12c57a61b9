package main

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
)

// TestMain lets the test binary be the cfnode child too, as gocim-bench is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "cfnode" {
		os.Exit(cfnodeMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// TestCentrifugeOwnProcess: a Centrifuge peer whose node runs in a process
// of its own (the cfnode child) gets every publication to its recipient,
// and its CPU is counted as the cluster's (the child's), where an
// in-process node's is the load generator's.
func TestCentrifugeOwnProcess(t *testing.T) {
	var rows []row
	code := run.Main(slog.New(slog.DiscardHandler), func(rt *run.T) {
		rows = p2pCentrifuge(rt, cfPeer{mode: cfMemory, own: true}, 2, []float64{100}, 500*time.Millisecond, 10*time.Second, false)
		rows = append(rows, p2pCentrifuge(rt, cfPeer{mode: cfMemory}, 2, []float64{100}, 500*time.Millisecond, 10*time.Second, false)...)
	})
	if code != 0 || len(rows) != 2 {
		t.Fatalf("run: code %d, %d rows", code, len(rows))
	}
	own, in := rows[0], rows[1]
	if own.System != "centrifuge (in-memory, own process)" || !strings.Contains(own.Setting, "process of its own") {
		t.Errorf("own process row: %q, %q", own.System, own.Setting)
	}
	for _, r := range rows {
		if r.Expected == 0 || r.Received != r.Expected || r.Loss != 0 || r.Duplicates != 0 {
			t.Errorf("%s: expected %d, received %d, lost %d, duplicated %d", r.System, r.Expected, r.Received, r.Loss, r.Duplicates)
		}
	}
	if own.ClusterCPU == nil {
		t.Error("own process: no cluster CPU, want the child's")
	}
	if in.ClusterCPU != nil {
		t.Errorf("in-process in-memory node: cluster CPU %v, want none (it is the load generator's)", *in.ClusterCPU)
	}
}

func TestCFNodeBadArgs(t *testing.T) {
	for _, args := range [][]string{{"--mode", "bogus"}, {"--mode", "history"}, {"extra"}} {
		var out bytes.Buffer
		if code := cfnodeMain(args, strings.NewReader(""), &out); code != 2 || !strings.HasPrefix(out.String(), "failed bad arguments") {
			t.Errorf("%q: code %d, said %q", args, code, out.String())
		}
	}
}
