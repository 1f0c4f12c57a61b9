package router

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/ratelimit"
)

// Limits bound what one user, and everybody together, can make the router
// do (issue 11). The zero value is the documented defaults where a field
// says so, and no limit elsewhere.
type Limits struct {
	// HashSlots is how many bcrypt runs may go at once (default: the
	// number of CPUs the process may use); registrations take at most half
	// of them (at least one), so logins keep a share during a registration
	// flood.
	HashSlots int
	// HashQueue is how many logins may wait for a slot, and how many
	// registrations; beyond it the call fails at once with errs.ErrBusy
	// instead of queueing without bound. Default 256; < 0: none wait.
	HashQueue int

	// InvitesPerHour is the group invitations one user may send per hour
	// (all of them at once at most); 0: no limit.
	InvitesPerHour int
	// GroupsPerHour is the groups one user may create per hour (all of
	// them at once at most; 0: no limit), GroupsPerUser the groups one user
	// may be a member of, owned ones included (default and at most
	// maxListedGroups, the groups a login SYNC lists: a user in more would
	// miss the others' catch-up). Checked before a create or a join, so
	// requests racing each other may pass it by their number. Both bound
	// what one user stores in groups and what its logins and listings read.
	GroupsPerHour int
	GroupsPerUser int
	// GroupCopiesPerSecond and GroupCopiesBurst bound the inbox copies one
	// user's messages to groups without a timeline store (one per
	// recipient); 0: no limit. The burst must hold the largest such group.
	GroupCopiesPerSecond float64
	GroupCopiesBurst     int
	// GroupPushesPerSecond and GroupPushesBurst bound the deliveries one
	// user's messages to groups with a timeline cause (one per recipient,
	// online or not: stored once, a message still goes to every member);
	// 0: no limit. The burst must hold the largest group.
	GroupPushesPerSecond float64
	GroupPushesBurst     int

	// HistoryScan bounds the inbox entries one /history request reads per
	// inbox (default 2000), HistoryScanBytes their bytes (default 8 MiB) and
	// HistoryBytes the message bytes one answer carries (default 1 MiB; at
	// least one message). A page cut short says where to go on (Next).
	HistoryScan      int
	HistoryScanBytes int
	HistoryBytes     int

	// UploadQuota is the bytes one user may upload per day (UTC); 0: no
	// limit.
	UploadQuota int64
}

// History defaults.
const (
	defaultHistoryScan      = 2000
	defaultHistoryScanBytes = 8 << 20
	defaultHistoryBytes     = 1 << 20
	defaultHashQueue        = 256
)

func (l *Limits) withDefaults() {
	if l.HashSlots <= 0 {
		l.HashSlots = runtime.GOMAXPROCS(0)
	}
	if l.HashQueue == 0 {
		l.HashQueue = defaultHashQueue
	}
	if l.HistoryScan <= 0 {
		l.HistoryScan = defaultHistoryScan
	}
	if l.HistoryScanBytes <= 0 {
		l.HistoryScanBytes = defaultHistoryScanBytes
	}
	if l.HistoryBytes <= 0 {
		l.HistoryBytes = defaultHistoryBytes
	}
}

// hashPool runs bcrypt on a bounded number of slots. Registrations first
// take one of their own (at most half the slots), so they can never hold
// them all; waiting is bounded per kind, and a context that ends stops the
// wait.
type hashPool struct {
	slots    chan struct{}
	regSlots chan struct{}
	queue    int64
	logins   atomic.Int64 // waiting or running
	regs     atomic.Int64
}

func newHashPool(slots, queue int) *hashPool {
	return &hashPool{
		slots:    make(chan struct{}, slots),
		regSlots: make(chan struct{}, max(1, slots/2)),
		queue:    int64(max(queue, 0)),
	}
}

// run runs fn on a slot; errs.ErrBusy when too many are already waiting.
func (p *hashPool) run(ctx context.Context, register bool, fn func()) error {
	n, limit := &p.logins, p.queue+int64(cap(p.slots))
	if register {
		n, limit = &p.regs, p.queue+int64(cap(p.regSlots))
	}
	if n.Add(1) > limit {
		n.Add(-1)
		return fmt.Errorf("%w: too many password checks waiting, retry later", errs.ErrBusy)
	}
	defer n.Add(-1)
	if register {
		if err := acquire(ctx, p.regSlots); err != nil {
			return err
		}
		defer func() { <-p.regSlots }()
	}
	if err := acquire(ctx, p.slots); err != nil {
		return err
	}
	defer func() { <-p.slots }()
	fn()
	return nil
}

func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: gave up waiting for a password check: %v", errs.ErrBusy, ctx.Err())
	}
}

// newPerSecond is a per-user budget of perSecond a second with a burst
// (nil: none), kept by limiter (nil: in this process).
func newPerSecond(limiter ratelimit.Maker, name string, perSecond float64, burst int) *ratelimit.Limiter {
	if perSecond <= 0 {
		return nil
	}
	if limiter == nil {
		limiter = ratelimit.New
	}
	return limiter(ratelimit.Config{Name: name, Rate: perSecond, Burst: burst, Dimensions: 1})
}

// newHourly is a per-user budget of perHour a hour, all at once at most.
func newHourly(limiter ratelimit.Maker, name string, perHour int) *ratelimit.Limiter {
	return newPerSecond(limiter, name, float64(perHour)/3600, perHour)
}
