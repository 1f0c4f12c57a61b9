package webhook

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// recordTimeout bounds the Redis call that records an attempt's outcome.
const recordTimeout = 5 * time.Second

// deliverLoop claims t's due events and sends them under sends, at most
// Concurrency at once, until ctx ends; then it waits for the sends (a send
// that sends cancels gives its lease back).
func (d *Dispatcher) deliverLoop(ctx, sends context.Context, t *target) {
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, d.cfg.Concurrency)
	free := d.cfg.Concurrency
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	for {
		if free > 0 && ctx.Err() == nil {
			es, err := t.q.claim(ctx, time.Now(), d.cfg.Lease, free)
			if err != nil && ctx.Err() == nil && d.redisLog.allow(d.cfg.LogEvery) {
				d.log.Warn("webhook queue unreadable; retrying", "url", t.name, "err", err)
			}
			for _, e := range es {
				free--
				wg.Go(func() {
					d.send(sends, t, e)
					done <- struct{}{}
				})
			}
			if err == nil && free > 0 && len(es) > 0 {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			free++
		case <-t.wake:
		case <-poll.C:
		}
	}
}

// send makes one attempt at e and records what came of it: removed when
// delivered (or too old), rescheduled after a backoff when it failed,
// given back when ctx ended first.
func (d *Dispatcher) send(ctx context.Context, t *target, e entry) {
	status, err := d.post(ctx, t, e)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := time.Now()
	var rerr error
	kind := ""
	switch {
	case err == nil && status >= 200 && status < 300:
		rerr, kind = t.q.remove(rctx, e.sid), "delivered"
		d.delivered.Add(1)
	case ctx.Err() != nil:
		rerr = t.q.release(rctx, e.sid, now)
	case now.Sub(e.queuedAt()) >= d.cfg.MaxAge:
		rerr, kind = t.q.remove(rctx, e.sid), "expired"
		d.expired.Add(1)
		d.log.Warn("webhook event dropped: still failing after the maximum age", "url", t.name, "id", e.id, "type", e.typ,
			"queued", e.queuedAt(), "attempts", e.tries+1, "status", status, "err", err)
	default:
		wait := retryDelay(d.cfg.RetryMin, d.cfg.RetryMax, e.tries+1, rand.Int64N)
		rerr, kind = t.q.retry(rctx, e.sid, now.Add(wait)), "failed"
		d.failed.Add(1)
		if t.fail.allow(d.cfg.LogEvery) {
			d.log.Warn("webhook delivery failed; retrying", "url", t.name, "id", e.id, "type", e.typ,
				"attempts", e.tries+1, "retryIn", wait, "status", status, "err", err)
		}
	}
	if rerr != nil && d.redisLog.allow(d.cfg.LogEvery) {
		d.log.Warn("webhook queue not updated; the event is sent again when its lease ends", "url", t.name, "id", e.id, "err", rerr)
	}
	if kind != "" {
		d.notify(kind)
	}
}

// post sends e to t and returns the answer's status.
func (d *Dispatcher) post(ctx context.Context, t *target, e entry) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(e.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gocim-webhook/1")
	req.Header.Set(HeaderIdempotency, e.id)
	req.Header.Set(HeaderEvent, e.typ)
	req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, e.body, time.Now()))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the answer so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// retryDelay is the wait after the n-th failed attempt (n >= 1): the step
// lo·2^(n-1), at most hi, drawn from [step/2, step] (rand(k) is uniform in
// [0, k)) so that events that failed together spread out.
func retryDelay(lo, hi time.Duration, n int, rand func(int64) int64) time.Duration {
	step := lo
	for i := 1; i < n && step < hi; i++ {
		step *= 2
	}
	step = min(step, hi)
	half := step / 2
	return half + time.Duration(rand(int64(step-half)+1))
}
