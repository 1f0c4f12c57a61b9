package main

import (
	"testing"
	"time"
)

func TestCPUPerMessage(t *testing.T) {
	m := &cpuMeter{
		used:     []time.Duration{45 * time.Millisecond, 46 * time.Millisecond, 49 * time.Millisecond, 22 * time.Millisecond},
		selfUsed: 56 * time.Millisecond,
	}
	names := []string{"Redis", "route", "gateways", "gateways"}
	want := "CPU per delivered message (/proc): Redis 45 µs, route 46 µs, gateways 49 + 22 µs, load generator 56 µs"
	if got := m.perMessage(names, 1000); got != want {
		t.Errorf("perMessage = %q\nwant %q", got, want)
	}
	if got := m.perMessage(names, 0); got != "" {
		t.Errorf("perMessage of no messages = %q, want empty", got)
	}
	if got := m.perMessage(names[:3], 1000); got != "" {
		t.Errorf("perMessage with a name missing = %q, want empty", got)
	}
}
