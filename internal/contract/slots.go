package contract

import "strings"

// Device slots (route --login-policy platform): a user holds at most one
// session per slot, and a newer login into a slot replaces the older one.
// A login names its platform; the platforms below have a slot of their own
// and every other platform shares SlotOther.
//
// The route writes the slot into the session id, "<slot>.<random>", so the
// gateway and the route find a session's slot from the id alone. A session
// id without a known slot prefix belongs to the user's single slot ("", the
// kick and reject policies).
var Slots = []string{"terminal", "web", "mobile", "desktop", "device", SlotOther}

// SlotOther is the slot of platforms without their own.
const SlotOther = "other"

// SlotFor is the slot a login naming platform takes.
func SlotFor(platform string) string {
	for _, s := range Slots {
		if s == platform {
			return s
		}
	}
	return SlotOther
}

// SlotOf is the slot session id sid was made for ("" for none).
func SlotOf(sid string) string {
	i := strings.IndexByte(sid, '.')
	if i <= 0 {
		return ""
	}
	for _, s := range Slots {
		if s == sid[:i] {
			return s
		}
	}
	return ""
}

// DeviceKey names a user's connection in session sid's slot: the user id
// for the single slot, "<uid>/<slot>" otherwise. A gateway holds one
// connection per device key.
func DeviceKey(uid, sid string) string {
	if slot := SlotOf(sid); slot != "" {
		return uid + "/" + slot
	}
	return uid
}
