package metrics

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisHook returns a go-redis hook counting failed calls in
// redis_errors_total: one per command, one per pipeline however many of
// its commands failed. Answers that are no failure are left out: a missing
// key (redis.Nil), a script not cached yet (NOSCRIPT: go-redis and the
// store load it and run it again), a transaction whose WATCHed key
// changed, a caller that gave up (context.Canceled) and an older Redis
// refusing go-redis's CLIENT SETINFO. Add it where the client is created,
// before use.
func (m *Route) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Route }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return next // a failed dial fails the command that needed it, counted there
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if redisFailure(cmd, err) {
			h.m.RedisError()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		// Exec reports the first command's error only; a real failure
		// may hide behind a redis.Nil.
		for _, c := range cmds {
			if redisFailure(c, c.Err()) {
				h.m.RedisError()
				break
			}
		}
		return err
	}
}

// redisFailure reports whether err, cmd's outcome, is a failure of Redis
// or of the way to it, as opposed to an answer (redis.Nil, NOSCRIPT, a
// failed WATCH), the caller leaving, or a Redis older than 7.2 refusing
// the CLIENT SETINFO that go-redis sends on every new connection (and
// does without).
func redisFailure(cmd redis.Cmder, err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, redis.TxFailedErr), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, redis.ErrNoScript), redis.HasErrorPrefix(err, "NOSCRIPT"):
		return false
	case cmd.Name() == "client" && isRedisError(err):
		args := cmd.Args()
		if len(args) > 1 {
			if sub, ok := args[1].(string); ok && strings.EqualFold(sub, "setinfo") {
				return false
			}
		}
	}
	return true
}

// isRedisError reports whether err is an error reply of Redis (not a
// network failure).
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
