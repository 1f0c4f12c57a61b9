package model

// Mutes (docs/ARCHITECTURE.md, "Mutes"): a user mutes a conversation — a
// peer or a group — for a while or until it unmutes. Nothing about the
// messages changes; the user's clients and the app back-end (the webhooks
// say which recipients muted a conversation) notify less.

// MutePeer names the private conversation with user peer as a mute target.
func MutePeer(peer string) string { return "u" + peer }

// MuteGroup names group gid as a mute target.
func MuteGroup(gid string) string { return "g" + gid }

// MuteRef asks whether User muted Target.
type MuteRef struct {
	User, Target string
}
