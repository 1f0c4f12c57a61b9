package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// User is model.User (package model holds the shared types).
type User = model.User

// FoldName is model.FoldName.
func FoldName(name string) string { return model.FoldName(name) }

// CreateUser registers name with a password hash and returns the new id,
// taken from a Redis counter. errs.ErrNameTaken when the name exists in any
// case ("Alice" when "alice" exists).
//
// The user hash is written before the name index, so whoever finds the name
// also finds the user; a lost race for the name deletes the orphan hash (the
// id stays unused, ids only need to be unique). The index holds the folded
// name; an account indexed under its exact spelling by an older version is
// found too (see FoldNames).
func (s *Store) CreateUser(ctx context.Context, name, pwHash string) (string, error) {
	if taken, err := s.NameTaken(ctx, name); err != nil {
		return "", err
	} else if taken {
		return "", fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	n, err := s.rdb.Incr(ctx, s.k.seq()).Result()
	if err != nil {
		return "", unavailable(err)
	}
	id := strconv.FormatInt(n, 10)
	created := s.now().UnixMilli()
	if err := s.rdb.HSet(ctx, s.k.user(id), "name", name, "pw", pwHash, "created", created).Err(); err != nil {
		return "", unavailable(err)
	}
	ok, err := s.rdb.HSetNX(ctx, s.k.names(), FoldName(name), id).Result()
	if err != nil {
		return "", unavailable(err)
	}
	if !ok {
		_ = s.rdb.Del(ctx, s.k.user(id)).Err()
		return "", fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	return id, nil
}

// NameTaken reports whether name is registered, in any case.
func (s *Store) NameTaken(ctx context.Context, name string) (bool, error) {
	id, err := s.nameID(ctx, name)
	return id != "", err
}

// UserByName returns the account called name (in any case); errs.ErrBadAccount
// if none.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	id, err := s.nameID(ctx, name)
	if err != nil {
		return User{}, err
	}
	if id == "" {
		return User{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, name)
	}
	return s.UserByID(ctx, id)
}

// nameID looks name up in the index: its exact spelling first (accounts of
// an older version that were never folded, and two such accounts that differ
// only by case stay apart), then its folded form. "" if unknown.
func (s *Store) nameID(ctx context.Context, name string) (string, error) {
	var exact, folded *redis.StringCmd
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exact = p.HGet(ctx, s.k.names(), name)
		if f := FoldName(name); f != name {
			folded = p.HGet(ctx, s.k.names(), f)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return "", err
	}
	if id := exact.Val(); id != "" {
		return id, nil
	}
	if folded != nil {
		return folded.Val(), nil
	}
	return "", nil
}

// FoldNames indexes every name that an older version indexed only under its
// exact spelling under its folded form too (when that is free), so that a
// name differing only by case cannot be registered again. It runs once per
// Redis (a marker key remembers it) and scans the index in steps.
func (s *Store) FoldNames(ctx context.Context) (int, error) {
	marker := s.k.names() + ":folded"
	if n, err := s.rdb.Exists(ctx, marker).Result(); err != nil || n == 1 {
		return 0, unavailable(err)
	}
	added := 0
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, s.k.names(), cursor, "", 500).Result()
		if err != nil {
			return added, unavailable(err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if f := FoldName(kv[i]); f != kv[i] {
				ok, err := s.rdb.HSetNX(ctx, s.k.names(), f, kv[i+1]).Result()
				if err != nil {
					return added, unavailable(err)
				}
				if ok {
					added++
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return added, unavailable(s.rdb.Set(ctx, marker, "1", 0).Err())
}

// UserByID returns the account with id; errs.ErrBadAccount if none.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	m, err := s.rdb.HGetAll(ctx, s.k.user(id)).Result()
	if err != nil {
		return User{}, unavailable(err)
	}
	if m["name"] == "" {
		return User{}, fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, id)
	}
	created, _ := strconv.ParseInt(m["created"], 10, 64)
	return User{ID: id, Name: m["name"], PasswordHash: m["pw"], Created: created, Device: m["device"] == "1"}, nil
}

// Lookup resolves, in one round trip, the names of ids and the ids of names
// (in any case, keyed as given). Unknown ones are absent from the maps.
func (s *Store) Lookup(ctx context.Context, ids, names []string) (idToName, nameToID map[string]string, err error) {
	idToName = make(map[string]string, len(ids))
	nameToID = make(map[string]string, len(names))
	if len(ids)+len(names) == 0 {
		return idToName, nameToID, nil
	}
	idCmds := make([]*redis.StringCmd, len(ids))
	nameCmds := make([]*redis.StringCmd, len(names))
	foldCmds := make([]*redis.StringCmd, len(names))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			idCmds[i] = p.HGet(ctx, s.k.user(id), "name")
		}
		for i, n := range names {
			nameCmds[i] = p.HGet(ctx, s.k.names(), n)
			if f := FoldName(n); f != n {
				foldCmds[i] = p.HGet(ctx, s.k.names(), f)
			}
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, nil, err
	}
	for i, c := range idCmds {
		if v := c.Val(); v != "" {
			idToName[ids[i]] = v
		}
	}
	for i, c := range nameCmds {
		v := c.Val()
		if v == "" && foldCmds[i] != nil {
			v = foldCmds[i].Val()
		}
		if v != "" {
			nameToID[names[i]] = v
		}
	}
	return idToName, nameToID, nil
}
