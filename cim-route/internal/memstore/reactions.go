package memstore

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// convReactions are one conversation's reactions (Redis: rxu:{conv} and
// rxc:{conv}, which expire together).
type convReactions struct {
	by     map[string]map[string]reacted // user → msgId → its reaction
	counts map[string][]model.EmojiCount // msgId → counts, first come first
	exp    time.Time
}

// reacted is a user's reaction to a message: the emoji ("" when taken
// back) and the reaction's msgId.
type reacted struct{ emoji, rev string }

func (c *convReactions) add(msgID, emoji string, d int) {
	cs := c.counts[msgID]
	i := slices.IndexFunc(cs, func(x model.EmojiCount) bool { return x.Emoji == emoji })
	switch {
	case i >= 0:
		cs[i].Count += d
		if cs[i].Count <= 0 {
			cs = slices.Delete(cs, i, i+1)
		}
	case d > 0:
		cs = append(cs, model.EmojiCount{Emoji: emoji, Count: d})
	}
	if len(cs) == 0 {
		delete(c.counts, msgID)
		return
	}
	c.counts[msgID] = cs
}

// React records reactions: see router.Reactions.
func (s *Store) React(ctx context.Context, rs []model.Reaction) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reactions == nil {
		s.reactions = map[string]*convReactions{}
	}
	ok := make([]bool, len(rs))
	for i, r := range rs {
		if r.Conv == "" || r.MsgID == "" || r.User == "" || r.RevID == "" {
			continue
		}
		c := s.reactions[r.Conv]
		if c == nil || !s.alive(c.exp) {
			c = &convReactions{by: map[string]map[string]reacted{}, counts: map[string][]model.EmojiCount{}}
			s.reactions[r.Conv] = c
		}
		mine := c.by[r.User]
		old, had := mine[r.MsgID]
		ok[i] = true
		if had && old.rev >= r.RevID {
			continue
		}
		if r.Emoji != "" && r.Emoji != old.emoji && len(c.counts[r.MsgID]) >= model.ReactionKinds &&
			!slices.ContainsFunc(c.counts[r.MsgID], func(x model.EmojiCount) bool { return x.Emoji == r.Emoji }) {
			ok[i] = false
			continue
		}
		if had && old.emoji != "" {
			c.add(r.MsgID, old.emoji, -1)
		}
		if mine == nil {
			mine = map[string]reacted{}
			c.by[r.User] = mine
		}
		mine[r.MsgID] = reacted{emoji: r.Emoji, rev: r.RevID}
		if r.Emoji != "" {
			c.add(r.MsgID, r.Emoji, 1)
		}
		if n := len(mine) - model.ReactionShare; !had && n > 0 {
			for _, id := range slices.Sorted(maps.Keys(mine))[:n] {
				if e := mine[id].emoji; e != "" {
					c.add(id, e, -1)
				}
				delete(mine, id)
			}
		}
		c.exp = s.after(s.inbox.TTL)
	}
	return ok, nil
}

// ReactionsOf reads reactions: see router.Reactions.
func (s *Store) ReactionsOf(ctx context.Context, viewer string, refs []model.ReactionRef) ([]model.Reactions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.Reactions, len(refs))
	for i, r := range refs {
		c := s.reactions[r.Conv]
		if c == nil || !s.alive(c.exp) {
			continue
		}
		out[i].Counts = slices.Clone(c.counts[r.MsgID])
		if viewer != "" {
			out[i].Mine = c.by[viewer][r.MsgID].emoji
		}
	}
	return out, nil
}
