package router

import "github.com/gocim/gocim/cim-route/internal/event"

// emit reports an event to the app back-end's webhooks; it never blocks.
func (r *Router) emit(typ event.Type, data any) {
	r.cfg.Events.Emit(event.New(typ, r.now(), data))
}
