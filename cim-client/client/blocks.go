package client

import (
	"context"
	"net/http"
	"net/url"
)

// MaxBlocked is how many users one user may block (the route's limit).
const MaxBlocked = 1000

// blockedJSON is a user in the route's /blocks answers.
type blockedJSON struct {
	UserID   flexString `json:"userId"`
	UserName flexString `json:"userName"`
}

func (u blockedJSON) user() User {
	return User{UserID: string(u.UserID), UserName: string(u.UserName)}
}

// Block blocks user (an id or a name) for the caller (POST /blocks) and
// returns who that is. From then on the route answers that user's private
// messages to the caller RECEIPT_SENT but neither stores nor delivers them
// (the sender never sees DELIVERED), refuses the caller's private messages
// to them with ERROR codes.Forbidden (final: the message fails, it is not
// sent again), and drops typing between the two; group messages are not
// affected. Blocking someone blocked already succeeds. An unknown user is
// an *APIError with codes.BadAccount, the caller itself codes.BadArgument,
// and more than MaxBlocked users codes.QuotaExceeded; an empty user is
// ErrNoRecipient.
func (a *API) Block(ctx context.Context, user string) (User, error) {
	if user == "" {
		return User{}, ErrNoRecipient
	}
	var d blockedJSON
	if err := a.call(ctx, http.MethodPost, "/blocks", map[string]string{"user": user}, &d, a.authorize); err != nil {
		return User{}, err
	}
	return d.user(), nil
}

// Unblock undoes Block for user (an id or a name; DELETE /blocks/:user)
// and returns who that is: the two may write to each other again.
// Unblocking someone who is not blocked succeeds; an unknown user is an
// *APIError with codes.BadAccount, an empty one ErrNoRecipient.
func (a *API) Unblock(ctx context.Context, user string) (User, error) {
	if user == "" {
		return User{}, ErrNoRecipient
	}
	var d blockedJSON
	if err := a.call(ctx, http.MethodDelete, "/blocks/"+url.PathEscape(user), nil, &d, a.authorize); err != nil {
		return User{}, err
	}
	return d.user(), nil
}

// Blocks lists the users the caller blocked, by id (GET /blocks); there
// are at most MaxBlocked.
func (a *API) Blocks(ctx context.Context) ([]User, error) {
	var d struct {
		Users []blockedJSON `json:"users"`
	}
	if err := a.call(ctx, http.MethodGet, "/blocks", nil, &d, a.authorize); err != nil {
		return nil, err
	}
	out := make([]User, len(d.Users))
	for i, u := range d.Users {
		out[i] = u.user()
	}
	return out, nil
}

// Block is API.Block as this client's user.
func (c *Client) Block(ctx context.Context, user string) (User, error) {
	return c.api.Block(ctx, user)
}

// Unblock is API.Unblock as this client's user.
func (c *Client) Unblock(ctx context.Context, user string) (User, error) {
	return c.api.Unblock(ctx, user)
}

// Blocks is API.Blocks as this client's user.
func (c *Client) Blocks(ctx context.Context) ([]User, error) { return c.api.Blocks(ctx) }
