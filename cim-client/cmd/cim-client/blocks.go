package main

import (
	"context"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/term"
)

// blockCommand runs :block, :unblock or :blocks, printing its outcome.
func blockCommand(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) {
	var line string
	switch cmd.Op {
	case term.OpBlock:
		u, err := c.Block(ctx, cmd.To)
		if err != nil {
			p.Line(term.BlockProblem(cmd, err))
			return
		}
		line = term.Blocked(u)
	case term.OpUnblock:
		u, err := c.Unblock(ctx, cmd.To)
		if err != nil {
			p.Line(term.BlockProblem(cmd, err))
			return
		}
		line = term.Unblocked(u)
	case term.OpBlocks:
		users, err := c.Blocks(ctx)
		if err != nil {
			p.Line(term.Problem(err.Error()))
			return
		}
		line = term.BlockList(users)
	}
	p.Line(line)
}
