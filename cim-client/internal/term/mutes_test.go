package term

import (
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/codes"
)

// TestParseMute: :mute, :unmute and :mutes, with a user or a g:<gid>
// group, and :mute's durations.
func TestParseMute(t *testing.T) {
	const (
		muteUsage   = "usage: :mute <user>|g:<gid> [duration] (30m, 2h, 1d: 1s to 366d; none: until :unmute)"
		unmuteUsage = "usage: :unmute <user>|g:<gid>"
	)
	day := 24 * time.Hour
	for _, tc := range []struct {
		line string
		want Command
	}{
		{":mute bob", Command{Op: OpMute, To: "bob"}},
		{":mute  12 ", Command{Op: OpMute, To: "12"}},
		{":mute bob 30m", Command{Op: OpMute, To: "bob", For: 30 * time.Minute}},
		{":mute bob\t2h", Command{Op: OpMute, To: "bob", For: 2 * time.Hour}},
		{":mute bob 1d", Command{Op: OpMute, To: "bob", For: day}},
		{":mute bob 1d12h", Command{Op: OpMute, To: "bob", For: 36 * time.Hour}},
		{":mute bob 1h30m", Command{Op: OpMute, To: "bob", For: 90 * time.Minute}},
		{":mute bob 90s", Command{Op: OpMute, To: "bob", For: 90 * time.Second}},
		{":mute bob 366d", Command{Op: OpMute, To: "bob", For: 366 * day}},
		{":mute g:3", Command{Op: OpMute, Group: "3"}},
		{":mute g:3 45m", Command{Op: OpMute, Group: "3", For: 45 * time.Minute}},
		{":mute", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 30", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 0s", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 0d", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 500ms", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob -5m", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob +5m", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob -1d", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 1.5d", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob d", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 1dd", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 367d", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 366d1s", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 99999999999d", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob soon", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute bob 2h carol", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute g:x", Command{Op: OpInvalid, Text: muteUsage}},
		{":mute g: 2h", Command{Op: OpInvalid, Text: muteUsage}},
		{":unmute bob", Command{Op: OpUnmute, To: "bob"}},
		{":unmute g:3", Command{Op: OpUnmute, Group: "3"}},
		{":unmute", Command{Op: OpInvalid, Text: unmuteUsage}},
		{":unmute bob 2h", Command{Op: OpInvalid, Text: unmuteUsage}},
		{":unmute g:x", Command{Op: OpInvalid, Text: unmuteUsage}},
		{":mutes", Command{Op: OpMutes}},
		{":mutes bob", Command{Op: OpInvalid, Text: "usage: :mutes"}},
	} {
		if got := Parse(tc.line); got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

// TestMuteFormats: what :mute, :unmute and :mutes print (ends today,
// another day, none), their refusals, and their :help lines.
func TestMuteFormats(t *testing.T) {
	loc := time.FixedZone("X", 2*3600)
	now := time.Date(2024, 5, 6, 12, 0, 0, 0, loc)
	today := time.Date(2024, 5, 6, 14, 5, 30, 0, loc).UTC() // the route's ends are unix ms
	tomorrow := time.Date(2024, 5, 7, 9, 0, 0, 0, loc).UTC()
	bob := client.Mute{UserID: "2", UserName: "bob", Until: today}
	team := client.Mute{Group: "3"}
	label := func(gid string) string { return map[string]string{"3": "team"}[gid] }
	mute, muteGroup, unmuteGroup := Parse(":mute zed"), Parse(":mute g:3"), Parse(":unmute g:3")
	for _, tc := range []struct {
		name, got, want string
	}{
		{"muted, today", Muted(bob, "", loc, now), "* muted bob until 14:05"},
		{"muted, another day", Muted(client.Mute{UserID: "2", UserName: "bob", Until: tomorrow}, "", loc, now), "* muted bob until 2024-05-07 09:00"},
		{"muted, no name", Muted(client.Mute{UserID: "2"}, "", loc, now), "* muted 2 until unmuted"},
		{"muted group", Muted(team, "team", loc, now), "* muted group team (id 3) until unmuted"},
		{"muted group, no name", Muted(team, "#3", loc, now), "* muted group #3 (id 3) until unmuted"},
		{"unmuted", Unmuted(bob, ""), "* unmuted bob"},
		{"unmuted group", Unmuted(team, "team"), "* unmuted group team (id 3)"},
		{"list", MuteList([]client.Mute{bob, {UserID: "4", UserName: "carol\n", Until: tomorrow}, {UserID: "5"}, team}, label, loc, now),
			"* muted: bob(2) until 14:05, carol (4) until 2024-05-07 09:00, 5 until unmuted, group team (id 3) until unmuted"},
		{"empty list", MuteList(nil, label, loc, now), "* nothing muted"},
		{"unknown user", MuteProblem(mute, &client.APIError{Code: codes.BadAccount, HTTPStatus: 401}), "! no such user: zed"},
		{"myself", MuteProblem(Parse(":mute alice"), &client.APIError{Code: codes.BadArgument, HTTPStatus: 400}), "! you cannot mute yourself"},
		{"not a member", MuteProblem(muteGroup, &client.APIError{Code: codes.Forbidden, HTTPStatus: 403}), "! not a member of group 3"},
		{"no such group", MuteProblem(unmuteGroup, &client.APIError{Code: codes.NoGroup, HTTPStatus: 404}), "! no such group: 3"},
		{"too many", MuteProblem(muteGroup, &client.APIError{Code: codes.QuotaExceeded, HTTPStatus: 429}), "! too many conversations muted (at most 1000): :unmute some first"},
		{"other", MuteProblem(mute, &client.APIError{Code: codes.Unavailable, Message: "route unavailable", HTTPStatus: 503}), "! route: route unavailable (code 5030, HTTP 503)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	help := strings.Join(Help(), "\n")
	for _, cmd := range []string{":mute <user>|g:<gid> [duration]", ":unmute <user>|g:<gid>", ":mutes"} {
		if !strings.Contains(help, "\n*   "+cmd+" ") {
			t.Errorf(":help has no line for %s:\n%s", cmd, help)
		}
	}
}
