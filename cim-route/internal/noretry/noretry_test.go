package noretry

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/internal/testenv"
)

var incr = redis.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)

// TestRun: a script Redis does not know yet is loaded and runs once; Do
// answers like the client's own command; failures reach the caller.
func TestRun(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}})
	defer c.Close()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := Run(ctx, c, incr, []string{"k"}, 5).Int(); err != nil || v != 5 {
		t.Fatalf("first run: %d, %v; want 5", v, err)
	}
	if v, err := Run(ctx, c, incr, []string{"k"}, 2).Int(); err != nil || v != 7 {
		t.Fatalf("second run: %d, %v; want 7", v, err)
	}
	if v, err := Do(ctx, c, "decrby", "k", 3).Int(); err != nil || v != 4 {
		t.Fatalf("Do: %d, %v; want 4", v, err)
	}
	if err := Do(ctx, c, "nosuchcommand").Err(); err == nil {
		t.Fatal("an unknown command did not fail")
	}
	if err := Run(ctx, c, redis.NewScript(`return redis.error_reply('no')`), nil).Err(); err == nil || err.Error() != "ERR no" {
		t.Fatalf("a failing script: %v", err)
	}
}
