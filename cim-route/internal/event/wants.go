package event

import "slices"

// Filter is a Sink that takes only some types of event. The message path
// asks it first, so that it builds no payload nobody takes.
type Filter interface {
	Sink
	Wants(typ Type) bool
}

// Wants reports whether s takes events of type typ: false for nil and
// Discard, what s says when it is a Filter, true otherwise.
func Wants(s Sink, typ Type) bool {
	switch s := s.(type) {
	case nil:
		return false
	case Filter:
		return s.Wants(typ)
	}
	return true
}

// Wants is false: Discard takes nothing.
func (Discard) Wants(Type) bool { return false }

// Known reports whether typ is one of Types.
func Known(typ Type) bool { return slices.Contains(Types, typ) }
