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

// ownFilter reports whether filter is one of the subscriptions a device may
// make: its downlink exactly, or a wildcard covering only its own topics.
func ownFilter(uid, filter string) bool {
	base := topicRoot + uid + "/"
	switch filter {
	case base + "down", base + "#", base + "down/#":
		return true
	}
	return false
}
