package errs

import "errors"

// Sentinels of the abuse limits (issue 11).
var (
	// ErrQuotaExceeded: a per-user budget (upload bytes or rate, group
	// invitations) is used up for now; the HTTP edge may say when to retry.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrBusy: the server is at capacity for this kind of work (password
	// hashing) and does not queue more; retry later.
	ErrBusy = errors.New("server busy")
	// ErrStorageFull: the upload space (the global cap or the file system's
	// free space) cannot take the file; nothing was kept.
	ErrStorageFull = errors.New("storage full")
)
