package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/term"
)

// muteCommand runs :mute, :unmute or :mutes, printing its outcome.
func muteCommand(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) {
	if cmd.Op == term.OpMutes {
		ms, err := c.Mutes(ctx)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			return
		}
		p.Line(term.MuteList(ms, p.GroupName, time.Local, time.Now()))
		return
	}
	var m client.Mute
	var err error
	switch {
	case cmd.Op == term.OpMute && cmd.Group != "":
		m, err = c.MuteGroup(ctx, cmd.Group, cmd.For)
	case cmd.Op == term.OpMute:
		m, err = c.MuteUser(ctx, cmd.To, cmd.For)
	case cmd.Group != "":
		m, err = c.UnmuteGroup(ctx, cmd.Group)
	default:
		m, err = c.UnmuteUser(ctx, cmd.To)
	}
	if err != nil {
		p.Line(term.MuteProblem(cmd, err))
		return
	}
	group := ""
	if m.Group != "" {
		group = p.GroupName(m.Group)
	}
	if cmd.Op == term.OpMute {
		p.Line(term.Muted(m, group, time.Local, time.Now()))
		return
	}
	p.Line(term.Unmuted(m, group))
}

// readMutes reads the muted conversations once logged in, as every client
// does at start (the route pushes no change): the client's list (Muted)
// is then current. The terminal itself rings no bell and prints a muted
// conversation's lines as any other's, so a failure (e.g. a route older
// than mutes) is only logged.
func readMutes(ctx context.Context, c *client.Client, log *slog.Logger) {
	if _, err := c.Mutes(ctx); err != nil && ctx.Err() == nil {
		log.Info("reading the muted conversations", "err", err)
	}
}
