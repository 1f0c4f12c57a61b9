package mqttconn

import "strings"

// Topics. A device only ever touches its own, under gocim/<its user id>/:
//
//	gocim/<id>/down             downlink: what is sent to the device
//	gocim/<id>/up/<addressee>   uplink to a user (id or name)
//	gocim/<id>/up/g/<groupId>   uplink to a group
//	gocim/<id>/up               uplink to the app back-end (its webhooks)
const topicRoot = "gocim/"

func downTopic(uid string) string { return topicRoot + uid + "/down" }

// target is where an uplink goes.
type target struct {
	toApp bool
	to    string // user id or name
	group string
}

// uplinkTarget parses topic as one of uid's uplink topics; ok is false for
// any other topic (another device's, the downlink, wildcards, an empty
// addressee).
func uplinkTarget(uid, topic string) (t target, ok bool) {
	rest, found := strings.CutPrefix(topic, topicRoot+uid+"/up")
	if !found || strings.ContainsAny(topic, "+#\x00") {
		return target{}, false
	}
	if rest == "" {
		return target{toApp: true}, true
	}
	addr, found := strings.CutPrefix(rest, "/")
	if !found || addr == "" {
		return target{}, false
	}
	if gid, isGroup := strings.CutPrefix(addr, "g/"); isGroup {
		if gid == "" || strings.Contains(gid, "/") {
			return target{}, false
		}
		return target{group: gid}, true
	}
	if strings.Contains(addr, "/") {
		return target{}, false
	}
	return target{to: addr}, true
}

// ownFilter returns which of the subscriptions a device may make filter
// is — its downlink exactly, or a wildcard covering only its own topics —
// and ok false for any other.
func ownFilter(uid, filter string) (f filter, ok bool) {
	base := topicRoot + uid + "/"
	switch filter {
	case base + "down":
		return filterDown, true
	case base + "#":
		return filterAll, true
	case base + "down/#":
		return filterDownAll, true
	}
	return 0, false
}

// filter is one of a device's own topic filters.
type filter uint8

const (
	filterDown    filter = iota // gocim/<id>/down
	filterAll                   // gocim/<id>/#
	filterDownAll               // gocim/<id>/down/#
)

// subscriptions are a device's own filters subscribed, with the QoS each
// was granted: two bits per filter, not a map (an idle device keeps them).
type subscriptions struct{ on, qos1 uint8 }

func (s *subscriptions) add(f filter, qos byte) {
	s.on |= 1 << f
	s.qos1 &^= 1 << f
	if qos > 0 {
		s.qos1 |= 1 << f
	}
}

// remove reports whether f was subscribed.
func (s *subscriptions) remove(f filter) bool {
	had := s.on&(1<<f) != 0
	s.on &^= 1 << f
	s.qos1 &^= 1 << f
	return had
}

// qos0Only reports whether there is a subscription and every one is QoS 0.
func (s subscriptions) qos0Only() bool { return s.on != 0 && s.qos1 == 0 }
