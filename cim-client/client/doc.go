// Package client is the gocim SDK that chat programs, app back-ends and IoT
// devices embed to keep one connection to a gocim cluster.
//
// Two layers:
//
//   - API is a thin client of the route's public HTTP API (register, login,
//     online users, log off). Failures the route reports come back as
//     *APIError carrying the route's result code.
//   - Client logs in through the route, connects to the gateway the route
//     names, and then keeps that connection alive on its own: it heartbeats,
//     notices a dead link, logs in again through the route (which may pick
//     another gateway) with jittered exponential backoff, and delivers what
//     the gateway pushes on Events in the order it arrived.
//
// Reliable delivery (docs/ARCHITECTURE.md, "Reliable delivery"): every
// message and receipt stored in the user's inbox carries a seq. The Client
// shows each exactly once and in seq order, live or fetched by SYNC (the
// gateway syncs from LOGIN.last_seq on every login; the client fills gaps
// itself), and acknowledges what it showed with batched cumulative ACKs.
// As a sender it keeps every MSG until the route answers RECEIPT_SENT or a
// final ERROR, resending it with the same client_msg_id after a timeout and
// on every new link; Status and Recent tell how far each message got (sent,
// delivered, read). MarkRead, History, SendFile and SaveFile cover read
// receipts, the stored history and file messages; Reply and ReplyInGroup
// send a message answering an earlier one (Msg.ReplyTo); React and
// ReactInGroup set or take back the user's reaction to one, sent like an
// Edit (HistoryPage.Reactions counts them). ERROR RateLimited
// (the gateway's per-connection message limit) is not final either: the
// message is kept and sent again on the resend schedule (EventRetrying).
//
// Memory: a busy client keeps up to ≈ 0.35 MB of records for Status and
// Recent (Config.SentKept, 1,000 by default, ≈ 350 bytes each) and up to
// ≈ 0.3 MB for the msgIds it showed (4,096, to drop repeats). A process that
// embeds many clients and never asks for Status or Recent (an app
// back-end, a device gateway, gocim's own load generator) should set
// SentKept low: the records are then the largest part of the process's
// live heap, which its garbage collector marks on every cycle while it
// slows every client.
//
// Security (docs/ARCHITECTURE.md, "Security"): /login hands out an access
// token with the gateway token; API sends it as "Authorization: Bearer" on
// the calls that act for the session (online users, log-off, history,
// uploads, downloads). A 401 is returned as an error matching
// ErrUnauthorized; the SDK does not log in again for it. /login also hands
// out a resume token: the client keeps it in memory and logs in with it,
// once, instead of the password when it reconnects (a route checks no
// password hash for it, so a failed gateway's users come back at little
// cost), and with the password when the route refuses it. To stay signed
// in across restarts, keep what Config.OnResumeToken hears (the latest
// token, "" once there is none) and start the next Client with it as
// Config.ResumeToken, the password left empty: end a Client with
// Disconnect to keep the token, with Close to log off, which revokes it.
// Config.TLS makes
// the gateway link TLS and configures the private HTTP client for an
// https:// route.
//
// Groups (docs/ARCHITECTURE.md, "Groups"): CreateGroup, Groups, Group,
// GroupMembers, JoinGroup, InviteToGroup, LeaveGroup, KickFromGroup,
// RenameGroup, TransferGroup and DissolveGroup call the route with the access token;
// SendGroup sends a group message through the same keep-and-resend path as
// Send, SendGroupMentions one that mentions members (Msg.Mentions: the
// route delivers the mentioned members' ids; MentionsMe tells whether this
// user is among them). Group messages arrive with Msg.Group set; receipts for our group
// messages carry Receipt.Group and Receipt.Count (members so far), and
// SentMessage counts them. Because a group send interrupted mid-way is
// fanned out again under new seqs, the client remembers the msgIds of the
// last 4096 messages it showed and drops a repeat (its seq is still
// acknowledged). MarkRead of a group message sends READ{group, peer}.
//
// Mutes (docs/ARCHITECTURE.md, "Mutes"): MuteUser and MuteGroup mute a
// conversation for a while or until UnmuteUser or UnmuteGroup; Mutes
// lists what is muted. Messages come as ever: an app asks Muted whether to
// notify for one (not for a muted conversation, unless it mentions the
// user). The Client keeps the list it read last, from Mutes and its own
// calls; the route pushes no change, so what the user's other devices
// change arrives with the next Mutes call.
//
// Several devices: with the route's --login-policy platform a user is
// logged in once per platform (Config.Platform) and every device gets
// every message of the user, including copies of what the user sent from
// its other devices (EventMessage with Event.Outgoing) and the READs it
// made there (EventReadElsewhere). The copy of what this Client sent
// itself is recognised by its client_msg_id, acknowledged and not shown.
//
// Typical use:
//
//	c, err := client.New(client.Config{RouteURL: "http://127.0.0.1:8080", UserName: "alice", Password: "secret1"})
//	if err != nil { ... }
//	if err := c.Start(ctx); err != nil { ... } // permanent failures: bad account, refused token
//	go func() {
//		for ev := range c.Events() { ... }
//	}()
//	id, err := c.Send(ctx, "bob", "hello")
//	... // EventReceipt for id: RECEIPT_SENT, later DELIVERED and READ
//	c.Close(ctx)
//
// Concurrency: every method of API and Client is safe for concurrent use.
// Sends from many goroutines are written in the order they are accepted.
// The Events channel must be drained: while it is full the client stops
// reading from the gateway (backpressure; heartbeats are not failed by it),
// and a gateway may drop a client that stays too far behind. Close ends every
// goroutine the client started and then closes the Events channel.
//
// The package depends only on the standard library and protobuf, so that
// small devices can embed it.
package client
