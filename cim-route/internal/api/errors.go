package api

import (
	"errors"
	"net/http"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/codes"
)

// failures is the one table from sentinel errors to API code and HTTP status
// (docs/ARCHITECTURE.md, "Route public API" and "Security"). First match
// wins, so more specific errors come first.
var failures = []struct {
	err    error
	code   codes.Code
	status int
}{
	{errs.ErrTooLarge, codes.TooLarge, http.StatusRequestEntityTooLarge},
	{errs.ErrNoGroup, codes.NoGroup, http.StatusNotFound},
	{errs.ErrGroupFull, codes.GroupFull, http.StatusConflict},
	{errs.ErrRateLimited, codes.RateLimited, http.StatusTooManyRequests},
	{errs.ErrQuotaExceeded, codes.QuotaExceeded, http.StatusTooManyRequests},
	{errs.ErrStorageFull, codes.StorageFull, http.StatusInsufficientStorage},
	{errs.ErrBusy, codes.Busy, http.StatusServiceUnavailable},
	{errs.ErrForbidden, codes.Forbidden, http.StatusForbidden},
	{errs.ErrBadArgument, codes.BadArgument, http.StatusBadRequest},
	{errs.ErrNameTaken, codes.BadAccount, http.StatusConflict},
	{errs.ErrBadAccount, codes.BadAccount, http.StatusUnauthorized},
	{errs.ErrRepeatLogin, codes.RepeatLogin, http.StatusConflict},
	{errs.ErrNotFound, codes.BadArgument, http.StatusNotFound},
	{errs.ErrUnauthorized, codes.Unauthorized, http.StatusUnauthorized},
	{errs.ErrNoGateway, codes.NoServer, http.StatusServiceUnavailable},
	{errs.ErrStaleSession, codes.Unauthorized, contract.StatusNotCurrent}, // read by contract.SessionAnswer
	{errs.ErrUnavailable, codes.Unavailable, http.StatusServiceUnavailable},
	{errs.ErrAuthUnavailable, codes.Unavailable, http.StatusServiceUnavailable},
}

// classify returns the code and status for err; anything unknown is an
// internal error (500) whose details are logged, not shown.
func classify(err error) (codes.Code, int, bool) {
	for _, f := range failures {
		if errors.Is(err, f.err) {
			return f.code, f.status, true
		}
	}
	return codes.Internal, http.StatusInternalServerError, false
}
