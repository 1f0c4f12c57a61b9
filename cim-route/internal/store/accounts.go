package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// User is an account.
type User struct {
	ID           string
	Name         string
	PasswordHash string
	Created      int64 // unix ms
}

// CreateUser registers name with a password hash and returns the new id,
// taken from a Redis counter. errs.ErrNameTaken when the name exists.
//
// The user hash is written before the name index, so whoever finds the name
// also finds the user; a lost race for the name deletes the orphan hash (the
// id stays unused, ids only need to be unique).
func (s *Store) CreateUser(ctx context.Context, name, pwHash string) (string, error) {
	n, err := s.rdb.Incr(ctx, s.k.seq()).Result()
	if err != nil {
		return "", unavailable(err)
	}
	id := strconv.FormatInt(n, 10)
	created := s.now().UnixMilli()
	if err := s.rdb.HSet(ctx, s.k.user(id), "name", name, "pw", pwHash, "created", created).Err(); err != nil {
		return "", unavailable(err)
	}
	ok, err := s.rdb.HSetNX(ctx, s.k.names(), name, id).Result()
	if err != nil {
		return "", unavailable(err)
	}
	if !ok {
		_ = s.rdb.Del(ctx, s.k.user(id)).Err()
		return "", fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	return id, nil
}

// NameTaken reports whether name is registered.
func (s *Store) NameTaken(ctx context.Context, name string) (bool, error) {
	ok, err := s.rdb.HExists(ctx, s.k.names(), name).Result()
	return ok, unavailable(err)
}

// UserByName returns the account called name; errs.ErrBadAccount if none.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	id, err := s.rdb.HGet(ctx, s.k.names(), name).Result()
	if errors.Is(err, redis.Nil) {
		return User{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, name)
	}
	if err != nil {
		return User{}, unavailable(err)
	}
	return s.UserByID(ctx, id)
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
	return User{ID: id, Name: m["name"], PasswordHash: m["pw"], Created: created}, nil
}

// Lookup resolves, in one round trip, the names of ids and the ids of names.
// Unknown ones are absent from the maps.
func (s *Store) Lookup(ctx context.Context, ids, names []string) (idToName, nameToID map[string]string, err error) {
	idToName = make(map[string]string, len(ids))
	nameToID = make(map[string]string, len(names))
	if len(ids)+len(names) == 0 {
		return idToName, nameToID, nil
	}
	idCmds := make([]*redis.StringCmd, len(ids))
	nameCmds := make([]*redis.StringCmd, len(names))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			idCmds[i] = p.HGet(ctx, s.k.user(id), "name")
		}
		for i, n := range names {
			nameCmds[i] = p.HGet(ctx, s.k.names(), n)
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
		if v := c.Val(); v != "" {
			nameToID[names[i]] = v
		}
	}
	return idToName, nameToID, nil
}
