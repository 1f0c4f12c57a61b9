package config

import (
	"time"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/webhook"
	"github.com/gocim/gocim/internal/envflag"
)

// validateWebhooks checks the --webhook-* flags.
func (c *Config) validateWebhooks(bad func(string, ...any)) {
	urls := c.WebhookURLs()
	for _, u := range urls {
		if _, err := webhook.CheckURL(u); err != nil {
			bad("--webhook-url: %q is not an http:// or https:// URL", u)
		}
	}
	switch {
	case len(urls) > 0 && c.WebhookSecret == "":
		bad("--webhook-secret is required with --webhook-url")
	case c.WebhookSecret != "" && len(c.WebhookSecret) < webhook.MinSecretLen:
		bad("--webhook-secret: shorter than %d bytes", webhook.MinSecretLen)
	}
	for _, t := range envflag.List(c.WebhookEvents) {
		if !event.Known(event.Type(t)) {
			bad("--webhook-events: unknown event type %q (want some of %v)", t, event.Types)
		}
	}
	for _, u := range c.WebhookAppUserList() {
		if !isUserRef(u) {
			bad("--webhook-app-users: %q is neither a user id nor a user name", u)
		}
	}
	if c.WebhookQueueMax < 1 {
		bad("--webhook-queue-max %d: must be at least 1", c.WebhookQueueMax)
	}
	if c.WebhookMaxAge < time.Minute {
		bad("--webhook-max-age %v: must be at least 1m", c.WebhookMaxAge)
	}
	if c.WebhookTimeout < 100*time.Millisecond || c.WebhookTimeout > 5*time.Minute {
		bad("--webhook-timeout %v: want 100ms..5m", c.WebhookTimeout)
	}
}

// WebhookURLs splits --webhook-url; none: no webhooks.
func (c *Config) WebhookURLs() []string { return envflag.List(c.WebhookURL) }

// WebhookEventTypes splits --webhook-events; nil: every type.
func (c *Config) WebhookEventTypes() []event.Type {
	var out []event.Type
	for _, t := range envflag.List(c.WebhookEvents) {
		out = append(out, event.Type(t))
	}
	return out
}

// WebhookAppUserList splits --webhook-app-users.
func (c *Config) WebhookAppUserList() []string { return envflag.List(c.WebhookAppUsers) }

// isUserRef reports whether s is a user id (decimal) or a valid user name
// (2-32 characters [A-Za-z][A-Za-z0-9_.-]*).
func isUserRef(s string) bool {
	digits, name := len(s) > 0 && len(s) <= 19, len(s) >= 2 && len(s) <= 32
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c|0x20 >= 'a' && c|0x20 <= 'z'
		digit := c >= '0' && c <= '9'
		digits = digits && digit
		name = name && (letter || (i > 0 && (digit || c == '_' || c == '.' || c == '-')))
	}
	return digits || name
}
