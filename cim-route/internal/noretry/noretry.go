// Package noretry runs Redis commands that must not run twice.
//
// go-redis retries a command whose answer timed out or whose connection
// broke after it was written (MaxRetries). Redis may have run it already,
// or may run every attempt once it answers again (a frozen Redis reads its
// sockets' backlog when it thaws), so a command that counts — a quota's
// INCRBY, a rate limiter's take or refund — would count two or three times.
// Run, Do and EvalSha mark their command NoRetry, go-redis's own switch for
// commands that cannot be replayed: it runs at most once (a pipeline that
// holds one, every command of it), and a failure is the caller's to handle. Retries stay on for everything else, where a replay
// is harmless (reads, SETs, scripts with dedup keys).
package noretry

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// cmd is a redis.Cmd that go-redis never sends again.
type cmd struct{ *redis.Cmd }

func (cmd) NoRetry() bool { return true }

// Do sends args as one command, at most once.
func Do(ctx context.Context, c redis.UniversalClient, args ...any) *redis.Cmd {
	rc := redis.NewCmd(ctx, args...)
	_ = c.Process(ctx, cmd{rc})
	return rc
}

// EvalSha queues in p a run of s by its hash that go-redis never sends
// again. go-redis retries no pipeline that holds one: a failure is the
// caller's, for every command of that pipeline.
func EvalSha(ctx context.Context, p redis.Pipeliner, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	rc := redis.NewCmd(ctx, evalsha(s.Hash(), keys, args)...)
	_ = p.Process(ctx, cmd{rc})
	return rc
}

// Run runs s (by its hash, loading it first when Redis lacks it) at most
// once. A NOSCRIPT answer means it did not run, so that attempt is
// followed by one more after the load.
func Run(ctx context.Context, c redis.UniversalClient, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	r := Do(ctx, c, evalsha(s.Hash(), keys, args)...)
	if !redis.HasErrorPrefix(r.Err(), "NOSCRIPT") {
		return r
	}
	if err := s.Load(ctx, c).Err(); err != nil {
		return r
	}
	return Do(ctx, c, evalsha(s.Hash(), keys, args)...)
}

func evalsha(hash string, keys []string, args []any) []any {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", hash, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	return append(a, args...)
}
