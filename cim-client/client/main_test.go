package client

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger discards logs unless CIM_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CIM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fastConfig is a Config with test-sized timers. Heartbeats are off unless
// a test turns them on, so that only the tests about them see PINGs; the
// fakes answer no MSG unless told to, so resends wait a minute unless a test
// is about them.
func fastConfig(routeURL string) Config {
	return Config{
		RouteURL:     routeURL,
		UserName:     "alice",
		Password:     "secret1",
		Heartbeat:    -1,
		PongTimeout:  5 * time.Second,
		ReconnectMin: time.Millisecond,
		ReconnectMax: 5 * time.Millisecond,
		DialTimeout:  5 * time.Second,
		Logger:       testLogger(),

		ResendTimeout: time.Minute,
	}
}

// startClient starts a client for alice and closes it at cleanup.
func startClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeClient(t, c) })
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

// closeClient closes c and drains its events so Close never waits on us.
func closeClient(t *testing.T, c *Client) {
	t.Helper()
	go func() {
		for range c.Events() {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// next returns the next event, which must be of kind want.
func next(t *testing.T, c *Client, want EventKind) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed, want %v", want)
		}
		if ev.Kind != want {
			t.Fatalf("event %v (reason %q, gateway %q), want %v", ev.Kind, ev.Reason, ev.Gateway, want)
		}
		return ev
	case <-time.After(clienttest.Wait):
		t.Fatalf("no %v event within %v", want, clienttest.Wait)
		return Event{}
	}
}

// noEvent fails if an event is already waiting.
func noEvent(t *testing.T, c *Client) {
	t.Helper()
	select {
	case ev := <-c.Events():
		t.Fatalf("unexpected event %v (reason %q)", ev.Kind, ev.Reason)
	default:
	}
}
