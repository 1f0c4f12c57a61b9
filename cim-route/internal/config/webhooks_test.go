package config

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/event"
)

func TestWebhookFlags(t *testing.T) {
	c, err := Parse("cim-route", ok, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhookURLs() != nil || c.WebhookEventTypes() != nil || c.WebhookQueueMax != 100000 || c.WebhookMaxAge != 24*time.Hour || c.WebhookTimeout != 10*time.Second {
		t.Fatalf("webhook defaults wrong: %+v", c)
	}
	t.Setenv("CIM_WEBHOOK_SECRET", "webhook-secret-0123456789")
	c, err = Parse("cim-route", with("--webhook-url", "https://app.example.org/hook, http://10.0.0.1:8000/gocim?k=1",
		"--webhook-events", "message.offline,user.kicked", "--webhook-app-users", "bot, 42", "--webhook-queue-max", "5",
		"--webhook-max-age", "1h", "--webhook-timeout", "3s"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.WebhookURLs(), []string{"https://app.example.org/hook", "http://10.0.0.1:8000/gocim?k=1"}) ||
		c.WebhookSecret != "webhook-secret-0123456789" ||
		!slices.Equal(c.WebhookEventTypes(), []event.Type{event.MessageOffline, event.UserKicked}) ||
		!slices.Equal(c.WebhookAppUserList(), []string{"bot", "42"}) ||
		c.WebhookQueueMax != 5 || c.WebhookMaxAge != time.Hour || c.WebhookTimeout != 3*time.Second {
		t.Fatalf("webhook flags not applied: %+v", c)
	}
}

func TestWebhookValidation(t *testing.T) {
	const url, secret = "https://app.example.org/hook", "webhook-secret-0123456789"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook-url", url}, "--webhook-secret is required with --webhook-url"},
		{[]string{"--webhook-url", url, "--webhook-secret", "short"}, "--webhook-secret: shorter than 16 bytes"},
		{[]string{"--webhook-url", "ftp://x/", "--webhook-secret", secret}, `--webhook-url: "ftp://x/"`},
		{[]string{"--webhook-url", "app.example.org", "--webhook-secret", secret}, `--webhook-url: "app.example.org"`},
		{[]string{"--webhook-events", "message.app,user.sneezed"}, `--webhook-events: unknown event type "user.sneezed"`},
		{[]string{"--webhook-app-users", "bot,b@d"}, `--webhook-app-users: "b@d"`},
		{[]string{"--webhook-app-users", "1bot"}, `--webhook-app-users: "1bot"`},
		{[]string{"--webhook-queue-max", "0"}, "--webhook-queue-max"},
		{[]string{"--webhook-max-age", "1s"}, "--webhook-max-age"},
		{[]string{"--webhook-timeout", "1ms"}, "--webhook-timeout"},
	} {
		_, err := Parse("cim-route", with(tt.args...), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want it to mention %q", tt.args, err, tt.want)
		}
	}
	var out bytes.Buffer
	Parse("cim-route", []string{"--help"}, &out)
	for _, s := range []string{"webhook-url", "CIM_WEBHOOK_SECRET", "webhook-queue-max", "(default 100000)", "webhook-max-age", "webhook-timeout", "(default 10s)"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--help output lacks %q", s)
		}
	}
}
