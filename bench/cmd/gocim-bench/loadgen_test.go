package main

import (
	"io"
	"testing"
)

func TestParseIdleProcs(t *testing.T) {
	for _, c := range []struct {
		args        []string
		idle, procs int
	}{
		{nil, 19000, 2},
		{[]string{"--quick"}, 1000, 0},
		{[]string{"--idle", "30000"}, 30000, 3},
		{[]string{"--idle", "15000", "--idle-procs", "0"}, 15000, 0},
		{[]string{"--idle", "500", "--idle-procs", "1"}, 500, 1},
		{[]string{"--quick", "--idle-procs", "2"}, 1000, 2},
	} {
		o, err := parse(c.args, io.Discard)
		if err != nil || o.idle != c.idle || o.idleProcs != c.procs {
			t.Errorf("%q: idle %d procs %d, %v; want %d %d", c.args, o.idle, o.idleProcs, err, c.idle, c.procs)
		}
	}
	for _, bad := range [][]string{
		{"--idle", "30001"},
		{"--idle", "15001", "--idle-procs", "0"},
		{"--idle", "10001", "--idle-procs", "1"},
		{"--idle-procs", "9"},
		{"--idle", "-1"},
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
