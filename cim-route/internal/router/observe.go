package router

import "time"

// Observer is told about the router's work, for the route's metrics
// (package metrics implements it). Its methods are called on the hot path
// and must be cheap.
type Observer interface {
	// Uplinked: an uplink batch of frames was answered in d (failed or
	// not).
	Uplinked(frames int, d time.Duration)
	// InboxAppended: one inbox write (a batch's appends, acks and route
	// reads, in one pipeline) took d.
	InboxAppended(d time.Duration)
	// Synced: a SYNC answer carries messages entries (messages and
	// receipts).
	Synced(messages int)
	// GroupFanout: a group message goes to recipients members.
	GroupFanout(recipients int)
	// Resumed: a login was made with a resume token.
	Resumed()
}

// noObserver observes nothing.
type noObserver struct{}

func (noObserver) Uplinked(int, time.Duration) {}
func (noObserver) InboxAppended(time.Duration) {}
func (noObserver) Synced(int)                  {}
func (noObserver) GroupFanout(int)             {}
func (noObserver) Resumed()                    {}

// observer is Config.Observer, or one that observes nothing.
func (r *Router) observer() Observer {
	if r.cfg.Observer == nil {
		return noObserver{}
	}
	return r.cfg.Observer
}
