// app.js: the gocim web chat page, on top of ./gocim.js.
//
// Hooks for browser tests (stable ids and data attributes):
//
//   #login-user, #login-password      the sign-in form's fields
//   #login-keep                       "Keep me signed in on this browser" (unchecked by default)
//   #login-button, #register-button   log in; register (then log in)
//   #login-error                      why signing in failed
//   #conn-state                       text and data-state: "online" | "reconnecting" | "offline"
//   #conn-banner                      shown while the connection is down or catching up
//   #me                               the logged-in user's name; data-user-id
//   #logout-button                    log out
//   #account-button                   opens (and closes) the account panel, #account-panel (aria-expanded)
//   #account-panel                    change the password: #current-password, #new-password,
//                                     #change-password-button; log out the user's other devices:
//                                     #others-password, #logout-others-button; #account-status tells
//                                     the outcome ("Password changed; 2 other sessions ended.", or why
//                                     not) with data-kind="pending|ok|error"; #account-close (or
//                                     Escape) closes it. The password fields are cleared after each try.
//   #blocked-list                     in the account panel: the users one blocked (refreshed when the
//                                     panel opens), items [data-user="<id>"] with .blocked-name and an
//                                     .unblock button; #no-blocked says when there are none; the
//                                     outcome of an Unblock shows in #account-status
//   #muted-list                       in the account panel: the muted conversations (read again when
//                                     the panel opens), items [data-mute="user:<id>"|"group:<gid>"]
//                                     with .muted-name, .muted-until ("until 15:30", "until you
//                                     unmute") and an .unmute button; #no-muted says when there are
//                                     none; the outcome of an Unmute shows in #account-status
//   #notify-button                    in the account panel, desktop notifications (see
//                                     "Notifications"), with data-state: "default" (it reads
//                                     "Enable notifications" and asks the browser), "granted"
//                                     ("Notifications on", disabled), "off" ("Notifications off",
//                                     disabled: granted but turned off here), "denied"
//                                     ("Notifications blocked by the browser", disabled) or
//                                     "unsupported" (hidden: no Notification in this browser);
//                                     #notify-hint says what to do; #notify-on ("Show
//                                     notifications on this browser", in #notify-toggle, shown
//                                     only once granted) turns them off and on again
//   #delete-account-form              in the account panel, "Delete my account": #delete-password,
//                                     #delete-confirm (the checkbox "I understand my account and
//                                     messages are deleted for good") and #delete-account,
//                                     disabled until the box is checked and a password typed; a
//                                     refusal shows in #account-status (data-kind="error"); done, the
//                                     login form comes back with "Your account was deleted." in
//                                     #login-error and nothing kept
//   #conversations                    the conversation list; items [data-conv="user:<id>"],
//                                     [data-conv="group:<gid>"], [data-conv="broadcast"];
//                                     each with .unread (the count, hidden when 0) and
//                                     aria-current="page" on the open one; a user's item has
//                                     data-presence="online|offline" once known (its .presence-dot
//                                     filled when online); a group's has .mention-badge ("@") while
//                                     one of its unread messages mentions the user (gone with them);
//                                     a muted conversation's has class .muted (its .unread greyed)
//                                     and a .muted-icon ("🔕")
//   #online-users                     online users, items [data-user="<id>"] (click: open the chat)
//   #new-chat-user, #new-chat         start a chat by user name or id
//   #group-name, #group-open, #new-group   create a group (open by default)
//   #group-id, #join-group            join a group by id
//   #conv-title                       the open conversation's name; data-conv
//   #conv-presence                    a user conversation's peer: "online" | "offline" and
//                                     data-presence (hidden while not known, and in groups); offline
//                                     with a known last seen it reads "last seen just now" (under a
//                                     minute), "last seen 5 min ago", "last seen today at 14:02",
//                                     "last seen yesterday at 14:02" or "last seen 3 Dec at 14:02"
//                                     (data-presence still "offline") and has data-last-seen (unix
//                                     ms); redrawn every 30 s as time passes
//   #block-button                     in a conversation with a user (not the system): "Block", or
//                                     "Unblock" when that user is blocked (aria-pressed and
//                                     data-blocked="true|false"); blocking shows #block-notice ("You
//                                     blocked bob. You will not get their messages.") and disables the
//                                     composer (placeholder "Unblock bob to write"); unblocking undoes it
//   #mute-tools                       in a conversation with a user (not the system, not oneself) or
//                                     a group: #mute-for (how long: 3600, 28800, 604800 seconds, or
//                                     0 "Until I unmute", the default; hidden while muted),
//                                     #mute-until ("🔕 until 15:30", or "🔕" for no end; shown while
//                                     muted) and #mute-button: "Mute", or "Unmute" when muted
//                                     (aria-pressed and data-muted="true|false"; disabled while the
//                                     route answers)
//   #group-tools                      in a group: #members-button, #members (items [data-user],
//                                     with data-presence once known; the owner's has
//                                     data-owner="true" and an .owner-mark "owner"; while the user
//                                     owns the group every other member's has a .make-owner button,
//                                     "Make owner" (aria-label "Make bob the owner"), which hands
//                                     the group to them: done, the toast "bob owns crew now." and
//                                     the list drawn again (the mark on bob, no .make-owner left);
//                                     refused, "Cannot hand over the group: <why>"), #invite-user,
//                                     #invite-button, #leave-group
//   #messages                         the open conversation's messages, oldest first; items
//                                     [data-msg-id] (the route's id; "" until known) with
//                                     data-client-msg-id and data-status="pending|sent|delivered|read|failed"
//                                     on one's own (class .mine), a failed one with .send-error (why:
//                                     the route's text), .file-download buttons on files,
//                                     .join-invite[data-gid] buttons on group invitations;
//                                     data-op="edited|recalled" on a message its sender changed
//                                     (edited: the new text in .body and an .edited-mark "edited"
//                                     in its .meta; recalled: .body.recalled reads "message
//                                     recalled"); data-op-pending="edit|recall" while one's own
//                                     change waits for the route (.op-pending in .meta)
//   .actions (in a message)           shown on hover or focus within the message (always on touch
//                                     screens): .reply-button on any message with a msgId but a
//                                     recalled one (not in the broadcast conversation; opens
//                                     #reply-bar); .react-button on the same messages (not the
//                                     system's either; opens the message's .react-palette,
//                                     aria-expanded); .edit-button and .recall-button on one's own
//                                     messages once they have a msgId, for 15 minutes (edit: text
//                                     only); .delete-button on any message with a msgId (removes
//                                     it from the view and from one's history)
//   .react-palette (in a message)     under .body while open: a .react-choice button per emoji
//                                     (data-emoji: 👍 ❤️ 😂 😮 😢 🙏; aria-pressed on one's own
//                                     reaction); a choice reacts with it (choosing one's own takes it
//                                     back) and closes it, as do Escape and a click elsewhere
//   .reactions (in a message)         under .body: a .reaction button per emoji reacted with,
//                                     data-emoji, text "<emoji> <count>" (e.g. "👍 2"), class .mine
//                                     (and aria-pressed="true") on one's own; clicking one's own
//                                     takes it back, another reacts with that emoji. None on a
//                                     recalled message, nor in the broadcast conversation
//   .edit-form (in a message)         inline editor in place of .body: .edit-input (Enter saves,
//                                     Shift+Enter new line, Escape cancels), .edit-save, .edit-cancel
//   .mention-me (a message's class)   the message mentions the user (its mentions name the user's
//                                     id); in .body, each "@name" word whose name (case-insensitive,
//                                     trailing , . ! ? : ; left out) is one of the users it mentions
//                                     is a span.mention (the punctuation after it stays text)
//   .reply-quote (in a message)       a reply (the message has data-reply-to, the msgId it answers)
//                                     shows it between .meta and .body (not once recalled): the
//                                     quoted message's sender (.reply-quote-name, "you" for one's
//                                     own) and a snippet of its text (.reply-quote-text, at most 60
//                                     characters, "…" when cut), data-known="true"; or, while the
//                                     page does not have that message, .reply-quote-text "a message"
//                                     and data-known="false"; data-reply-to on it too
//   #reply-bar                        above the composer while replying (data-reply-to: the msgId
//                                     answered): "Replying to" #reply-name, #reply-snippet (as a
//                                     quote's) and #reply-cancel (or Escape in the composer); the
//                                     next message sent in the conversation (text, or the first of
//                                     the files) answers it and hides the bar, as does opening
//                                     another conversation
//   #load-older                       load older messages (also on scrolling to the top)
//   #typing                           "<name> is typing…" under the open conversation; data-users
//                                     (the typers' ids, comma separated); hidden when nobody
//   #composer, #send-button           the message box (Enter sends, Shift+Enter new line)
//   #attach-button, #file-input       send files
//   #toast                            short notices and errors
//   #back-button                      back to the conversation list (narrow screens)
//
// Messages of the open conversation count as read (READ receipts, the
// badge cleared) only while the page is visible; in a hidden tab they stay
// unread. Conversations are keyed by user id; one started by a name the
// page cannot resolve yet is "user:<name>" until the first message or the
// history tells the id. The document title carries the unread total.
//
// Several devices (route --login-policy platform): what the user sends
// from another device shows as its own message (class .mine) in the
// conversation with the recipient or in the group; what it reads there
// is no longer unread here.
//
// Recall, edit, delete: a change of a message (a MSG with op 'recall' or
// 'edit' and refMsgId) is never shown as a message; it is applied to the
// message refMsgId when that one's sender sent it too, and remembered (the
// latest per message) for a message shown later. A recall is final. One's
// own changes show as pending until the route answers, then apply. History
// tells the state of each message (op 'edited' | 'recalled').
//
// Replies: a message may answer an earlier one of its conversation (the
// SDK's replyTo, a msgId). The page quotes the message answered when it
// has it in that conversation (shown live, sent from here, or loaded from
// history); otherwise the quote reads "a message" until that one shows up
// (e.g. an older history page), and follows its edits and recall. Quotes
// are text only: the page never parses a message as HTML.
//
// Reactions: one emoji per user and message (anybody's message of the
// conversation, one's own too), a later one replacing the earlier, ''
// taking it back. They are never messages: nothing unread, no preview, no
// READ. The page starts from history's reactions of each message (counts
// per emoji, and which is one's own) and applies 'reaction' events and
// one's own sends (shown at once, taken back if the route refuses) on top:
// see "reactions" below for how exact that is.
//
// Mentions: in a group, a message sent from the composer mentions (by
// user id) the members its "@name" words name: the name, case-insensitive,
// as typed or without trailing , . ! ? : ; (so "@bob," and "@Bob?" are
// bob), looked up in the group's members, which the page loads when the
// group is opened (and waits for when they are not in yet). The text goes
// unchanged. When the list is partial (a large group: a full page), a name
// not in it goes as the name itself, for the route to resolve; otherwise
// only members are named. A message that mentions the user is marked, and
// its group shows "@" in the list while such a message is unread.
//
// Group owners: the route tells nobody when a group changes hands, so the
// page reads the group (GET /groups/:gid, its owner) each time the members
// list opens, and draws the list again after the user's own hand-over.
// Only the owner is offered "Make owner"; the route checks it anyway.
//
// Presence: the page subscribes (debounced) to the users of the
// conversation list and the members of the open group, again whenever that
// list changes; the SDK resubscribes after reconnects. An offline peer's
// last seen (the SDK's lastSeen: from the snapshot, or the offline change
// seen live) is worded relative to this browser's clock, and worded again
// on the page's 30 s tick, so "just now" turns into "3 min ago" while the
// conversation stays open. Typing: the page
// sends an indicator when the user types in the composer (at most every
// 3 s while the draft stands, "stopped" when it is cleared or sent) and
// shows others' for 5 s, until they stop or their message arrives.
//
// Staying signed in: with #login-keep checked, the page keeps the SDK's
// latest resume token ('resume' events) in localStorage under KEEP_KEY,
// {userName, token, expiresAt}, and the next page load signs in with it
// instead of showing the form. The token is a credential at rest, so it
// is kept only when the user asks; it goes when the SDK says it is dead
// (refused, or Log out, which logs the session off and so revokes it). A
// reload logs nothing off: the page calls no close() on unload.
//
// Account: changing the password and "Log out other devices" end the
// user's other sessions and revoke every resume token (kept ones of other
// browsers too); this session stays online and the SDK hands out its new
// token as a 'resume' event, which the listener above keeps when asked
// to. After a password change the SDK's reconnects use the new password.
// "Delete my account" (the password, and a box to tick: no dialog) deletes
// the account at the route; every session of it is kicked, this page's
// too. The SDK ends the client without a log-off and says there is no
// token to keep (a 'resume' with token ''); the page forgets the kept
// login and the last user name and shows the login form with a notice.
// The route kicks the sessions before it answers, so the gateway's KICK
// ("account deleted") usually comes first: on that 'kicked' event the
// page leaves the chat with the notice at once, and the answer finds it
// done.
//
// Blocking: the page loads whom the user blocked (GET /blocks) after each
// login and reconnect, and when the account panel opens. The route never
// delivers a blocked user's private messages (their sender sees them
// sent) and refuses the user's to them (ERROR 4030: its text shows on the
// message, and the page loads the list again, as the block may come from
// another device); the page shows the conversation as blocked and keeps
// its composer off.
//
// Mutes: the SDK reads the muted conversations after the login and tells
// the list as 'mutes' events (also for the page's own changes, and when a
// mute ends); the page reads it again after a reconnect and when the
// account panel opens (other devices' changes: the route pushes none).
// Messages of a muted conversation come, show and count unread as ever,
// the count greyed; what the page does to get attention, the unread total
// in the document title, leaves them out unless they mention the user
// (the SDK's muted()).
//
// Notifications: once the user allowed them (#notify-button asks the
// browser, which remembers the answer; #notify-on turns them off for this
// browser: NOTIFY_KEY in localStorage is 'off'), a new message shows as a
// desktop notification when the user cannot see it come: its conversation
// is not the open one, or the page is hidden (as for READ: see markConvRead).
// Never for the user's own messages (sent here or on another device), for
// a change of a message, a reaction or history, nor for what the login's
// catch-up brings (what came while the page was closed: the list shows it
// unread); the catch-ups of later reconnects notify. A muted conversation's
// messages notify only when they mention the user (the SDK's muted()). The
// title is the sender ("bob", "bob in crew"), the body the text (a file:
// "📎 <name>") cut to NOTE_BODY characters; the tag is the conversation key,
// so that a burst of one conversation replaces its notification. Clicking
// one focuses the window and opens its conversation; reading the
// conversation (here or on another device) closes it. Without Notification
// (some browsers) the page does without; where the browser refuses them
// (the user blocked them, or an http page) the account panel says so.

import { Api, ApiError, Client, ClientError, Codes, GatewayError, MAX_MENTIONS, lastSeenText, utf8Encode } from './gocim.js';

const $ = (id) => document.getElementById(id);
const el = {
  connState: $('conn-state'),
  banner: $('conn-banner'),
  me: $('me'),
  logout: $('logout-button'),
  accountButton: $('account-button'),
  accountPanel: $('account-panel'),
  accountClose: $('account-close'),
  changePasswordForm: $('change-password-form'),
  currentPassword: $('current-password'),
  newPassword: $('new-password'),
  changePassword: $('change-password-button'),
  logoutOthersForm: $('logout-others-form'),
  othersPassword: $('others-password'),
  logoutOthers: $('logout-others-button'),
  accountStatus: $('account-status'),
  deleteForm: $('delete-account-form'),
  deletePassword: $('delete-password'),
  deleteConfirm: $('delete-confirm'),
  deleteAccount: $('delete-account'),
  blockedList: $('blocked-list'),
  noBlocked: $('no-blocked'),
  loginView: $('login-view'),
  loginForm: $('login-form'),
  loginUser: $('login-user'),
  loginPassword: $('login-password'),
  loginKeep: $('login-keep'),
  loginButton: $('login-button'),
  registerButton: $('register-button'),
  loginError: $('login-error'),
  chatView: $('chat-view'),
  convList: $('conversations'),
  noConvs: $('no-conversations'),
  newChatForm: $('new-chat-form'),
  newChatUser: $('new-chat-user'),
  newGroupForm: $('new-group-form'),
  groupName: $('group-name'),
  groupOpen: $('group-open'),
  joinGroupForm: $('join-group-form'),
  groupId: $('group-id'),
  online: $('online-users'),
  refreshOnline: $('refresh-online'),
  back: $('back-button'),
  convTitle: $('conv-title'),
  convPresence: $('conv-presence'),
  groupTools: $('group-tools'),
  membersButton: $('members-button'),
  members: $('members'),
  inviteForm: $('invite-form'),
  inviteUser: $('invite-user'),
  leaveGroup: $('leave-group'),
  blockButton: $('block-button'),
  blockNotice: $('block-notice'),
  muteTools: $('mute-tools'),
  muteFor: $('mute-for'),
  muteUntil: $('mute-until'),
  muteButton: $('mute-button'),
  mutedList: $('muted-list'),
  noMuted: $('no-muted'),
  notifyButton: $('notify-button'),
  notifyHint: $('notify-hint'),
  notifyToggle: $('notify-toggle'),
  notifyOn: $('notify-on'),
  scroll: $('message-scroll'),
  loadOlder: $('load-older'),
  messages: $('messages'),
  typing: $('typing'),
  replyBar: $('reply-bar'),
  replyName: $('reply-name'),
  replySnippet: $('reply-snippet'),
  replyCancel: $('reply-cancel'),
  composerForm: $('composer-form'),
  composer: $('composer'),
  send: $('send-button'),
  attach: $('attach-button'),
  fileInput: $('file-input'),
  toast: $('toast'),
};

const MAX_TEXT = 4096; // the gateways' --max-text, in bytes
const HISTORY_PAGE = 30;
const LAST_USER_KEY = 'gocim.lastUser';
const KEEP_KEY = 'gocim.keep'; // {userName, token, expiresAt}: see "Staying signed in"
const SUBSCRIBE_DEBOUNCE_MS = 300;
const MAX_WATCHED = 400; // the route watches at most 500 users per connection
const TYPING_EVERY_MS = 3000; // at most one typing indicator per this
const TYPING_SHOWN_MS = 5000; // how long another's indicator is shown
const EDIT_WINDOW_MS = 15 * 60_000; // the route's --edit-window (its default)
const EDIT_WINDOW_CHECK_MS = 30_000; // how often expired Edit/Recall buttons go and the last seen is worded again
const MAX_CHANGES = 2000; // changes remembered for messages not shown yet
const REPLY_SNIPPET = 60; // characters of a message quoted by a reply
const REACTION_CHOICES = ['👍', '\u2764\uFE0F', '😂', '😮', '😢', '🙏']; // the palette; the heart is ❤️ (U+2764 U+FE0F)
const MAX_REACTED = 5000; // messages whose reactions are remembered (those shown are kept)
const MEMBERS_PAGE = 1000; // members loaded per group (GET /groups/:gid/members' largest page)
const NOTIFY_KEY = 'gocim.notify'; // 'off': notifications turned off on this browser (see "Notifications")
const NOTE_BODY = 120; // characters of a message in its notification

// ------------------------------------------------------------------ state

let client = null;
let me = { userId: '', userName: '' };
const convs = new Map(); // key → Conv
const entries = new Map(); // "m:<msgId>" / "c:<clientMsgId>" → Entry
const names = new Map(); // user id → name
const ownFiles = new Map(); // clientMsgId → Blob of a file this page sent
let current = null; // the open Conv
let onlineTimer = null;
let seeded = false;
let wasDown = false;
// presence: the watch list last asked for (its key) and the debounce timer
let watchKey = '';
let watchTimer = null;
// typing, ours: the conversation the standing indicator went to (null:
// none), when the last one went, and a timer for one held back.
let typingTo = null;
let typingAt = 0;
let typingTimer = null;
// typing, others': conversation key → Map(user id → {name, timer})
const typers = new Map();
// changes: "<from>|<msgId>" → the latest change of that message seen,
// {op: 'recall' | 'edit', text, id (the change's msgId)}; oldest first
const changes = new Map();
// msgIds the user deleted (not shown again, whatever brings them)
const deleted = new Set();
let windowTimer = null;
// blocking: whom the user blocked, user id → name; a block or unblock
// under way; the count of the page's own changes (a list asked for before
// one of them is stale)
const blocked = new Map();
let blockBusy = false;
let blockChanges = 0;
// mutes: the muted conversations as the SDK last told them, conversation
// key ("user:<id>" | "group:<gid>") → its Mute; a mute or unmute under way
const mutes = new Map();
let muteBusy = false;
// group owners: a hand-over of a group under way (its buttons disabled)
let ownerBusy = false;
// replies: the Entry the next message of the open conversation answers
// (null: none), shown in #reply-bar
let replying = null;
// notifications: conversation key → the Notification shown for it; the
// login's catch-up is over (new messages notify); the browser is asked
const notes = new Map();
let notifyLive = false;
let notifyAsking = false;
// reactions: msgId → what the page knows of the reactions to that message
// (see "reactions" below), also for messages not shown (yet); and the
// Entry whose .react-palette is open (null: none)
const reactions = new Map();
let palette = null;

class Conv {
  constructor(key, name) {
    this.key = key;
    const [kind, id] = key.includes(':') ? key.split(/:(.*)/s) : [key, ''];
    this.kind = kind; // user | group | broadcast
    this.id = id;
    this.name = name || defaultName(kind, id);
    this.entries = []; // oldest first
    this.unread = [];
    this.next = ''; // history cursor
    this.history = 'none'; // none | loading | done | more
    this.lastTs = 0;
    this.preview = '';
    // a group's members, for mentions: {byName: Map(lower-case name → user
    // id), complete: whether that is all of them}; null until loaded
    this.members = null;
    this.membersLoad = null; // the load under way (a Promise), or null
    this.nameLoad = null; // a group's name asked for (a Promise that never rejects), or null
    // a group's #members as last loaded: the users (route order), and the
    // owner's user id ('' when not known)
    this.memberList = [];
    this.owner = '';
  }
}

function defaultName(kind, id) {
  if (kind === 'group') return `group ${id}`;
  if (kind === 'broadcast') return 'Everyone online';
  if (id === '0') return 'system';
  return names.get(id) || id;
}

const statusRank = { pending: 1, failed: 2, sent: 3, delivered: 4, read: 5 };

// ------------------------------------------------------------------ helpers

function show(node, on) {
  node.hidden = !on;
}

let toastTimer = null;
function toast(text) {
  el.toast.textContent = text;
  show(el.toast, true);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(el.toast, false), 6000);
}

function describeError(err) {
  if (err instanceof ApiError) {
    switch (err.code) {
      case Codes.BadAccount:
        return err.httpStatus === 409 ? 'That name is taken.' : 'Wrong user name or password, or no such user.';
      case Codes.BadArgument:
        return err.detail || 'The server refused the request.';
      case Codes.RateLimited:
        return `Too many attempts; try again${err.retryAfter ? ` in ${err.retryAfter} s` : ' later'}.`;
      case Codes.RepeatLogin:
        return 'This account is logged in elsewhere.';
      case Codes.NoServer:
        return 'No chat server is available right now.';
      case Codes.Forbidden:
        return err.detail || 'Not allowed.';
      case Codes.NoGroup:
        return 'No such group.';
      case Codes.GroupFull:
        return 'The group is full.';
      case Codes.TooLarge:
        return 'Too large.';
      case Codes.QuotaExceeded:
        return 'Upload quota used up for now.';
      case Codes.StorageFull:
        return 'The server has no room for more files.';
      case 0:
        return 'Cannot reach the server.';
    }
    return err.detail || err.message;
  }
  if (err instanceof GatewayError) return err.text || err.message;
  return err?.message || String(err);
}

function timeText(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function sizeText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function nameOf(userId, fallback) {
  return names.get(userId) || fallback || userId;
}

function learnName(userId, name) {
  if (!userId || !name || userId === '0') return;
  if (names.get(userId) === name) return;
  names.set(userId, name);
  refreshMentionsOf(userId);
  const c = convs.get(`user:${userId}`);
  if (c) {
    c.name = name;
    renderConvList();
    if (c === current) el.convTitle.textContent = name;
  }
  mergeAlias(name, userId);
}

// ------------------------------------------------------------------ connection state

function setConnState(state) {
  // The SDK's states, shown as three: online, reconnecting, offline.
  const shown = state === 'online' ? 'online' : state === 'connecting' || state === 'reconnecting' ? 'reconnecting' : 'offline';
  el.connState.textContent = shown;
  el.connState.dataset.state = shown;
  document.body.dataset.conn = shown;
  updateBanner();
}

function updateBanner(extra) {
  if (!client) {
    show(el.banner, false);
    return;
  }
  const s = client.state;
  const pending = client.pending;
  const waiting = pending ? ` ${pending} message${pending === 1 ? '' : 's'} will be sent when it is back.` : ' Messages you send are kept until it is back.';
  let text = '';
  let kind = '';
  if (s === 'connecting' && !seeded) {
    // The first login, not a lost connection.
    text = 'Signing in…';
    kind = 'up';
  } else if (s === 'reconnecting' || s === 'connecting') {
    text = `Connection lost — reconnecting…${waiting}`;
    kind = 'down';
  } else if (s === 'stopped') {
    text = extra || 'Disconnected. Log in again to continue.';
    kind = 'down';
  } else if (s === 'online' && wasDown && !client.caughtUp) {
    text = 'Back online — catching up…';
    kind = 'up';
  }
  el.banner.textContent = text;
  el.banner.dataset.kind = kind;
  show(el.banner, !!text);
}

// ------------------------------------------------------------------ login

function setBusy(busy) {
  el.loginButton.disabled = busy;
  el.registerButton.disabled = busy;
  el.loginForm.setAttribute('aria-busy', busy ? 'true' : 'false');
}

async function signIn(register) {
  const user = el.loginUser.value.trim();
  const password = el.loginPassword.value;
  el.loginError.textContent = '';
  if (!user || !password) {
    el.loginError.textContent = 'Enter a user name and a password.';
    (user ? el.loginPassword : el.loginUser).focus();
    return;
  }
  setBusy(true);
  const keep = el.loginKeep.checked;
  // Not asked to stay signed in: an entry of an earlier page goes (the
  // password login revokes its token anyway).
  if (!keep) forgetKept();
  try {
    if (register) {
      await new Api('').register(user, password);
    }
    await startClient(new Client({ userName: user, password, platform: 'web' }), keep);
    try {
      localStorage.setItem(LAST_USER_KEY, user);
    } catch {
      // storage off: nothing to remember
    }
    el.loginPassword.value = '';
    enterChat();
  } catch (err) {
    dropClient();
    el.loginError.textContent = describeError(err);
    el.loginPassword.focus();
  } finally {
    setBusy(false);
  }
}

// startClient makes c the page's client and logs it in; keep: keep its
// resume tokens for the next page load.
async function startClient(c, keep) {
  wire(c, keep);
  client = c;
  notifyLive = false;
  setConnState('connecting');
  await c.start();
}

// dropClient ends the client whose start failed: with close(), or, when
// keep is set, with disconnect(), which leaves its resume token usable.
function dropClient(keep = false) {
  if (client) {
    const c = client;
    client = null;
    (keep ? c.disconnect() : c.close()).catch(() => {});
  }
  setConnState('offline');
}

// resumeKept signs in with the kept token instead of showing the form.
// When that fails the form comes back with the user name filled in; the
// token goes only when the route refused it (used, revoked or expired),
// not when the cluster could not be reached: a later reload tries again.
async function resumeKept(kept) {
  show(el.loginView, false);
  try {
    await startClient(new Client({ userName: kept.userName, resumeToken: kept.token, platform: 'web' }), true);
    enterChat();
  } catch (err) {
    const refused = err instanceof ApiError && (err.code === Codes.Unauthorized || err.code === Codes.BadArgument);
    dropClient(!refused);
    if (refused) forgetKept(kept.token);
    show(el.loginView, true);
    el.loginUser.value = kept.userName;
    el.loginError.textContent = refused ? 'Signed out: please log in again.' : describeError(err);
    el.loginPassword.focus();
  }
}

// ------------------------------------------------------------------ staying signed in

// readKept returns the kept {userName, token, expiresAt}, or null when
// there is none (or it expired, or it is unreadable: then it goes).
function readKept() {
  let k = null;
  try {
    const raw = localStorage.getItem(KEEP_KEY);
    if (raw === null) return null;
    k = JSON.parse(raw);
  } catch {
    k = null;
  }
  const ok = k && typeof k.userName === 'string' && k.userName && typeof k.token === 'string' && k.token;
  const expired = ok && Number(k.expiresAt) > 0 && Number(k.expiresAt) * 1000 <= Date.now();
  if (!ok || expired) {
    forgetKept();
    return null;
  }
  return { userName: k.userName, token: k.token, expiresAt: Number(k.expiresAt) || 0 };
}

function keepToken(userName, token, expiresAt) {
  try {
    localStorage.setItem(KEEP_KEY, JSON.stringify({ userName, token, expiresAt }));
  } catch {
    // storage off or full: the next load shows the form
  }
}

// forgetKept removes the kept token; given one, only while it is still
// that one (another tab may have kept a newer one since).
function forgetKept(token) {
  try {
    if (token && JSON.parse(localStorage.getItem(KEEP_KEY) || 'null')?.token !== token) return;
    localStorage.removeItem(KEEP_KEY);
  } catch {
    // storage off: nothing kept
  }
}

function wire(c, keep) {
  // Not tied to c being the page's client: the "" that close() emits comes
  // after leaveChat let go of it, and must still remove the entry.
  let held = c.opts.resumeToken || '';
  c.on('resume', ({ token, expiresAt }) => {
    if (token && keep) keepToken(c.opts.userName, token, expiresAt);
    else if (!token) forgetKept(held);
    held = token;
  });
  c.on('state', ({ state }) => {
    if (c !== client) return;
    if (state === 'reconnecting') wasDown = true;
    setConnState(state);
  });
  c.on('connected', () => {
    if (c !== client) return;
    me = { userId: c.info.userId, userName: c.info.userName };
    el.me.textContent = me.userName;
    el.me.dataset.userId = me.userId;
    if (seeded) {
      refreshOnline();
      refreshGroups();
      refreshBlocks();
      refreshMutes();
    }
  });
  c.on('synced', () => {
    if (c !== client) return;
    wasDown = false;
    notifyLive = true;
    updateBanner();
  });
  c.on('message', (m) => c === client && onMessage(m));
  c.on('reaction', (r) => c === client && onReaction(r));
  c.on('mutes', ({ mutes: list }) => c === client && onMutes(list));
  c.on('presence', (p) => c === client && onPresence(p));
  c.on('typing', (t) => c === client && onTyping(t));
  c.on('status', (r) => c === client && onStatus(r));
  c.on('receipt', (r) => c === client && onReceipt(r));
  c.on('readelsewhere', (r) => c === client && onReadElsewhere(r));
  c.on('error', (e) => {
    if (c !== client || !e.clientMsgId) return;
    const r = c.status(e.clientMsgId);
    const op = r?.op;
    toast(op === 'react' ? `Cannot react to the message: ${describeError(e)}` : op ? `Cannot ${op} the message: ${describeError(e)}` : `Not sent: ${describeError(e)}`);
    // Refused as blocked: maybe blocked on another device.
    if (e.code === Codes.Forbidden && r && !r.group && !r.broadcast) refreshBlocks();
  });
  c.on('kicked', ({ reason }) => {
    if (c !== client) return;
    if (c === deleting && reason === 'account deleted') {
      accountDeleted(c, { userName: c.info.userName });
      return;
    }
    updateBanner(`Disconnected: ${reason}. Log in again to continue.`);
    leaveChat(`You were logged out: ${reason}`);
  });
}

function enterChat() {
  me = { userId: client.info.userId, userName: client.info.userName };
  el.me.textContent = me.userName;
  el.me.dataset.userId = me.userId;
  learnName(me.userId, me.userName);
  show(el.loginView, false);
  show(el.chatView, true);
  show(el.logout, true);
  show(el.accountButton, true);
  seeded = true;
  renderConvList();
  renderMutes();
  seedConversations();
  refreshOnline();
  refreshGroups();
  refreshBlocks();
  clearInterval(onlineTimer);
  onlineTimer = setInterval(() => client?.state === 'online' && refreshOnline(), 30_000);
  clearInterval(windowTimer);
  windowTimer = setInterval(onTick, EDIT_WINDOW_CHECK_MS);
  if (current) openConv(current.key);
  else el.newChatUser.focus();
}

function leaveChat(message) {
  clearInterval(onlineTimer);
  clearInterval(windowTimer);
  windowTimer = null;
  stopTyping();
  const c = client;
  client = null;
  clearTimeout(watchTimer);
  watchTimer = null;
  watchKey = '';
  typingAt = 0;
  for (const m of typers.values()) for (const t of m.values()) clearTimeout(t.timer);
  typers.clear();
  if (c) c.close().catch(() => {});
  convs.clear();
  entries.clear();
  names.clear();
  ownFiles.clear();
  changes.clear();
  reactions.clear();
  palette = null;
  deleted.clear();
  blocked.clear();
  blockBusy = false;
  mutes.clear();
  muteBusy = false;
  ownerBusy = false;
  replying = null;
  renderReplyBar();
  closeNotes();
  notifyLive = false;
  current = null;
  seeded = false;
  wasDown = false;
  el.convList.replaceChildren();
  document.title = 'gocim chat';
  el.messages.replaceChildren();
  el.online.replaceChildren();
  renderConvPresence();
  renderTyping();
  renderBlocks();
  renderMutes();
  el.me.textContent = '';
  delete el.me.dataset.userId;
  show(el.chatView, false);
  show(el.logout, false);
  closeAccount(false);
  show(el.accountButton, false);
  setAccountStatus('', '');
  show(el.loginView, true);
  document.body.classList.remove('conv-open');
  setConnState('offline');
  el.loginError.textContent = message || '';
  el.loginUser.focus();
}

// ------------------------------------------------------------------ conversations

function convKeyOfMessage(m) {
  if (m.group) return `group:${m.group}`;
  if (m.broadcast) return 'broadcast';
  if (m.outgoing || m.from === me.userId) return `user:${m.to}`;
  return `user:${m.from}`;
}

function convKeyOfRecord(r) {
  if (r.group) return `group:${r.group}`;
  if (r.broadcast) return 'broadcast';
  return `user:${r.to}`;
}

function conv(key, name) {
  let c = convs.get(key);
  if (!c) {
    c = new Conv(key, name);
    convs.set(key, c);
    if (c.kind === 'group' && !name) c.nameLoad = fetchGroupName(c);
    renderConvList();
  } else if (name && c.name !== name && c.kind !== 'user') {
    c.name = name;
    renderConvList();
  }
  return c;
}

// mergeAlias moves a conversation opened by a user name onto the user's
// id once the id is known (replies come from the id).
function mergeAlias(name, userId) {
  for (const [key, c] of convs) {
    if (c.kind !== 'user' || /^[0-9]+$/.test(c.id) || c.id.toLowerCase() !== name.toLowerCase()) continue;
    convs.delete(key);
    const target = convs.get(`user:${userId}`);
    if (target) {
      for (const e of c.entries) {
        e.conv = target;
        insertEntry(target, e);
      }
      target.unread.push(...c.unread);
      target.lastTs = Math.max(target.lastTs, c.lastTs);
      if (current === c) openConv(target.key);
    } else {
      c.key = `user:${userId}`;
      c.id = userId;
      c.name = name;
      convs.set(c.key, c);
      if (current === c) el.convTitle.dataset.conv = c.key;
    }
    renderConvList();
  }
}

function renderConvList() {
  const list = [...convs.values()].sort((a, b) => b.lastTs - a.lastTs || a.name.localeCompare(b.name));
  const items = list.map((c) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'conv';
    b.dataset.conv = c.key;
    if (c === current) b.setAttribute('aria-current', 'page');
    const icon = document.createElement('span');
    icon.className = 'conv-icon';
    icon.setAttribute('aria-hidden', 'true');
    icon.textContent = c.kind === 'group' ? '#' : c.kind === 'broadcast' ? '*' : '@';
    const name = document.createElement('span');
    name.className = 'conv-name';
    let state = null;
    if (c.kind === 'user') {
      const dot = document.createElement('span');
      dot.className = 'presence-dot';
      dot.setAttribute('aria-hidden', 'true');
      name.append(dot);
      state = applyPresence(b, c.id);
    }
    name.append(c.name);
    const preview = document.createElement('span');
    preview.className = 'conv-preview';
    preview.textContent = c.preview;
    const badge = document.createElement('span');
    badge.className = 'unread';
    badge.textContent = String(c.unread.length);
    badge.setAttribute('aria-label', `${c.unread.length} unread`);
    badge.hidden = c.unread.length === 0;
    const badges = document.createElement('span');
    badges.className = 'conv-badges';
    const muted = !!muteOf(c);
    if (muted) {
      b.classList.add('muted');
      const bell = document.createElement('span');
      bell.className = 'muted-icon';
      bell.textContent = '🔕';
      bell.title = 'Muted';
      bell.setAttribute('aria-hidden', 'true');
      badges.append(bell);
    }
    const mentioned = c.unread.some((u) => u.mentionsMe);
    if (mentioned) {
      const at = document.createElement('span');
      at.className = 'mention-badge';
      at.textContent = '@';
      at.title = 'You were mentioned';
      at.setAttribute('aria-label', 'mentions you');
      badges.append(at);
    }
    badges.append(badge);
    b.append(icon, name, badges, preview);
    b.setAttribute('aria-label', `${c.kind === 'group' ? 'Group ' : ''}${c.name}${state ? (state.online ? ', online' : ', offline') : ''}${c.unread.length ? `, ${c.unread.length} unread` : ''}${mentioned ? ', mentions you' : ''}${muted ? ', muted' : ''}`);
    b.addEventListener('click', () => openConv(c.key, true));
    li.append(b);
    return li;
  });
  const focused = document.activeElement?.dataset?.conv;
  el.convList.replaceChildren(...items);
  // A muted conversation's messages count only when they mention the user.
  const cl = client;
  const unread = list.reduce((n, c) => n + (cl ? c.unread.filter((u) => !cl.muted(u)).length : c.unread.length), 0);
  document.title = unread ? `(${unread}) gocim chat` : 'gocim chat';
  if (focused) el.convList.querySelector(`[data-conv="${CSS.escape(focused)}"]`)?.focus();
  show(el.noConvs, items.length === 0);
  if (!el.accountPanel.hidden) renderMutedList(); // a group's name may have come
  scheduleSubscribe();
}

function openConv(key, focusComposer) {
  const c = convs.get(key) || conv(key);
  if (typingTo && typingTo.key !== c.key) stopTyping();
  if (replying && replying.conv !== c) cancelReply();
  closePalette();
  current = c;
  el.convTitle.textContent = c.name;
  el.convTitle.dataset.conv = c.key;
  renderConvPresence();
  renderTyping();
  document.body.classList.add('conv-open');
  show(el.groupTools, c.kind === 'group');
  show(el.members, false);
  el.membersButton.setAttribute('aria-expanded', 'false');
  el.messages.replaceChildren(...c.entries.map((e) => e.el));
  expireActions();
  renderBlock();
  renderMute();
  renderConvList();
  updateLoadOlder();
  scrollToBottom();
  if (c.history === 'none') loadHistory(c);
  if (c.kind === 'group') loadMembers(c);
  markConvRead(c);
  if (focusComposer) el.composer.focus();
}

function closeConv() {
  document.body.classList.remove('conv-open');
  const key = current?.key;
  if (key) el.convList.querySelector(`[data-conv="${CSS.escape(key)}"]`)?.focus();
}

// inView: the user sees conversation c's messages as they come: it is the
// open one, the page is visible, and on a narrow screen the list does not
// hide it.
function inView(c) {
  if (c !== current || document.visibilityState !== 'visible') return false;
  return document.body.classList.contains('conv-open') || !window.matchMedia('(max-width: 720px)').matches;
}

// markConvRead reports what the user can see as read (and closes the
// conversation's notification).
function markConvRead(c) {
  if (!client || !inView(c)) return;
  closeNote(c.key);
  if (c.unread.length === 0) return;
  const list = c.unread;
  c.unread = [];
  try {
    client.markRead(list);
  } catch {
    // stopped: nothing to tell
  }
  renderConvList();
}

// ------------------------------------------------------------------ seeding

async function seedConversations() {
  const c = client;
  try {
    const page = await c.history({ limit: 50 });
    if (c !== client) return;
    for (const m of page.messages) {
      learnName(m.from, m.fromName);
      const cv = conv(convKeyOfMessage(m));
      if (m.timestampMs > cv.lastTs) {
        cv.lastTs = m.timestampMs;
        cv.preview = previewOf(m);
      }
    }
    renderConvList();
  } catch (err) {
    if (c === client) toast(`History unavailable: ${describeError(err)}`);
  }
}

async function fetchGroupName(c) {
  const cl = client;
  if (!cl) return;
  try {
    const g = await cl.group(c.id);
    if (cl !== client || !g.name) return;
    c.name = g.name;
    renderConvList();
    if (c === current) el.convTitle.textContent = c.name;
  } catch {
    // not a member any more, or unknown: keep "group <id>"
  }
}

async function refreshGroups() {
  const c = client;
  try {
    const gs = await c.groups();
    if (c !== client) return;
    for (const g of gs) conv(`group:${g.groupId}`, g.name);
  } catch (err) {
    if (c === client) toast(`Groups unavailable: ${describeError(err)}`);
  }
}

async function refreshOnline() {
  const c = client;
  if (!c) return;
  try {
    const users = await c.onlineUsers();
    if (c !== client) return;
    users.sort((a, b) => a.userName.localeCompare(b.userName));
    const items = users.map((u) => {
      learnName(u.userId, u.userName);
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'user';
      b.dataset.user = u.userId;
      b.textContent = u.userId === me.userId ? `${u.userName} (you)` : u.userName;
      b.setAttribute('aria-label', `Chat with ${u.userName}`);
      b.disabled = u.userId === me.userId;
      b.addEventListener('click', () => {
        conv(`user:${u.userId}`, u.userName);
        openConv(`user:${u.userId}`, true);
      });
      li.append(b);
      return li;
    });
    el.online.replaceChildren(...items);
  } catch (err) {
    if (c === client && client.state === 'online') toast(`Online users unavailable: ${describeError(err)}`);
  }
}

// ------------------------------------------------------------------ messages

function previewOf(m) {
  if (m.op === 'recalled') return 'message recalled';
  if (m.kind === 'file') return `File: ${m.file?.name || 'file'}`;
  return (m.text || '').slice(0, 80);
}

function entryKeys(e) {
  const keys = [];
  if (e.msgId) keys.push(`m:${e.msgId}`);
  if (e.clientMsgId) keys.push(`c:${e.clientMsgId}`);
  return keys;
}

function findEntry(msgId, clientMsgId) {
  return (msgId && entries.get(`m:${msgId}`)) || (clientMsgId && entries.get(`c:${clientMsgId}`)) || null;
}

// insertEntry puts e into c in time order (and on screen when c is open).
function insertEntry(c, e) {
  let i = c.entries.length;
  while (i > 0 && c.entries[i - 1].ts > e.ts) i--;
  c.entries.splice(i, 0, e);
  for (const k of entryKeys(e)) entries.set(k, e);
  if (c === current) {
    const atBottom = isAtBottom();
    const next = c.entries[i + 1];
    el.messages.insertBefore(e.el, next ? next.el : null);
    if (i === c.entries.length - 1 && (atBottom || e.mine)) scrollToBottom();
  }
  updateQuotes(c, e.msgId);
}

// addMessage shows message m (live, or from history: then asked is when
// that history was asked for, for its reactions).
function addMessage(m, { live, asked = 0 }) {
  if (m.msgId && deleted.has(m.msgId)) return null;
  const c = conv(convKeyOfMessage(m));
  if (!live && m.msgId) historyReactions(m, asked);
  const old = findEntry(m.msgId, '');
  if (old) {
    applyState(old, m);
    updateReactions(old);
    return old;
  }
  const e = newEntry(c, {
    msgId: m.msgId,
    mine: m.outgoing || m.from === me.userId,
    ts: m.timestampMs || Date.now(),
    msg: m.op === 'edited' || m.op === 'recalled' ? m : { ...m, op: '' },
  });
  if (e.mine) {
    const known = client?.statusByMsgId(m.msgId);
    e.status = known?.status || 'sent';
    if (known) {
      e.clientMsgId = known.clientMsgId;
      e.counts = { delivered: known.delivered, read: known.read, recipients: known.recipients };
    }
  }
  const ch = m.msgId ? changes.get(changeKey(m.from, m.msgId)) : null;
  if (ch) changeMessage(e, ch);
  e.el = renderEntry(e);
  insertEntry(c, e);
  if (e.ts >= c.lastTs) {
    c.lastTs = e.ts;
    c.preview = previewOf(e.msg);
  }
  if (live && !e.mine && e.msg.op !== 'recalled') {
    c.unread.push(m);
    markConvRead(c);
  }
  return e;
}

// newEntry is a message entry of conversation c with fields set.
function newEntry(c, fields) {
  return {
    conv: c,
    msgId: '',
    clientMsgId: '',
    mine: false,
    ts: 0,
    msg: null,
    status: '',
    counts: { delivered: 0, read: 0, recipients: 0 },
    el: null,
    editId: '', // the msgId of the edit shown ('' for none, or history's)
    changing: new Map(), // one's own changes waiting for the route: clientMsgId → op
    editing: false, // the inline editor is open
    ...fields,
  };
}

function onMessage(m) {
  learnName(m.from, m.fromName);
  if (m.op) {
    onChange(m);
    return;
  }
  const known = !!m.msgId && !!findEntry(m.msgId, ''); // shown already (history)
  const e = addMessage(m, { live: true });
  clearTyper(convKeyOfMessage(m), m.from);
  renderConvList();
  if (e && !known) notifyOf(e, m);
}

function onStatus(r) {
  if (r.op === 'react') {
    onOwnReaction(r);
    return;
  }
  if (r.op) {
    onOwnChange(r);
    return;
  }
  if (r.msgId && deleted.has(r.msgId)) return;
  let e = findEntry(r.msgId, r.clientMsgId);
  if (!e) {
    const c = conv(convKeyOfRecord(r));
    e = newEntry(c, {
      msgId: r.msgId,
      clientMsgId: r.clientMsgId,
      mine: true,
      ts: r.at || Date.now(),
      msg: { kind: r.kind, text: r.text, file: r.file, data: null, from: me.userId, fromName: me.userName, to: r.to, group: r.group, timestampMs: r.at, op: '', replyTo: r.replyTo || '', ...ownMentions(r.mentions) },
      status: r.status,
      counts: { delivered: r.delivered, read: r.read, recipients: r.recipients },
    });
    e.el = renderEntry(e);
    insertEntry(c, e);
    if (e.ts >= c.lastTs) {
      c.lastTs = e.ts;
      c.preview = previewOf(e.msg);
      renderConvList();
    }
  }
  if (r.clientMsgId && !e.clientMsgId) e.clientMsgId = r.clientMsgId;
  // named: the replies to it can quote it now (it got its msgId, or took
  // the place of its copy from history)
  let named = !!r.msgId && !e.msgId;
  if (named) e.msgId = r.msgId;
  for (const k of entryKeys(e)) {
    const other = entries.get(k);
    if (other && other !== e) {
      if (replying === other) replying = e; // the reply under way answers this copy
      removeEntry(other); // the same message from history
      named = true;
    }
    entries.set(k, e);
  }
  if (named) updateQuotes(e.conv, e.msgId);
  e.status = r.status; // the SDK's record already counts every receipt
  e.counts = { delivered: Math.max(e.counts.delivered, r.delivered), read: Math.max(e.counts.read, r.read), recipients: Math.max(e.counts.recipients, r.recipients) };
  e.error = r.error;
  updateEntry(e);
  updateBanner();
}

function onReceipt(r) {
  const e = findEntry(r.msgId, r.clientMsgId);
  if (!e || !e.mine) return;
  if (r.msgId && !e.msgId) {
    e.msgId = r.msgId;
    entries.set(`m:${r.msgId}`, e);
    updateQuotes(e.conv, e.msgId);
  }
  if (statusRank[r.status] > statusRank[e.status] || e.status === 'failed') e.status = r.status;
  if (r.group) {
    if (r.status === 'sent') e.counts.recipients = Math.max(e.counts.recipients, r.count);
    if (r.status === 'delivered') e.counts.delivered = Math.max(e.counts.delivered, r.count);
    if (r.status === 'read') e.counts.read = Math.max(e.counts.read, r.count);
  }
  updateEntry(e);
}

// onReadElsewhere: the user read these messages on another device.
function onReadElsewhere(r) {
  const c = convs.get(r.group ? `group:${r.group}` : `user:${r.peer}`);
  if (!c || c.unread.length === 0) return;
  const read = new Set(r.msgIds);
  const n = c.unread.length;
  c.unread = c.unread.filter((u) => !read.has(u.msgId));
  if (c.unread.length === 0) closeNote(c.key);
  if (c.unread.length !== n) renderConvList();
}

function removeEntry(e) {
  const c = e.conv;
  const i = c.entries.indexOf(e);
  if (i >= 0) c.entries.splice(i, 1);
  for (const k of entryKeys(e)) if (entries.get(k) === e) entries.delete(k);
  e.el.remove();
  if (replying === e) cancelReply();
  if (palette === e) palette = null;
  updateQuotes(c, e.msgId);
}

function renderEntry(e) {
  const m = e.msg;
  const li = document.createElement('li');
  li.className = `msg${e.mine ? ' mine' : ''}${m.mentionsMe && m.op !== 'recalled' ? ' mention-me' : ''}`;
  li.tabIndex = -1; // focused after its own actions go away
  const meta = document.createElement('div');
  meta.className = 'meta';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = senderOf(e);
  const time = document.createElement('time');
  if (e.ts) {
    time.dateTime = new Date(e.ts).toISOString();
    time.textContent = timeText(e.ts);
  }
  meta.append(from, ' ', time);
  if (m.op === 'edited') {
    const mark = document.createElement('span');
    mark.className = 'edited-mark';
    mark.textContent = 'edited';
    meta.append(' ', mark);
  }
  const body = document.createElement('div');
  body.className = 'body';
  if (m.op === 'recalled') {
    body.classList.add('recalled');
    body.textContent = 'message recalled';
  } else if (e.editing) {
    body.className = 'edit-body';
    body.append(editForm(e));
  } else if (m.kind === 'file' && m.file) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'file-download';
    b.textContent = `↓ ${m.file.name || 'file'} (${sizeText(m.file.size || 0)})`;
    b.setAttribute('aria-label', `Download ${m.file.name || 'file'}, ${sizeText(m.file.size || 0)}`);
    b.addEventListener('click', () => downloadEntry(e));
    body.append(b);
  } else {
    appendText(body, m.text || '', mentionedNames(m));
    const invite = !e.mine && m.from === '0' && /:gjoin\s+([0-9]+)/.exec(m.text || '');
    if (invite) {
      const j = document.createElement('button');
      j.type = 'button';
      j.className = 'join-invite';
      j.dataset.gid = invite[1];
      j.textContent = `Join group ${invite[1]}`;
      j.addEventListener('click', () => joinGroup(invite[1]));
      body.append(document.createElement('br'), j);
    }
  }
  if (m.replyTo) li.dataset.replyTo = m.replyTo;
  if (m.replyTo && m.op !== 'recalled') li.append(meta, replyQuote(e), body);
  else li.append(meta, body);
  if (palette === e && canReact(e)) li.append(paletteOf(e));
  else if (palette === e) palette = null;
  if (e.mine) {
    const ticks = document.createElement('span');
    ticks.className = 'ticks';
    li.append(ticks);
  }
  e.el = li;
  updateEntry(e);
  return li;
}

// refreshEntry draws e again (its text or state changed), keeping the
// focus and an open editor's draft, and the quotes of the replies to it.
function refreshEntry(e) {
  const old = e.el;
  const focused = old && old.contains(document.activeElement) ? document.activeElement : null;
  const draft = old?.querySelector('.edit-input');
  renderEntry(e);
  const input = e.el.querySelector('.edit-input');
  if (draft && input) input.value = draft.value;
  if (old?.parentNode) old.replaceWith(e.el);
  updateQuotes(e.conv, e.msgId);
  if (replying === e) {
    if (canReply(e)) renderReplyBar();
    else cancelReply(); // recalled meanwhile
  }
  if (!focused || !e.el.isConnected) return;
  const cls = focused.classList[0];
  const same = cls ? e.el.querySelector(`.${CSS.escape(cls)}`) : null;
  (same || e.el).focus();
}

function updateEntry(e) {
  const li = e.el;
  li.dataset.msgId = e.msgId || '';
  if (e.clientMsgId) li.dataset.clientMsgId = e.clientMsgId;
  if (e.msg.op === 'edited' || e.msg.op === 'recalled') li.dataset.op = e.msg.op;
  else delete li.dataset.op;
  updatePendingChange(e);
  updateActions(e);
  updateReactions(e);
  if (!e.mine) return;
  li.dataset.status = e.status;
  const ticks = li.querySelector('.ticks');
  const group = !!e.msg.group;
  let mark = '';
  let label = '';
  switch (e.status) {
    case 'pending':
      mark = '…';
      label = 'sending';
      break;
    case 'failed':
      mark = '!';
      label = `not sent${e.error ? `: ${describeError(e.error)}` : ''}`;
      break;
    case 'sent':
      mark = '✓';
      label = 'sent';
      break;
    case 'delivered':
      mark = '✓✓';
      label = 'delivered';
      break;
    case 'read':
      mark = '✓✓ read';
      label = 'read';
      break;
  }
  if (group && (e.counts.delivered || e.counts.read)) {
    label += ` (delivered to ${e.counts.delivered}${e.counts.recipients ? ` of ${e.counts.recipients}` : ''}, read by ${e.counts.read})`;
    mark = e.counts.read ? `✓✓ read by ${e.counts.read}` : `✓✓ ${e.counts.delivered}`;
  }
  ticks.textContent = mark;
  ticks.title = label;
  ticks.setAttribute('aria-label', label);
  ticks.setAttribute('role', 'img');
  // Why it failed, on the message itself (e.g. the route's "you blocked
  // this user: …").
  let why = li.querySelector(':scope > .send-error');
  const reason = e.status === 'failed' && e.error ? describeError(e.error) : '';
  if (reason) {
    if (!why) {
      why = document.createElement('div');
      why.className = 'send-error';
      ticks.after(why);
    }
    why.textContent = reason;
  } else {
    why?.remove();
  }
  let retry = li.querySelector('.retry');
  if (e.status === 'failed' && e.msg.kind !== 'file' && e.clientMsgId && !retry) {
    retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'retry';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => resend(e));
    li.append(retry);
  } else if (e.status !== 'failed' && retry) {
    retry.remove();
  }
}

// ------------------------------------------------------------------ recall, edit, delete

function changeKey(from, msgId) {
  return `${from}|${msgId}`;
}

// newerId: whether msgId a sorts after b (the route's ids are time-ordered
// hex of one length; a longer one is newer).
function newerId(a, b) {
  return a.length !== b.length ? a.length > b.length : a > b;
}

// onChange takes a change of a message from its sender (a recall or an
// edit, live): never shown itself, applied to the message refMsgId.
function onChange(m) {
  if ((m.op !== 'recall' && m.op !== 'edit') || !m.refMsgId || !m.from) return; // an op this page does not know
  noteChange(m.from, m.refMsgId, { op: m.op, text: m.text, id: m.msgId });
}

// noteChange remembers the latest change of from's message ref (a recall
// is final; of two edits the later one wins) and applies it when the
// message is shown and is from's.
function noteChange(from, ref, ch) {
  const key = changeKey(from, ref);
  const old = changes.get(key);
  let keep = ch;
  if (old && (old.op === 'recall' || (ch.op === 'edit' && old.id && ch.id && !newerId(ch.id, old.id)))) keep = old;
  changes.delete(key);
  changes.set(key, keep);
  if (changes.size > MAX_CHANGES) changes.delete(changes.keys().next().value);
  const e = findEntry(ref, '');
  if (!e || e.msg.from !== from || !changeMessage(e, keep)) return;
  if (keep.op === 'recall') {
    const c = e.conv;
    const n = c.unread.length;
    c.unread = c.unread.filter((u) => u.msgId !== e.msgId);
    if (c.unread.length !== n) renderConvList();
  }
  refreshEntry(e);
  updatePreview(e.conv);
}

// changeMessage applies a change to e's message and reports whether it
// changed anything (it does not draw it).
function changeMessage(e, ch) {
  const m = e.msg;
  if (m.op === 'recalled') return false; // final: later edits are ignored
  if (ch.op === 'recall') {
    e.msg = { ...m, op: 'recalled', text: '', file: null, data: null };
    e.editing = false;
    return true;
  }
  if (ch.op !== 'edit' || m.kind === 'file') return false;
  if (e.editId && ch.id && !newerId(ch.id, e.editId)) return false;
  if (ch.id) e.editId = ch.id;
  e.msg = { ...m, op: 'edited', text: ch.text };
  return true;
}

// applyState takes what history says of a message already shown.
function applyState(e, m) {
  let changed = false;
  if (m.op === 'recalled') {
    changed = changeMessage(e, { op: 'recall' });
  } else if (m.op === 'edited' && !e.editId && e.msg.op !== 'recalled' && e.msg.kind !== 'file' && (e.msg.op !== 'edited' || e.msg.text !== m.text)) {
    // No live edit seen: history's text is the latest known.
    e.msg = { ...e.msg, op: 'edited', text: m.text };
    changed = true;
  }
  if (changed) {
    refreshEntry(e);
    updatePreview(e.conv);
  }
}

// updatePreview shows the conversation's last message in the list.
function updatePreview(c) {
  const last = c.entries[c.entries.length - 1];
  const preview = last ? previewOf(last.msg) : '';
  if (preview === c.preview) return;
  c.preview = preview;
  renderConvList();
}

// onOwnChange follows one of this page's recalls and edits: pending on its
// message until the route stored it, then applied.
function onOwnChange(r) {
  updateBanner(); // it counts among the messages waiting for a link
  if (statusRank[r.status] >= statusRank.sent && r.refMsgId) {
    noteChange(me.userId, r.refMsgId, { op: r.op, text: r.text, id: r.msgId });
  }
  const e = findEntry(r.refMsgId, '');
  if (!e || !e.mine) return;
  const was = e.changing.size;
  if (r.status === 'pending') e.changing.set(r.clientMsgId, r.op);
  else e.changing.delete(r.clientMsgId);
  if (e.changing.size !== was) updateEntry(e);
}

// updatePendingChange marks e while one of its own changes waits.
function updatePendingChange(e) {
  const li = e.el;
  const meta = li.querySelector('.meta');
  let note = meta.querySelector('.op-pending');
  const op = [...e.changing.values()].pop() || '';
  if (!op) {
    delete li.dataset.opPending;
    note?.remove();
    return;
  }
  li.dataset.opPending = op;
  if (!note) {
    note = document.createElement('span');
    note.className = 'op-pending';
    meta.append(' ', note);
  }
  note.textContent = op === 'recall' ? 'recalling…' : 'editing…';
}

// canChange: e is one of the user's own messages the route still lets it
// recall (and, text, edit).
function canChange(e) {
  const c = e.conv;
  if (!e.mine || !e.msgId || e.msg.op === 'recalled' || c.kind === 'broadcast') return false;
  return Date.now() - e.ts < EDIT_WINDOW_MS;
}

function canEdit(e) {
  return canChange(e) && e.msg.kind !== 'file';
}

// updateActions puts the buttons e allows now into its .actions.
function updateActions(e) {
  const li = e.el;
  const want = [];
  if (!e.editing) {
    if (canReply(e)) want.push('reply');
    if (canReact(e)) want.push('react');
    if (e.changing.size === 0 && canEdit(e)) want.push('edit');
    if (e.changing.size === 0 && canChange(e)) want.push('recall');
    if (e.msgId) want.push('delete');
  }
  let bar = li.querySelector(':scope > .actions');
  const key = want.join(' ');
  if ((bar?.dataset.actions ?? '') === key) return;
  const focused = bar && bar.contains(document.activeElement) ? document.activeElement.className : '';
  bar?.remove();
  if (want.length === 0) {
    if (focused) li.focus();
    return;
  }
  bar = document.createElement('div');
  bar.className = 'actions';
  bar.dataset.actions = key;
  bar.setAttribute('role', 'group');
  bar.setAttribute('aria-label', 'Message actions');
  const labels = {
    reply: ['Reply', 'Reply to this message'],
    react: ['React', 'React to this message'],
    edit: ['Edit', 'Edit this message'],
    recall: ['Recall', 'Recall this message for everybody'],
    delete: ['Delete', 'Delete this message from your history'],
  };
  const run = { reply: startReply, react: togglePalette, edit: startEdit, recall: recallEntry, delete: deleteEntry };
  for (const a of want) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `${a}-button`;
    b.textContent = labels[a][0];
    b.setAttribute('aria-label', labels[a][1]);
    if (a === 'react') b.setAttribute('aria-expanded', palette === e ? 'true' : 'false');
    b.addEventListener('click', () => run[a](e));
    bar.append(b);
  }
  li.append(bar);
  if (focused) (bar.querySelector(`.${CSS.escape(focused)}`) || li).focus();
}

// onTick runs every EDIT_WINDOW_CHECK_MS while signed in: what changes
// with time alone.
function onTick() {
  expireActions();
  renderConvPresence();
}

// expireActions takes Edit and Recall away from messages past the window.
function expireActions() {
  if (!current) return;
  for (const e of current.entries) {
    if (e.mine && !canChange(e) && e.el.querySelector(':scope > .actions .recall-button')) updateActions(e);
  }
}

function tooLate(e) {
  toast('Too late: a message can be changed for 15 minutes after it was sent.');
  updateEntry(e);
}

function editForm(e) {
  const form = document.createElement('form');
  form.className = 'edit-form';
  const id = `edit-${e.msgId}`;
  const label = document.createElement('label');
  label.className = 'sr-only';
  label.htmlFor = id;
  label.textContent = 'Edit the message';
  const input = document.createElement('textarea');
  input.id = id;
  input.className = 'edit-input';
  input.rows = Math.min(6, Math.max(1, (e.msg.text || '').split('\n').length));
  input.maxLength = MAX_TEXT;
  input.value = e.msg.text || '';
  input.setAttribute('aria-describedby', 'edit-hint');
  const hint = document.createElement('span');
  hint.id = 'edit-hint';
  hint.className = 'sr-only';
  hint.textContent = 'Enter saves, Shift+Enter starts a new line, Escape cancels.';
  const save = document.createElement('button');
  save.type = 'submit';
  save.className = 'edit-save primary';
  save.textContent = 'Save';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'edit-cancel';
  cancel.textContent = 'Cancel';
  const row = document.createElement('div');
  row.className = 'edit-row';
  row.append(cancel, save);
  form.append(label, input, hint, row);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveEdit(e, input.value);
  });
  cancel.addEventListener('click', () => stopEdit(e));
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      saveEdit(e, input.value);
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      stopEdit(e);
    }
  });
  return form;
}

function startEdit(e) {
  if (!canEdit(e)) {
    tooLate(e);
    return;
  }
  for (const x of e.conv.entries) if (x.editing && x !== e) stopEdit(x, false);
  e.editing = true;
  refreshEntry(e);
  const input = e.el.querySelector('.edit-input');
  if (input) {
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
}

function stopEdit(e, focus = true) {
  if (!e.editing) return;
  e.editing = false;
  refreshEntry(e);
  if (focus && e.el.isConnected) (e.el.querySelector('.edit-button') || e.el).focus();
}

function saveEdit(e, text) {
  if (!client || !e.editing) return;
  if (text === (e.msg.text || '')) {
    stopEdit(e);
    return;
  }
  if (!text.trim()) {
    toast('A message cannot be empty: use Recall to take it back.');
    return;
  }
  if (utf8Encode(text).length > MAX_TEXT) {
    toast(`Too long: at most ${MAX_TEXT} bytes.`);
    return;
  }
  if (!canEdit(e)) {
    e.editing = false;
    refreshEntry(e);
    tooLate(e);
    return;
  }
  const c = e.conv;
  try {
    if (c.kind === 'group') client.editInGroup(c.id, e.msgId, text);
    else client.edit(c.id, e.msgId, text);
  } catch (err) {
    toast(`Cannot edit the message: ${describeError(err)}`);
    return;
  }
  stopEdit(e);
}

function recallEntry(e) {
  if (!client) return;
  if (!canChange(e)) {
    tooLate(e);
    return;
  }
  const c = e.conv;
  try {
    if (c.kind === 'group') client.recallInGroup(c.id, e.msgId);
    else client.recall(c.id, e.msgId);
  } catch (err) {
    toast(`Cannot recall the message: ${describeError(err)}`);
  }
}

// deleteEntry takes a message out of the view and the user's history (put
// back when the route refuses).
async function deleteEntry(e) {
  const cl = client;
  if (!cl || !e.msgId) return;
  const c = e.conv;
  const i = c.entries.indexOf(e);
  const next = c.entries[i + 1] || c.entries[i - 1] || null;
  const hadFocus = e.el.contains(document.activeElement);
  deleted.add(e.msgId);
  removeEntry(e);
  c.unread = c.unread.filter((u) => u.msgId !== e.msgId);
  updatePreview(c);
  renderConvList();
  if (hadFocus) (next && next.el.isConnected ? next.el : el.composer).focus();
  try {
    await cl.deleteHistory([e.msgId]);
  } catch (err) {
    if (cl !== client) return;
    deleted.delete(e.msgId);
    if (convs.get(c.key) === c && !findEntry(e.msgId, '')) {
      insertEntry(c, e);
      updatePreview(c);
    }
    toast(`Cannot delete the message: ${describeError(err)}`);
  }
}

function resend(e) {
  if (!client) return;
  try {
    const m = e.msg;
    const mentions = m.group && m.mentions?.length ? m.mentions : undefined;
    client.sendMsg({ clientMsgId: e.clientMsgId, to: m.to, group: m.group, broadcast: e.conv.kind === 'broadcast', text: m.text, replyTo: m.replyTo || '', mentions });
  } catch (err) {
    toast(describeError(err));
  }
}

async function downloadEntry(e) {
  const m = e.msg;
  try {
    let blob = e.clientMsgId ? ownFiles.get(e.clientMsgId) : null;
    if (!blob) blob = await client.downloadFile(m);
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = m.file?.name || 'file';
    a.rel = 'noopener';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    toast(`Download failed: ${describeError(err)}`);
  }
}

// ------------------------------------------------------------------ replies

// senderOf is how the page names the sender of e's message.
function senderOf(e) {
  const m = e.msg;
  return e.mine ? 'you' : m.from === '0' ? 'system' : nameOf(m.from, m.fromName);
}

// snippetOf is message m on one line for a quote: at most REPLY_SNIPPET
// characters, cut with "…".
function snippetOf(m) {
  return clip(m.op === 'recalled' ? 'message recalled' : m.kind === 'file' ? `File: ${m.file?.name || 'file'}` : m.text || '', REPLY_SNIPPET);
}

// clip is text t on one line, at most max characters, cut with "…".
function clip(t, max) {
  t = t.replace(/\s+/g, ' ').trim();
  const chars = [...t]; // by code point: never half an emoji
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : t;
}

// canReply: e is a message one may answer (a reply names it by msgId;
// the route takes none on a broadcast).
function canReply(e) {
  return !!e.msgId && e.msg.op !== 'recalled' && e.conv.kind !== 'broadcast';
}

// quotedEntry is the entry e (a reply) answers when the page has it in
// e's conversation (a reply may name any msgId), else null.
function quotedEntry(e) {
  const id = e.msg.replyTo;
  const q = id ? findEntry(id, '') : null;
  return q && q.conv === e.conv ? q : null;
}

// replyQuote is the quote shown above the body of e, a reply: the sender
// and a snippet of the message answered, or "a message" when the page does
// not have it. Text only.
function replyQuote(e) {
  const q = quotedEntry(e);
  const box = document.createElement('div');
  box.className = 'reply-quote';
  box.dataset.replyTo = e.msg.replyTo;
  box.dataset.known = q ? 'true' : 'false';
  const intro = document.createElement('span');
  intro.className = 'sr-only';
  intro.textContent = 'In reply to ';
  const text = document.createElement('span');
  text.className = 'reply-quote-text';
  if (q) {
    const name = document.createElement('span');
    name.className = 'reply-quote-name';
    name.textContent = senderOf(q);
    text.textContent = snippetOf(q.msg);
    box.append(intro, name, text);
  } else {
    text.textContent = 'a message';
    box.append(intro, text);
  }
  return box;
}

// updateQuotes draws again the quotes of the replies to msgId in
// conversation c (that message was shown, changed or removed).
function updateQuotes(c, msgId) {
  if (!msgId) return;
  for (const x of c.entries) {
    if (x.msg.replyTo !== msgId) continue;
    x.el.querySelector(':scope > .reply-quote')?.replaceWith(replyQuote(x));
  }
}

// startReply makes the next message of the open conversation a reply to e.
function startReply(e) {
  const c = e.conv;
  if (!canReply(e) || c !== current) return;
  if (isBlocked(c)) {
    toast(`Unblock ${blockedName(c)} to write to them.`);
    return;
  }
  replying = e;
  renderReplyBar();
  el.composer.focus();
}

// cancelReply drops the reply under way (focus: back to the composer).
function cancelReply(focus = false) {
  if (!replying) return;
  replying = null;
  renderReplyBar();
  if (focus) el.composer.focus();
}

// renderReplyBar shows the message the next one answers, above the composer.
function renderReplyBar() {
  const e = replying;
  show(el.replyBar, !!e);
  if (!e) {
    el.replyName.textContent = '';
    el.replySnippet.textContent = '';
    delete el.replyBar.dataset.replyTo;
    return;
  }
  el.replyName.textContent = e.mine ? 'yourself' : senderOf(e);
  el.replySnippet.textContent = snippetOf(e.msg);
  el.replyBar.dataset.replyTo = e.msgId;
}

// replyOptions are the SDK's options for the next message sent in c: the
// reply under way there, if any.
function replyOptions(c) {
  return replying && replying.conv === c && replying.msgId ? { replyTo: replying.msgId } : {};
}

// ------------------------------------------------------------------ reactions

// What the page knows of the reactions to one message (an Rx, in
// `reactions` by msgId):
//
//   base     [[emoji, count]] as history last gave them (null: none loaded)
//   baseWho  Map(user → emoji or '') of the users history's counts are
//            known to include: oneself always (history's `mine`), and in a
//            private conversation the peer too, derived: the counts hold at
//            most one reaction each of two users, so what is not one's own
//            is the peer's. Exact.
//   live     Map(user → {emoji, id, at, conv, pending, prev}): each
//            user's latest reaction seen since ('reaction' events, one's own
//            sends: pending is the clientMsgId until the route stored it,
//            prev what to go back to when it refuses), id the REACT's msgId
//            (time-ordered: an older one is ignored), at when the page got
//            it, conv the conversation it came in
//   order    the emojis in the order each first came (history's, then new)
//
// The counts shown are base's, with each live user's reaction moved from
// what baseWho says they had (if known) to what they have now. In a group
// history does not tell who reacted with what (only the counts and one's
// own), so for another member the page cannot know whether the counts
// include them, nor with which emoji: it takes their live reactions as
// new. That is an approximation: a member who changes or takes back a
// reaction that history counted shows under the old emoji too (until the
// next history load, which is exact), and one that came while that history
// was on its way may count twice until the next load. Live reactions the
// page got before it asked for the history are in it, and are dropped when
// it comes (in a private conversation the result is exact either way). Users
// are keyed by id, oneself by SELF (one's own sends saved across a reload
// come back before the login tells the page its id).
const SELF = 'self';

// rxOf is the Rx of msgId (created when asked to; the oldest of those of
// messages not shown go beyond MAX_REACTED).
function rxOf(msgId, create) {
  let rx = reactions.get(msgId);
  if (rx || !create) return rx || null;
  rx = { base: null, baseWho: new Map(), live: new Map(), order: [] };
  reactions.set(msgId, rx);
  if (reactions.size > MAX_REACTED) {
    for (const id of reactions.keys()) {
      if (id !== msgId && !findEntry(id, '')) {
        reactions.delete(id);
        break;
      }
    }
  }
  return rx;
}

function noteEmoji(rx, emoji) {
  if (emoji && !rx.order.includes(emoji)) rx.order.push(emoji);
}

// historyReactions takes history's reactions of message m, asked for at
// asked (ms): its counts become the base, and the live reactions the page
// had before then (in the base already) go, but for one's own sends still
// waiting for the route.
function historyReactions(m, asked) {
  const list = m.op === 'recalled' ? [] : m.reactions || [];
  let rx = rxOf(m.msgId, false);
  if (!rx && list.length === 0) return;
  rx = rx || rxOf(m.msgId, true);
  rx.base = list.map((r) => [r.emoji, r.count]);
  rx.order = [...list.map((r) => r.emoji), ...rx.order.filter((x) => !list.some((r) => r.emoji === x))];
  const mine = list.find((r) => r.mine)?.emoji || '';
  rx.baseWho = new Map([[SELF, mine]]);
  const peer = m.group ? '' : m.from === me.userId ? m.to : m.from;
  if (peer && peer !== me.userId && /^[0-9]+$/.test(peer)) {
    const theirs = list.map((r) => [r.emoji, r.count - (r.emoji === mine ? 1 : 0)]).filter(([, n]) => n > 0);
    const n = theirs.reduce((sum, [, k]) => sum + k, 0);
    if (n === 0) rx.baseWho.set(peer, '');
    else if (n === 1) rx.baseWho.set(peer, theirs[0][0]);
    // more: not what the route answers for two users; nobody else attributed
  }
  for (const [user, r] of rx.live) if (!r.pending && r.at < asked) rx.live.delete(user);
}

// sameConv: a reaction that came in conversation key applies to a message
// of conversation c (one opened by a name matches any user's).
function sameConv(key, c) {
  return key === c.key || (c.kind === 'user' && !/^[0-9]+$/.test(c.id) && key.startsWith('user:'));
}

// reactionsOf is what e shows: [{emoji, count, mine}] in the order each
// emoji came, none on a recalled message.
function reactionsOf(e) {
  const rx = e.msgId ? rxOf(e.msgId, false) : null;
  if (!rx || e.msg.op === 'recalled' || e.conv.kind === 'broadcast') return [];
  const counts = new Map(rx.base || []);
  let mine = rx.baseWho.get(SELF) || '';
  for (const [user, r] of rx.live) {
    if (!sameConv(r.conv, e.conv)) continue; // a msgId of another conversation
    const was = rx.baseWho.get(user);
    if (was) counts.set(was, (counts.get(was) || 0) - 1);
    if (r.emoji) counts.set(r.emoji, (counts.get(r.emoji) || 0) + 1);
    if (user === SELF) mine = r.emoji;
  }
  const out = [];
  for (const emoji of rx.order) {
    const count = counts.get(emoji) || 0;
    if (count > 0) out.push({ emoji, count, mine: emoji === mine });
  }
  return out;
}

// myReaction is the user's own reaction to e ('' for none).
function myReaction(e) {
  return reactionsOf(e).find((r) => r.mine)?.emoji || '';
}

// noteReaction records user's reaction to the message ref and shows it.
function noteReaction(ref, user, rec) {
  const rx = rxOf(ref, true);
  const old = rx.live.get(user);
  if (old && !rec.pending) {
    if (old.pending) return; // one's own, sent here after it
    if (old.id && rec.id && !newerId(rec.id, old.id)) return; // older, or the same again
  }
  rx.live.set(user, rec);
  noteEmoji(rx, rec.emoji);
  const e = findEntry(ref, '');
  if (e) updateReactions(e);
}

// onReaction takes another's reaction, or one the user made on another
// device: never a message (nothing unread, no preview, no READ).
function onReaction(r) {
  learnName(r.from, r.fromName);
  if (!r.msgId || !r.from) return;
  const conv = convKeyOfMessage({ group: r.group, from: r.from, to: r.to, outgoing: r.self, broadcast: false });
  noteReaction(r.msgId, r.self || r.from === me.userId ? SELF : r.from, { emoji: r.emoji, id: r.reactionId, at: Date.now(), conv, pending: '', prev: null });
}

// onOwnReaction follows one of this page's reactions: shown at once
// (pending), settled when the route stored it, undone when it refused.
function onOwnReaction(r) {
  updateBanner(); // it counts among the messages waiting for a link
  if (!r.refMsgId) return;
  const rx = rxOf(r.refMsgId, true);
  const cur = rx.live.get(SELF);
  if (r.status === 'pending') {
    if (cur?.pending === r.clientMsgId) return;
    // Another one still under way: go back past it too if this one fails.
    const prev = cur?.pending ? cur.prev : cur || null;
    rx.live.set(SELF, { emoji: r.text, id: '', at: r.at || Date.now(), conv: convKeyOfRecord(r), pending: r.clientMsgId, prev });
    noteEmoji(rx, r.text);
  } else if (cur?.pending !== r.clientMsgId) {
    // A later one is under way: if it fails, it goes back to this one.
    if (cur?.pending && r.status !== 'failed' && r.msgId) cur.prev = { emoji: r.text, id: r.msgId, at: r.at, conv: convKeyOfRecord(r), pending: '', prev: null };
    return;
  } else if (r.status === 'failed') {
    if (cur.prev) rx.live.set(SELF, cur.prev);
    else rx.live.delete(SELF);
  } else {
    rx.live.set(SELF, { ...cur, id: r.msgId, pending: '', prev: null });
  }
  const e = findEntry(r.refMsgId, '');
  if (e) updateReactions(e);
}

// canReact: e is a message one may react to (by msgId; not a recalled
// one, nor a broadcast or the system's).
function canReact(e) {
  const c = e.conv;
  return !!e.msgId && e.msg.op !== 'recalled' && c.kind !== 'broadcast' && !(c.kind === 'user' && c.id === '0');
}

// react sets the user's reaction to e ('' takes it back).
function react(e, emoji) {
  if (!client || !canReact(e)) return;
  const c = e.conv;
  if (isBlocked(c)) {
    toast(`Unblock ${blockedName(c)} to write to them.`);
    return;
  }
  try {
    // Shown by the 'status' event the send makes (onOwnReaction).
    if (c.kind === 'group') client.reactInGroup(c.id, e.msgId, emoji);
    else client.react(c.id, e.msgId, emoji);
  } catch (err) {
    toast(`Cannot react to the message: ${describeError(err)}`);
  }
}

// updateReactions draws e's .reactions under its body (none: no row).
function updateReactions(e) {
  const li = e.el;
  if (!li) return;
  const list = reactionsOf(e);
  let row = li.querySelector(':scope > .reactions');
  const key = list.map((r) => `${r.emoji}:${r.count}:${r.mine ? 1 : 0}`).join(' ');
  if ((row?.dataset.key ?? '') === key) return;
  const focused = row && row.contains(document.activeElement) ? document.activeElement.dataset.emoji : null;
  if (list.length === 0) {
    row?.remove();
    if (focused != null) li.focus();
    markChoices(e);
    return;
  }
  if (!row) {
    row = document.createElement('div');
    row.className = 'reactions';
    row.setAttribute('role', 'group');
    row.setAttribute('aria-label', 'Reactions');
    li.querySelector(':scope > .body, :scope > .edit-body').after(row);
  }
  row.dataset.key = key;
  row.replaceChildren(
    ...list.map((r) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `reaction${r.mine ? ' mine' : ''}`;
      b.dataset.emoji = r.emoji;
      b.textContent = `${r.emoji} ${r.count}`;
      b.setAttribute('aria-pressed', r.mine ? 'true' : 'false');
      const label = r.mine ? `${r.emoji} ${r.count}, yours: take it back` : `${r.emoji} ${r.count}: react with it`;
      b.setAttribute('aria-label', label);
      b.title = r.mine ? 'Take your reaction back' : `React with ${r.emoji}`;
      b.addEventListener('click', () => react(e, r.mine ? '' : r.emoji));
      return b;
    }),
  );
  if (focused != null) (row.querySelector(`[data-emoji="${CSS.escape(focused)}"]`) || li).focus();
  markChoices(e);
}

// markChoices marks the user's own reaction in e's open palette.
function markChoices(e) {
  const mine = myReaction(e);
  for (const b of e.el.querySelectorAll(':scope > .react-palette .react-choice')) {
    const emoji = b.dataset.emoji;
    b.setAttribute('aria-pressed', emoji === mine ? 'true' : 'false');
    b.setAttribute('aria-label', emoji === mine ? `Take back your ${emoji}` : `React with ${emoji}`);
  }
}

// paletteOf is e's .react-palette: a button per REACTION_CHOICES emoji.
function paletteOf(e) {
  const box = document.createElement('div');
  box.className = 'react-palette';
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', 'Pick a reaction');
  const mine = myReaction(e);
  for (const emoji of REACTION_CHOICES) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'react-choice';
    b.dataset.emoji = emoji;
    b.textContent = emoji;
    b.setAttribute('aria-pressed', emoji === mine ? 'true' : 'false');
    b.setAttribute('aria-label', emoji === mine ? `Take back your ${emoji}` : `React with ${emoji}`);
    b.title = emoji === mine ? 'Take your reaction back' : `React with ${emoji}`;
    b.addEventListener('click', () => {
      closePalette(true);
      react(e, emoji === myReaction(e) ? '' : emoji);
    });
    box.append(b);
  }
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      closePalette(true);
    }
  });
  return box;
}

// togglePalette opens e's palette (closing another), or closes it.
function togglePalette(e) {
  if (palette === e) {
    closePalette(true);
    return;
  }
  closePalette();
  if (!canReact(e)) return;
  palette = e;
  const box = paletteOf(e);
  const anchor = e.el.querySelector(':scope > .reactions') || e.el.querySelector(':scope > .body, :scope > .edit-body');
  anchor.after(box);
  e.el.querySelector(':scope > .actions .react-button')?.setAttribute('aria-expanded', 'true');
  (box.querySelector('[aria-pressed="true"]') || box.querySelector('.react-choice')).focus();
}

// closePalette closes the open palette (focus: back to its React button).
function closePalette(focus = false) {
  const e = palette;
  if (!e) return;
  palette = null;
  const hadFocus = e.el.contains(document.activeElement);
  e.el.querySelector(':scope > .react-palette')?.remove();
  const button = e.el.querySelector(':scope > .actions .react-button');
  button?.setAttribute('aria-expanded', 'false');
  if (focus && hadFocus && e.el.isConnected) (button || e.el).focus();
}

// ------------------------------------------------------------------ mentions

// Trailing punctuation an "@name" word may have that is not part of the
// name ("@bob," "@bob?").
const MENTION_TRAIL = /[,.!?:;]+$/;
// A user name as the route takes one.
const USER_NAME = /^[A-Za-z][A-Za-z0-9_.-]{1,31}$/;

// mentionCandidates are the names an "@name" word may name, as typed: the
// whole word after "@", then without trailing punctuation ([] for a word
// that is no "@name"). Names compare case-insensitively.
function mentionCandidates(word) {
  if (word.length < 2 || word[0] !== '@') return [];
  const name = word.slice(1);
  const bare = name.replace(MENTION_TRAIL, '');
  if (!bare) return [];
  return bare !== name ? [name, bare] : [name];
}

function hasMentionWord(text) {
  return text.split(/\s+/).some((w) => mentionCandidates(w).length > 0);
}

// mentionsIn is whom text, to be sent to group c, mentions: the user ids of
// the members its "@name" words name, once each, in order, at most
// MAX_MENTIONS. When the page has only part of the members (a large
// group), or none (they could not be loaded), a name not among them goes
// as typed, if it is one a user may have: the route keeps it only if it
// is a member's.
function mentionsIn(c, text) {
  const out = [];
  const ms = c.members || { byName: new Map(), complete: false };
  for (const w of text.split(/\s+/)) {
    const cands = mentionCandidates(w);
    if (cands.length === 0) continue;
    let id = '';
    for (const n of cands) {
      id = ms.byName.get(n.toLowerCase()) || '';
      if (id) break;
    }
    if (!id && !ms.complete) id = cands.find((n) => USER_NAME.test(n)) || '';
    if (id && !out.includes(id)) out.push(id);
    if (out.length === MAX_MENTIONS) break;
  }
  return out;
}

// loadMembers loads the members of group c (again, when done before) and
// resolves when that is over, failed or not; one load at a time.
function loadMembers(c) {
  if (c.membersLoad) return c.membersLoad;
  const cl = client;
  if (!cl) return Promise.resolve();
  c.membersLoad = (async () => {
    try {
      const users = await cl.groupMembers(c.id, { limit: MEMBERS_PAGE });
      if (cl === client) setMembers(c, users);
    } catch {
      // not a member (any more), or the route unreachable: the "@name"
      // words go by name (see mentionsIn); the Members button says why
    } finally {
      c.membersLoad = null;
    }
  })();
  return c.membersLoad;
}

// setMembers keeps the members of group c (a page of them: complete when
// not full).
function setMembers(c, users) {
  const byName = new Map();
  for (const u of users) {
    learnName(u.userId, u.userName);
    if (u.userName) byName.set(u.userName.toLowerCase(), u.userId);
  }
  c.members = { byName, complete: users.length < MEMBERS_PAGE };
}

// refreshMentionsOf draws again the group messages that mention userId,
// whose name the page just learned (or that changed): their "@name" words
// may be highlighted now. (A history page is shown newest first, so a
// message may mention a user whose name comes with an older one.)
function refreshMentionsOf(userId) {
  for (const c of convs.values()) {
    if (c.kind !== 'group') continue;
    for (const e of c.entries) {
      if (e.el && !e.editing && e.msg.mentions?.includes(userId)) refreshEntry(e);
    }
  }
}

// mentionedNames are the lower-case names of the users message m mentions,
// those the page knows (one's own sends may name them by name).
function mentionedNames(m) {
  const out = new Set();
  for (const id of m.mentions || []) {
    const n = !/^[0-9]+$/.test(id) ? id : id === me.userId ? me.userName : names.get(id);
    if (n) out.add(n.toLowerCase());
  }
  return out;
}

// ownMentions are the mentions of a message the user sent from here
// (mentions as given: the page gives ids).
function ownMentions(mentions) {
  const list = Array.isArray(mentions) ? mentions : [];
  return { mentions: list, mentionsMe: !!me.userId && list.includes(me.userId) };
}

// appendText puts text into node, each "@name" word naming one of mentioned
// (lower-case names) in a span.mention. Text only: never parsed as HTML.
function appendText(node, text, mentioned) {
  if (mentioned.size === 0) {
    node.append(text);
    return;
  }
  let run = '';
  for (const part of text.split(/(\s+)/)) {
    const cands = mentionCandidates(part);
    const hit = cands.find((n) => mentioned.has(n.toLowerCase()));
    if (!hit) {
      run += part;
      continue;
    }
    const len = 1 + hit.length; // "@" and the name, as typed
    if (run) node.append(run);
    const span = document.createElement('span');
    span.className = 'mention';
    span.textContent = part.slice(0, len);
    node.append(span);
    run = part.slice(len);
  }
  if (run) node.append(run);
}

// ------------------------------------------------------------------ history

function isAtBottom() {
  const s = el.scroll;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
}

function scrollToBottom() {
  el.scroll.scrollTop = el.scroll.scrollHeight;
}

function updateLoadOlder() {
  const c = current;
  const more = !!c && (c.history === 'more' || c.history === 'loading');
  show(el.loadOlder, more);
  el.loadOlder.disabled = c?.history === 'loading';
  el.loadOlder.textContent = c?.history === 'loading' ? 'Loading…' : 'Load older messages';
}

async function loadHistory(c) {
  if (!client || c.history === 'loading' || c.history === 'done') return;
  if (c.kind === 'broadcast' || (c.kind === 'user' && c.id === '0')) {
    c.history = 'done';
    updateLoadOlder();
    return;
  }
  const cl = client;
  const prev = c.history;
  c.history = 'loading';
  updateLoadOlder();
  const q = c.kind === 'group' ? { group: c.id } : { peer: c.id };
  if (c.next) q.before = c.next;
  const before = el.scroll.scrollHeight - el.scroll.scrollTop;
  const first = prev === 'none';
  const asked = Date.now();
  try {
    const page = await cl.historyFill(q, HISTORY_PAGE);
    if (cl !== client) return;
    for (const m of page.messages) {
      learnName(m.from, m.fromName);
      if (c.kind === 'user' && !/^[0-9]+$/.test(c.id) && !m.group) {
        // Opened by name: the history tells the id.
        mergeAlias(c.id, m.from === me.userId ? m.to : m.from);
      }
      addMessage(m, { live: false, asked });
    }
    const target = convs.get(c.key) === c ? c : convs.get(convKeyOfMessage(page.messages[0] || {})) || c;
    target.next = page.next;
    target.history = page.next ? 'more' : 'done';
    if (target === current) {
      if (first) scrollToBottom();
      else el.scroll.scrollTop = el.scroll.scrollHeight - before;
    }
  } catch (err) {
    c.history = prev === 'none' ? 'more' : prev;
    if (err instanceof ApiError && err.code === Codes.BadAccount) {
      c.history = 'done'; // no such user (yet): nothing to page through
      if (cl === client) toast(`No user “${c.id}”.`);
    } else if (cl === client) {
      toast(`History unavailable: ${describeError(err)}`);
    }
  }
  renderConvList();
  updateLoadOlder();
}

// ------------------------------------------------------------------ presence

// watchList: whom the page watches — the users of the conversation list
// (by id; not the system, not oneself) and the members of the open group.
function watchList() {
  const users = [];
  for (const c of convs.values()) {
    if (c.kind === 'user' && /^[0-9]+$/.test(c.id) && c.id !== '0' && c.id !== me.userId) users.push(c.id);
  }
  users.sort((a, b) => (convs.get(`user:${b}`)?.lastTs || 0) - (convs.get(`user:${a}`)?.lastTs || 0));
  users.splice(MAX_WATCHED);
  users.sort();
  const groups = current?.kind === 'group' ? [current.id] : [];
  return { users, groups };
}

// scheduleSubscribe subscribes to the watch list a moment after it changed
// (a burst of changes makes one SUBSCRIBE).
function scheduleSubscribe() {
  if (!client || !seeded) return;
  const key = JSON.stringify(watchList());
  clearTimeout(watchTimer);
  watchTimer = null;
  if (key === watchKey) return;
  watchTimer = setTimeout(subscribeNow, SUBSCRIBE_DEBOUNCE_MS);
}

async function subscribeNow() {
  watchTimer = null;
  const c = client;
  if (!c) return;
  const { users, groups } = watchList();
  const key = JSON.stringify({ users, groups });
  if (key === watchKey) return;
  watchKey = key;
  if (users.length + groups.length === 0 && !c.subscription) return;
  try {
    await c.subscribe(users, groups);
  } catch (err) {
    if (c !== client || !(err instanceof GatewayError)) return; // replaced by a newer list, or logged out
    // A group too large to watch, or one left meanwhile: the users alone.
    if (groups.length) {
      try {
        await c.subscribe(users, []);
      } catch {
        // keep what is in force; the next change of the list tries again
      }
    }
    console.warn('gocim: presence subscription refused:', describeError(err));
  }
  if (c === client) renderPresence();
}

// applyPresence sets node's data-presence from what the client knows of
// userId and returns that state (null when not known).
function applyPresence(node, userId) {
  const s = client?.presenceOf(userId) || null;
  if (s) node.dataset.presence = s.online ? 'online' : 'offline';
  else delete node.dataset.presence;
  return s;
}

function onPresence({ states }) {
  for (const s of states) learnName(s.userId, s.userName);
  renderPresence();
}

function renderPresence() {
  renderConvList();
  for (const li of el.members.querySelectorAll('[data-user]')) {
    const st = applyPresence(li, li.dataset.user);
    if (st) li.title = st.online ? 'online' : 'offline';
  }
  renderConvPresence();
}

// renderConvPresence shows whether the open conversation's peer is online
// and, offline, when it was last seen (when known).
function renderConvPresence() {
  const c = current;
  const s = c && c.kind === 'user' && client ? client.presenceOf(c.id) : null;
  if (!s) {
    el.convPresence.textContent = '';
    delete el.convPresence.dataset.presence;
    delete el.convPresence.dataset.lastSeen;
    el.convPresence.removeAttribute('title');
    show(el.convPresence, false);
    return;
  }
  const word = s.online ? 'online' : 'offline';
  const seen = s.online ? 0 : s.lastSeen;
  el.convPresence.textContent = seen ? lastSeenText(seen) : word;
  el.convPresence.dataset.presence = word;
  if (seen) el.convPresence.dataset.lastSeen = String(seen);
  else delete el.convPresence.dataset.lastSeen;
  const title = s.platform ? `${word} (${s.platform})` : word;
  el.convPresence.title = seen ? `${title}, last seen ${new Date(seen).toLocaleString()}` : title;
  show(el.convPresence, true);
}

// ------------------------------------------------------------------ typing

function typingTarget(c) {
  if (!c) return null;
  if (c.kind === 'group' || (c.kind === 'user' && c.id !== '0')) return { key: c.key, kind: c.kind, id: c.id };
  return null;
}

function sendTyping(t, stopped) {
  if (!client) return false;
  try {
    return t.kind === 'group' ? client.typingInGroup(t.id, stopped) : client.typing(t.id, stopped);
  } catch {
    return false;
  }
}

// typingDue tells the open conversation that the user types: at once when
// nothing was sent for TYPING_EVERY_MS, else once that is over (while the
// draft stands). An indicator still shown there is left alone.
function typingDue() {
  clearTimeout(typingTimer);
  typingTimer = null;
  const t = typingTarget(current);
  if (!client || !t || !el.composer.value.trim()) return;
  if (typingTo && typingTo.key !== t.key) stopTyping();
  const wait = typingAt + TYPING_EVERY_MS - Date.now();
  if (wait > 0) {
    if (!typingTo) typingTimer = setTimeout(typingDue, wait);
    return;
  }
  if (sendTyping(t, false)) {
    typingTo = t;
    typingAt = Date.now();
  }
}

// stopTyping takes back the indicator this page sent (the draft was
// cleared or sent, or the user went to another conversation).
function stopTyping() {
  clearTimeout(typingTimer);
  typingTimer = null;
  const t = typingTo;
  typingTo = null;
  if (t) sendTyping(t, true);
}

function onTyping(t) {
  if (!t.from || t.from === me.userId) return;
  learnName(t.from, t.fromName);
  const key = t.group ? `group:${t.group}` : `user:${t.from}`;
  if (t.stopped) {
    clearTyper(key, t.from);
    return;
  }
  let m = typers.get(key);
  if (!m) typers.set(key, (m = new Map()));
  clearTimeout(m.get(t.from)?.timer);
  m.set(t.from, { name: nameOf(t.from, t.fromName), timer: setTimeout(() => clearTyper(key, t.from), TYPING_SHOWN_MS) });
  if (current?.key === key) renderTyping();
}

function clearTyper(key, from) {
  const m = typers.get(key);
  const t = m?.get(from);
  if (!t) return;
  clearTimeout(t.timer);
  m.delete(from);
  if (m.size === 0) typers.delete(key);
  if (current?.key === key) renderTyping();
}

// renderTyping shows who is typing in the open conversation.
function renderTyping() {
  const m = current ? typers.get(current.key) : null;
  const who = m ? [...m.values()].map((t) => t.name) : [];
  if (who.length === 0) {
    el.typing.textContent = '';
    delete el.typing.dataset.users;
    show(el.typing, false);
    return;
  }
  el.typing.textContent =
    who.length === 1 ? `${who[0]} is typing…` : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : `${who.length} people are typing…`;
  el.typing.dataset.users = [...m.keys()].join(',');
  show(el.typing, true);
}

// ------------------------------------------------------------------ actions

function sendText() {
  const c = current;
  const text = el.composer.value;
  if (!c || !client || !text.trim()) return;
  if (isBlocked(c)) {
    toast(`Unblock ${blockedName(c)} to write to them.`);
    return;
  }
  if (utf8Encode(text).length > MAX_TEXT) {
    toast(`Too long: at most ${MAX_TEXT} bytes.`);
    return;
  }
  const reply = replyOptions(c);
  if (c.kind === 'group' && !c.members && (hasMentionWord(text) || c.membersLoad)) {
    // The members are not in yet (the group was just opened): the message
    // goes once they are (after those waiting already), the composer
    // cleared at once.
    sendGroupLater(c, text, reply);
    return;
  }
  try {
    if (c.kind === 'group') client.sendGroup(c.id, text, { ...reply, mentions: mentionsIn(c, text) });
    else if (c.kind === 'broadcast') client.broadcast(text);
    else client.send(c.id, text, reply);
    sent();
  } catch (err) {
    toast(sendError(err));
  }
}

// sent clears the composer (and the typing indicator, and the reply bar)
// after a message went.
function sent() {
  el.composer.value = '';
  autosize();
  stopTyping();
  cancelReply();
}

function sendError(err) {
  return err instanceof ClientError && err.reason === 'stopped' ? 'Disconnected: log in again.' : describeError(err);
}

// sendGroupLater sends text to group c once its members are loaded (to
// know whom its "@name" words mention); the composer is cleared at once,
// and gets the text back if it cannot go after all.
async function sendGroupLater(c, text, reply) {
  const cl = client;
  sent();
  await loadMembers(c);
  if (cl !== client) return;
  try {
    cl.sendGroup(c.id, text, { ...reply, mentions: mentionsIn(c, text) });
  } catch (err) {
    toast(sendError(err));
    if (current === c && !el.composer.value) {
      el.composer.value = text;
      autosize();
    }
  }
}

async function sendFiles(files) {
  const c = current;
  if (!c || !client) return;
  if (isBlocked(c)) {
    toast(`Unblock ${blockedName(c)} to write to them.`);
    return;
  }
  for (const f of files) {
    // The first file answers the message the user is replying to.
    const opts = replyOptions(c);
    if (opts.replyTo) cancelReply();
    try {
      const id = c.kind === 'group' ? await client.sendGroupFile(c.id, f, opts) : await client.sendFile(c.id, f, opts);
      ownFiles.set(id, f);
    } catch (err) {
      toast(`${f.name}: ${describeError(err)}`);
    }
  }
}

function idOfName(name) {
  for (const [id, n] of names) if (n.toLowerCase() === name.toLowerCase()) return id;
  return '';
}

async function startChat(who) {
  who = who.trim();
  if (!who || !client) return;
  let key = '';
  if (/^[0-9]+$/.test(who)) key = `user:${who}`;
  else {
    let id = idOfName(who);
    if (!id) {
      // Conversations are by user id: ask who is online, then the history.
      await refreshOnline();
      id = idOfName(who);
    }
    if (!id && client) {
      try {
        const page = await client.history({ peer: who, limit: 1 });
        const m = page.messages[0];
        if (m) id = m.from === me.userId ? m.to : m.from;
      } catch {
        // unknown user or no history: keyed by name until a message tells
      }
    }
    key = id ? `user:${id}` : `user:${who}`;
  }
  if (!client) return;
  if (key === `user:${me.userId}`) {
    toast('That is you.');
    return;
  }
  conv(key);
  openConv(key, true);
}

async function createGroup(name, open) {
  if (!client || !name.trim()) return;
  try {
    const g = await client.createGroup(name.trim(), open);
    conv(`group:${g.groupId}`, g.name);
    openConv(`group:${g.groupId}`, true);
    toast(`Group “${g.name}” created: its id is ${g.groupId}${g.open ? '; anyone can join with it' : '; invite members'}.`);
    el.groupName.value = '';
  } catch (err) {
    toast(`Cannot create the group: ${describeError(err)}`);
  }
}

async function joinGroup(gid) {
  gid = String(gid).trim();
  if (!client || !gid) return;
  try {
    const g = await client.joinGroup(gid);
    conv(`group:${g.groupId}`, g.name);
    openConv(`group:${g.groupId}`, true);
    el.groupId.value = '';
  } catch (err) {
    toast(`Cannot join group ${gid}: ${describeError(err)}`);
  }
}

async function toggleMembers() {
  const c = current;
  if (!c || c.kind !== 'group' || !client) return;
  if (!el.members.hidden) {
    show(el.members, false);
    el.membersButton.setAttribute('aria-expanded', 'false');
    return;
  }
  try {
    await showMembers(c);
  } catch (err) {
    toast(`Members unavailable: ${describeError(err)}`);
  }
}

// showMembers loads group c's members and its owner (GET /groups/:gid,
// read each time: see "Group owners") and, while c is open, shows them in
// #members. Without the owner the list shows with no marks.
async function showMembers(c) {
  const cl = client;
  const [users, g] = await Promise.all([cl.groupMembers(c.id, { limit: MEMBERS_PAGE }), cl.group(c.id).catch(() => null)]);
  if (cl !== client) return;
  setMembers(c, users);
  c.memberList = users;
  c.owner = g ? g.owner : '';
  if (current !== c) return;
  renderMembers(c);
  show(el.members, true);
  el.membersButton.setAttribute('aria-expanded', 'true');
}

// renderMembers draws #members from group c's members as last loaded: the
// owner marked and, while the user owns the group, a "Make owner" button
// on every other member.
function renderMembers(c) {
  const owning = c.owner !== '' && c.owner === me.userId;
  const items = c.memberList.map((u) => {
    const name = u.userName || u.userId;
    const li = document.createElement('li');
    li.dataset.user = u.userId;
    const dot = document.createElement('span');
    dot.className = 'presence-dot';
    dot.setAttribute('aria-hidden', 'true');
    li.append(dot, name);
    if (u.userId === c.owner) {
      li.dataset.owner = 'true';
      const mark = document.createElement('span');
      mark.className = 'owner-mark';
      mark.textContent = 'owner';
      li.append(' ', mark);
    } else if (owning) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'make-owner';
      b.textContent = 'Make owner';
      b.setAttribute('aria-label', `Make ${name} the owner`);
      b.disabled = ownerBusy;
      b.addEventListener('click', () => makeOwner(c, u));
      li.append(' ', b);
    }
    const st = applyPresence(li, u.userId);
    if (st) li.title = st.online ? 'online' : 'offline';
    return li;
  });
  el.members.replaceChildren(...items);
}

// makeOwner hands group c to its member u (POST /groups/:gid/owner), one
// hand-over at a time, and draws the members list again: the mark moves
// and the buttons go. Refused (the group changed hands meanwhile, u left
// it), the list is loaded again to show how things are.
async function makeOwner(c, u) {
  const cl = client;
  if (!cl || ownerBusy) return;
  const name = u.userName || u.userId;
  // (Disabled, the button loses the focus: put it back after.)
  const hadFocus = el.members.contains(document.activeElement);
  ownerBusy = true;
  for (const b of el.members.querySelectorAll('.make-owner')) b.disabled = true;
  let refused = false;
  try {
    const g = await cl.transferGroup(c.id, u.userId);
    c.owner = g.owner || u.userId;
    if (cl === client) toast(`${name} owns ${c.name} now.`);
  } catch (err) {
    refused = true;
    if (cl === client) toast(`Cannot hand over the group: ${describeError(err)}`);
  } finally {
    if (cl === client) ownerBusy = false; // (a log-out cleared it already)
  }
  if (cl !== client || c !== current || el.members.hidden) return;
  if (!refused) {
    renderMembers(c);
  } else {
    try {
      await showMembers(c);
    } catch {
      renderMembers(c); // as it was, the buttons enabled again
    }
  }
  // The focus back on the button (refused), or, gone, on Members.
  if (hadFocus && c === current) (el.members.querySelector(`[data-user="${CSS.escape(u.userId)}"] .make-owner`) || el.membersButton).focus();
}

async function invite(user) {
  const c = current;
  if (!c || c.kind !== 'group' || !client || !user.trim()) return;
  try {
    const ids = await client.inviteToGroup(c.id, [user.trim()]);
    toast(ids.length ? `Invited ${user.trim()}.` : `${user.trim()} is a member or invited already.`);
    el.inviteUser.value = '';
  } catch (err) {
    toast(`Cannot invite: ${describeError(err)}`);
  }
}

async function leaveCurrentGroup() {
  const c = current;
  if (!c || c.kind !== 'group' || !client) return;
  try {
    await client.leaveGroup(c.id);
    convs.delete(c.key);
    if (replying?.conv === c) cancelReply();
    current = null;
    el.messages.replaceChildren();
    el.convTitle.textContent = 'Pick a conversation';
    delete el.convTitle.dataset.conv;
    if (typingTo?.key === c.key) stopTyping();
    renderConvPresence();
    renderTyping();
    show(el.groupTools, false);
    renderBlock();
    renderMute();
    for (const x of [el.composer, el.send, el.attach]) x.disabled = true;
    renderConvList();
    closeConv();
    toast(`You left ${c.name}.`);
  } catch (err) {
    toast(`Cannot leave: ${describeError(err)}`);
  }
}

// ------------------------------------------------------------------ account

// busyAccount: a change of the password or a log-out of the other devices
// is under way (its buttons are disabled until the route answers).
let busyAccount = false;
// deleting: the client whose account deletion is under way (null: none).
let deleting = null;

function openAccount() {
  if (!client) return;
  setAccountStatus('', '');
  show(el.accountPanel, true);
  el.accountButton.setAttribute('aria-expanded', 'true');
  el.currentPassword.focus();
  refreshBlocks();
  renderMutedList(); // with the names known now
  refreshMutes();
  renderNotify(); // allowed or blocked in the browser's settings meanwhile?
}

// closeAccount hides the panel and empties its password fields; focus:
// give the focus back to the Account button.
function closeAccount(focus = true) {
  const open = !el.accountPanel.hidden;
  show(el.accountPanel, false);
  el.accountButton.setAttribute('aria-expanded', 'false');
  clearAccountFields();
  if (open && focus) el.accountButton.focus();
}

function clearAccountFields() {
  el.currentPassword.value = '';
  el.newPassword.value = '';
  el.othersPassword.value = '';
  el.deletePassword.value = '';
  el.deleteConfirm.checked = false;
  updateDeleteButton();
}

// updateDeleteButton enables "Delete my account" once the box is checked
// and a password typed, unless an account action is under way.
function updateDeleteButton() {
  el.deleteAccount.disabled = busyAccount || !el.deleteConfirm.checked || !el.deletePassword.value;
}

function setAccountStatus(text, kind) {
  el.accountStatus.textContent = text;
  if (kind) el.accountStatus.dataset.kind = kind;
  else delete el.accountStatus.dataset.kind;
}

function setAccountBusy(busy) {
  busyAccount = busy;
  el.changePassword.disabled = busy;
  el.logoutOthers.disabled = busy;
  updateDeleteButton();
  el.accountPanel.setAttribute('aria-busy', busy ? 'true' : 'false');
}

function sessionsText(n) {
  return `${n} other session${n === 1 ? '' : 's'} ended`;
}

function accountError(err) {
  if (err instanceof ApiError && err.code === Codes.Forbidden && /wrong password/i.test(err.detail || '')) return 'Wrong password.';
  return describeError(err);
}

// secureAccount runs one account action (action(c) calls the SDK and
// resolves to how many other sessions ended) with the panel's buttons
// disabled, then clears the password fields and tells the outcome (done(n)
// on success). focus: the field to focus after a failure.
async function secureAccount(action, done, focus) {
  const c = client;
  if (!c || busyAccount) return;
  setAccountBusy(true);
  setAccountStatus('Checking…', 'pending');
  try {
    const n = await action(c);
    if (c !== client) return;
    setAccountStatus(done(n), 'ok');
  } catch (err) {
    if (c !== client) return;
    setAccountStatus(accountError(err), 'error');
    focus.focus();
  } finally {
    setAccountBusy(false);
    clearAccountFields();
  }
}

function changePassword() {
  const current = el.currentPassword.value;
  const next = el.newPassword.value;
  if (!current || !next) {
    setAccountStatus('Enter your current password and a new one.', 'error');
    (current ? el.newPassword : el.currentPassword).focus();
    return;
  }
  if (next.length < 6) {
    setAccountStatus('The new password needs at least 6 characters.', 'error');
    el.newPassword.focus();
    return;
  }
  secureAccount((c) => c.changePassword(current, next), (n) => `Password changed; ${sessionsText(n)}.`, el.currentPassword);
}

function logoutOthers() {
  const password = el.othersPassword.value;
  if (!password) {
    setAccountStatus('Enter your password.', 'error');
    el.othersPassword.focus();
    return;
  }
  secureAccount((c) => c.logoutOthers(password), (n) => `Other devices logged out; ${sessionsText(n)}.`, el.othersPassword);
}

const ACCOUNT_DELETED = 'Your account was deleted.';

// deleteAccount deletes the user's account (the box checked and the
// password typed) and, done, shows the login form; a refusal shows in the
// panel and changes nothing.
async function deleteAccount() {
  const c = client;
  if (!c || busyAccount) return;
  const password = el.deletePassword.value;
  if (!el.deleteConfirm.checked) {
    setAccountStatus('Tick the box to confirm that the account goes for good.', 'error');
    el.deleteConfirm.focus();
    return;
  }
  if (!password) {
    setAccountStatus('Enter your password.', 'error');
    el.deletePassword.focus();
    return;
  }
  setAccountBusy(true);
  setAccountStatus('Deleting the account…', 'pending');
  deleting = c;
  let user;
  try {
    user = await c.deleteAccount(password);
  } catch (err) {
    setAccountBusy(false);
    clearAccountFields();
    if (c !== client) return;
    setAccountStatus(accountError(err), 'error');
    el.deletePassword.focus();
    return;
  } finally {
    if (deleting === c) deleting = null;
  }
  setAccountBusy(false);
  accountDeleted(c, user);
}

// accountDeleted ends the chat of c, whose account user was deleted: the
// kept login goes (the SDK's 'resume' with token '' removes it too, as
// Log out's close() does), and the last user name when it was this one.
// Called on the KICK "account deleted" that comes while the deletion is
// under way (the client has stopped: leaveChat's close() logs nothing
// off), and on the route's answer (the client has ended, without a
// log-off: close() waits for that end), which then finds the chat left
// already.
function accountDeleted(c, user) {
  if (client !== c && client !== null) return; // another login since
  forgetKept();
  try {
    if (localStorage.getItem(LAST_USER_KEY) === user.userName) localStorage.removeItem(LAST_USER_KEY);
  } catch {
    // storage off: nothing remembered
  }
  if (client === null) {
    // Left already (on the KICK, or Log out meanwhile): the notice only.
    el.loginError.textContent = ACCOUNT_DELETED;
    return;
  }
  leaveChat(ACCOUNT_DELETED);
  if (el.loginUser.value.trim() === user.userName) el.loginUser.value = '';
  el.loginPassword.value = '';
}

// ------------------------------------------------------------------ blocking

// blockedId is the id of the blocked user conversation c is with ('' when
// c is no such conversation); one opened by a name matches by the name.
function blockedId(c) {
  if (!c || c.kind !== 'user') return '';
  if (blocked.has(c.id)) return c.id;
  if (/^[0-9]+$/.test(c.id)) return '';
  const name = c.id.toLowerCase();
  for (const [id, n] of blocked) if (n.toLowerCase() === name) return id;
  return '';
}

function isBlocked(c) {
  return blockedId(c) !== '';
}

function blockedName(c) {
  return blocked.get(blockedId(c)) || c.name;
}

// canBlock: c is a conversation with a user the user may block (not the
// system, not oneself).
function canBlock(c) {
  return !!c && c.kind === 'user' && c.id !== '0' && c.id !== me.userId && c.id.toLowerCase() !== me.userName.toLowerCase();
}

// renderBlocks shows whom the user blocked: the open conversation and the
// account panel's list.
function renderBlocks() {
  renderBlock();
  renderBlockedList();
}

// renderBlock shows the open conversation as blocked or not: the Block
// button, the notice, and the composer (off for a blocked user).
function renderBlock() {
  const c = current;
  const can = !!client && canBlock(c);
  const on = can && isBlocked(c);
  show(el.blockButton, can);
  el.blockButton.textContent = on ? 'Unblock' : 'Block';
  el.blockButton.dataset.blocked = on ? 'true' : 'false';
  el.blockButton.setAttribute('aria-pressed', on ? 'true' : 'false');
  el.blockButton.disabled = blockBusy;
  const name = c ? blockedName(c) : '';
  if (can) el.blockButton.title = on ? `Unblock ${name}: get their messages again` : `Block ${name}: stop getting their messages`;
  el.blockNotice.textContent = on ? `You blocked ${name}. You will not get their messages.` : '';
  show(el.blockNotice, on);
  if (!c) return;
  el.composer.disabled = on;
  el.send.disabled = on;
  el.attach.disabled = on || c.kind === 'broadcast' || (c.kind === 'user' && c.id === '0');
  el.composer.placeholder = on ? `Unblock ${name} to write` : c.kind === 'broadcast' ? 'Message to everybody online' : 'Write a message…';
  if (on && typingTo?.key === c.key) stopTyping();
}

// renderBlockedList fills the account panel's list of blocked users, by name.
function renderBlockedList() {
  const list = [...blocked].sort((a, b) => a[1].localeCompare(b[1]) || a[0].localeCompare(b[0]));
  const focused = el.blockedList.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.user : '';
  const items = list.map(([id, name]) => {
    const li = document.createElement('li');
    li.dataset.user = id;
    const n = document.createElement('span');
    n.className = 'blocked-name';
    n.textContent = name || id;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'unblock';
    b.textContent = 'Unblock';
    b.setAttribute('aria-label', `Unblock ${name || id}`);
    b.disabled = blockBusy;
    b.addEventListener('click', () => unblockListed(id, name || id));
    li.append(n, b);
    return li;
  });
  el.blockedList.replaceChildren(...items);
  show(el.noBlocked, items.length === 0);
  if (focused) el.blockedList.querySelector(`[data-user="${CSS.escape(focused)}"] .unblock`)?.focus();
}

// refreshBlocks asks the route whom the user blocked (a list asked for
// before one of the page's own blocks or unblocks answered is dropped).
async function refreshBlocks() {
  const c = client;
  if (!c) return;
  const before = blockChanges;
  try {
    const list = await c.blocks();
    if (c !== client || before !== blockChanges) return;
    blocked.clear();
    for (const u of list) blocked.set(u.userId, u.userName);
    for (const u of list) learnName(u.userId, u.userName);
    renderBlocks();
  } catch (err) {
    if (c === client) toast(`Blocked users unavailable: ${describeError(err)}`);
  }
}

function blockError(err) {
  if (err instanceof ApiError) {
    switch (err.code) {
      case Codes.BadAccount:
        return 'No such user.';
      case Codes.BadArgument:
        return err.detail || 'You cannot block yourself.';
      case Codes.QuotaExceeded:
        return 'You blocked too many users: unblock some first.';
    }
  }
  return describeError(err);
}

// changeBlock blocks (on) or unblocks a user (id or name) and resolves to
// the route's {userId, userName}; null when it did nothing (no client, or
// another change under way). A refusal rejects.
async function changeBlock(user, on) {
  const cl = client;
  if (!cl || blockBusy) return null;
  blockBusy = true;
  renderBlocks();
  try {
    const u = on ? await cl.block(user) : await cl.unblock(user);
    if (cl !== client) return null;
    blockChanges++;
    if (on) blocked.set(u.userId, u.userName);
    else blocked.delete(u.userId);
    learnName(u.userId, u.userName);
    if (u.userName) mergeAlias(u.userName, u.userId); // a conversation opened by the name
    return u;
  } finally {
    if (cl === client) {
      blockBusy = false;
      renderBlocks();
    }
  }
}

// toggleBlock blocks the open conversation's user, or unblocks them.
async function toggleBlock() {
  const c = current;
  if (!client || !canBlock(c)) return;
  const on = !isBlocked(c);
  const name = on ? c.name : blockedName(c);
  // The button is disabled (and so loses the focus) while the route answers.
  const hadFocus = document.activeElement === el.blockButton;
  try {
    const u = await changeBlock(on ? c.id : blockedId(c), on);
    if (u && !on) toast(`You unblocked ${u.userName || name}.`);
  } catch (err) {
    toast(`Cannot ${on ? 'block' : 'unblock'} ${name}: ${blockError(err)}`);
  }
  if (hadFocus && !el.blockButton.hidden) el.blockButton.focus();
}

// unblockListed unblocks a user from the account panel's list.
async function unblockListed(id, name) {
  const li = el.blockedList.querySelector(`[data-user="${CSS.escape(id)}"]`);
  const next = li?.nextElementSibling || li?.previousElementSibling;
  const nextId = next?.dataset.user || '';
  const hadFocus = !!li && li.contains(document.activeElement);
  setAccountStatus(`Unblocking ${name}…`, 'pending');
  try {
    const u = await changeBlock(id, false);
    if (!u) {
      setAccountStatus('', '');
      return;
    }
    setAccountStatus(`You unblocked ${u.userName || name}.`, 'ok');
    if (hadFocus) (el.blockedList.querySelector(`[data-user="${CSS.escape(nextId)}"] .unblock`) || el.accountClose).focus();
  } catch (err) {
    setAccountStatus(`Cannot unblock ${name}: ${blockError(err)}`, 'error');
    if (hadFocus) el.blockedList.querySelector(`[data-user="${CSS.escape(id)}"] .unblock`)?.focus();
  }
}

// ------------------------------------------------------------------ mutes

// onMutes takes the SDK's list of muted conversations.
function onMutes(list) {
  mutes.clear();
  for (const m of list) {
    if (m.group) {
      mutes.set(`group:${m.group}`, m);
    } else if (m.userId) {
      mutes.set(`user:${m.userId}`, m);
      learnName(m.userId, m.userName);
    }
  }
  if (!seeded) return; // enterChat draws them
  renderConvList();
  renderMutes();
}

// muteOf is the mute in force of conversation c (null when none); one
// opened by a user's name matches by the name.
function muteOf(c) {
  if (!c || (c.kind !== 'user' && c.kind !== 'group')) return null;
  let m = mutes.get(c.key);
  if (!m && c.kind === 'user' && !/^[0-9]+$/.test(c.id)) {
    const name = c.id.toLowerCase();
    for (const x of mutes.values()) if (x.userId && x.userName.toLowerCase() === name) m = x;
  }
  return m && (m.untilMs === 0 || m.untilMs > Date.now()) ? m : null;
}

// canMute: c is a conversation the user may mute: with a user (not the
// system, not oneself) or a group.
function canMute(c) {
  return !!c && (c.kind === 'group' || canBlock(c));
}

// untilText says when mute m ends.
function untilText(m) {
  return m.untilMs ? `until ${timeText(m.untilMs)}` : 'until you unmute';
}

// renderMutes shows the muted conversations: the open one and the account
// panel's list.
function renderMutes() {
  renderMute();
  renderMutedList();
}

// renderMute shows the open conversation's Mute button (Unmute while
// muted), the duration to choose, or when the mute ends.
function renderMute() {
  const c = current;
  const can = !!client && canMute(c);
  show(el.muteTools, can);
  if (!can) return;
  const m = muteOf(c);
  const on = !!m;
  el.muteButton.textContent = on ? 'Unmute' : 'Mute';
  el.muteButton.dataset.muted = on ? 'true' : 'false';
  el.muteButton.setAttribute('aria-pressed', on ? 'true' : 'false');
  el.muteButton.disabled = muteBusy;
  el.muteButton.title = on ? `Muted ${untilText(m)}: unmute ${c.name}` : `Mute ${c.name}: its messages no longer count in the page title, unless they mention you`;
  show(el.muteFor, !on);
  el.muteFor.disabled = muteBusy;
  el.muteUntil.textContent = on ? (m.untilMs ? `🔕 until ${timeText(m.untilMs)}` : '🔕') : '';
  el.muteUntil.title = on ? `Muted ${untilText(m)}` : '';
  show(el.muteUntil, on);
}

// mutedName is how the account panel names muted conversation key.
function mutedName(key, m) {
  if (m.group) return convs.get(key)?.name || `group ${m.group}`;
  return m.userName || nameOf(m.userId);
}

// renderMutedList fills the account panel's list of muted conversations.
function renderMutedList() {
  const focused = el.mutedList.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.mute : '';
  const items = [...mutes].map(([key, m]) => {
    const name = mutedName(key, m);
    const li = document.createElement('li');
    li.dataset.mute = key;
    const n = document.createElement('span');
    n.className = 'muted-name';
    n.textContent = m.group ? `# ${name}` : name;
    const until = document.createElement('span');
    until.className = 'muted-until';
    until.textContent = untilText(m);
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'unmute';
    b.textContent = 'Unmute';
    b.setAttribute('aria-label', `Unmute ${name}`);
    b.disabled = muteBusy;
    b.addEventListener('click', () => unmuteListed(key, name));
    li.append(n, until, b);
    return li;
  });
  el.mutedList.replaceChildren(...items);
  show(el.noMuted, items.length === 0);
  if (focused) el.mutedList.querySelector(`[data-mute="${CSS.escape(focused)}"] .unmute`)?.focus();
}

// refreshMutes asks the route for the muted conversations (another
// device may have changed them); the SDK tells what changed ('mutes').
async function refreshMutes() {
  const c = client;
  if (!c) return;
  try {
    await c.mutes();
  } catch (err) {
    if (c === client) toast(`Muted conversations unavailable: ${describeError(err)}`);
  }
}

function muteError(err) {
  if (err instanceof ApiError) {
    switch (err.code) {
      case Codes.BadAccount:
        return 'No such user.';
      case Codes.BadArgument:
        return err.detail || 'The server refused it.';
      case Codes.Forbidden:
        return 'You are not in this group.';
      case Codes.QuotaExceeded:
        return 'You muted too many conversations: unmute some first.';
    }
  }
  return describeError(err);
}

// changeMute mutes (on, for seconds; 0: until unmuted) or unmutes
// conversation key ("user:<id or name>" | "group:<gid>") and resolves to
// the route's Mute; null when it did nothing (no client, or another
// change under way). The SDK's 'mutes' event updates the page. A refusal
// rejects.
async function changeMute(key, on, seconds = 0) {
  const cl = client;
  if (!cl || muteBusy) return null;
  const [kind, id] = key.split(/:(.*)/s);
  muteBusy = true;
  renderMutes();
  try {
    let m;
    if (kind === 'group') m = on ? await cl.muteGroup(id, seconds) : await cl.unmuteGroup(id);
    else m = on ? await cl.muteUser(id, seconds) : await cl.unmuteUser(id);
    if (cl !== client) return null;
    if (m.userId) {
      learnName(m.userId, m.userName);
      if (m.userName) mergeAlias(m.userName, m.userId); // a conversation opened by the name
    }
    return m;
  } finally {
    if (cl === client) {
      muteBusy = false;
      renderMutes();
    }
  }
}

// toggleMute mutes the open conversation for the chosen time, or unmutes
// it.
async function toggleMute() {
  const c = current;
  if (!client || !canMute(c)) return;
  const m = muteOf(c);
  const on = !m;
  // The button is disabled (and so loses the focus) while the route answers.
  const hadFocus = document.activeElement === el.muteButton;
  try {
    const key = !on && m.userId ? `user:${m.userId}` : c.key;
    await changeMute(key, on, on ? Number(el.muteFor.value) || 0 : 0);
  } catch (err) {
    toast(`Cannot ${on ? 'mute' : 'unmute'} ${c.name}: ${muteError(err)}`);
  }
  if (hadFocus && !el.muteButton.hidden) el.muteButton.focus();
}

// unmuteListed unmutes a conversation from the account panel's list.
async function unmuteListed(key, name) {
  const li = el.mutedList.querySelector(`[data-mute="${CSS.escape(key)}"]`);
  const next = li?.nextElementSibling || li?.previousElementSibling;
  const nextKey = next?.dataset.mute || '';
  const hadFocus = !!li && li.contains(document.activeElement);
  setAccountStatus(`Unmuting ${name}…`, 'pending');
  try {
    const done = await changeMute(key, false);
    if (!done) {
      setAccountStatus('', '');
      return;
    }
    setAccountStatus(`You unmuted ${name}.`, 'ok');
    if (hadFocus) (el.mutedList.querySelector(`[data-mute="${CSS.escape(nextKey)}"] .unmute`) || el.accountClose).focus();
  } catch (err) {
    setAccountStatus(`Cannot unmute ${name}: ${muteError(err)}`, 'error');
    if (hadFocus) el.mutedList.querySelector(`[data-mute="${CSS.escape(key)}"] .unmute`)?.focus();
  }
}

// ------------------------------------------------------------------ notifications

// notifier is the browser's Notification, or null where there is none;
// looked up each time, never kept.
function notifier() {
  return typeof window.Notification === 'function' ? window.Notification : null;
}

// notifyTurnedOff: the user turned notifications off on this browser.
function notifyTurnedOff() {
  try {
    return localStorage.getItem(NOTIFY_KEY) === 'off';
  } catch {
    return false; // storage off: nothing turned off
  }
}

// notifyState is "default" (not asked yet, or the question dismissed),
// "granted", "off" (granted, turned off here), "denied" or "unsupported".
function notifyState() {
  const N = notifier();
  if (!N) return 'unsupported';
  if (N.permission === 'granted') return notifyTurnedOff() ? 'off' : 'granted';
  return N.permission === 'denied' ? 'denied' : 'default';
}

const notifyTexts = {
  default: ['Enable notifications', 'A new message shows as a notification while this tab is in the background or another conversation is open; a muted conversation\'s only when it mentions you.'],
  granted: ['Notifications on', 'New messages show as notifications while you are not looking at their conversation.'],
  off: ['Notifications off', 'Turned off on this browser: check the box to have them again.'],
  denied: ['Notifications blocked by the browser', 'Allow notifications for this site in the browser\'s settings, then open this panel again.'],
  unsupported: ['Enable notifications', 'This browser cannot show notifications.'],
};

// renderNotify shows in the account panel whether notifications are on.
function renderNotify() {
  const s = notifyState();
  const [label, hint] = notifyTexts[s];
  el.notifyButton.dataset.state = s;
  el.notifyButton.textContent = label;
  el.notifyButton.disabled = s !== 'default' || notifyAsking;
  show(el.notifyButton, s !== 'unsupported');
  el.notifyHint.textContent = s === 'denied' && !window.isSecureContext ? 'Browsers allow notifications only on https pages.' : hint;
  show(el.notifyToggle, s === 'granted' || s === 'off');
  el.notifyOn.checked = s === 'granted';
}

// askNotify asks the browser for leave to notify (a click's answer: the
// browser asks nothing without one).
async function askNotify() {
  const N = notifier();
  if (!N || notifyAsking) return;
  notifyAsking = true;
  renderNotify();
  try {
    // A Promise in today's browsers, the callback in older ones.
    await new Promise((resolve) => {
      const p = N.requestPermission(resolve);
      if (p && typeof p.then === 'function') p.then(resolve, resolve);
    });
  } catch {
    // not asked: the state tells
  }
  notifyAsking = false;
  if (N.permission === 'granted') setNotifyOn(true); // asked for: on, whatever was turned off before
  renderNotify();
  if (!el.notifyToggle.hidden) el.notifyOn.focus(); // the button went disabled
}

// setNotifyOn turns notifications on or off on this browser.
function setNotifyOn(on) {
  try {
    if (on) localStorage.removeItem(NOTIFY_KEY);
    else localStorage.setItem(NOTIFY_KEY, 'off');
  } catch {
    // storage off: on, as ever
  }
  if (!on) closeNotes();
  renderNotify();
}

// noteBody is message m as a notification's body.
function noteBody(m) {
  return clip(m.kind === 'file' ? `📎 ${m.file?.name || 'file'}` : m.text || '', NOTE_BODY);
}

// notifyOf shows a notification of e, the entry of live message m, when
// the user wants them and cannot see it come (see "Notifications"). A
// group new to the page: once its name is in ("bob in crew", not "bob in
// group 12").
async function notifyOf(e, m) {
  if (!notifyDue(e, m)) return;
  const c = e.conv;
  if (c.nameLoad) {
    await c.nameLoad;
    if (!notifyDue(e, m)) return; // opened, read or turned off meanwhile
  }
  const N = notifier();
  const from = senderOf(e);
  const title = c.kind === 'group' ? `${from} in ${c.name}` : c.kind === 'broadcast' ? `${from} to everyone online` : from;
  const key = c.key;
  let n;
  try {
    n = new N(title, { body: noteBody(m), tag: key });
  } catch {
    return; // e.g. where only a service worker may show them
  }
  notes.set(key, n);
  const forget = () => {
    if (notes.get(key) === n) notes.delete(key);
  };
  n.onclick = () => {
    window.focus();
    forget();
    n.close();
    if (client && convs.has(key)) openConv(key, true);
  };
  n.onclose = forget;
}

// notifyDue: message m (entry e) is one to notify of now.
function notifyDue(e, m) {
  const c = e.conv;
  if (!client || !notifyLive || e.mine || m.op || notifyState() !== 'granted') return false;
  if (!convs.has(c.key) || !c.unread.includes(m)) return false; // read already (or gone)
  return !inView(c) && !client.muted(m);
}

// closeNote closes the notification of conversation key, if shown.
function closeNote(key) {
  const n = notes.get(key);
  if (!n) return;
  notes.delete(key);
  n.close();
}

function closeNotes() {
  for (const key of [...notes.keys()]) closeNote(key);
}

function autosize() {
  el.composer.style.height = 'auto';
  const h = el.composer.scrollHeight;
  el.composer.style.height = `${Math.min(h, 160)}px`;
  el.composer.style.overflowY = h > 160 ? 'auto' : 'hidden';
}

// ------------------------------------------------------------------ wiring

el.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  signIn(false);
});
el.registerButton.addEventListener('click', () => signIn(true));
el.logout.addEventListener('click', () => {
  // close() (in leaveChat) logs the session off, which revokes the token.
  forgetKept();
  leaveChat('');
});
el.accountButton.addEventListener('click', () => (el.accountPanel.hidden ? openAccount() : closeAccount()));
el.accountClose.addEventListener('click', () => closeAccount());
el.accountPanel.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') closeAccount();
});
el.changePasswordForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  changePassword();
});
el.logoutOthersForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  logoutOthers();
});
el.deleteForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  deleteAccount();
});
el.deletePassword.addEventListener('input', updateDeleteButton);
el.deleteConfirm.addEventListener('change', updateDeleteButton);
el.notifyButton.addEventListener('click', askNotify);
el.notifyOn.addEventListener('change', () => setNotifyOn(el.notifyOn.checked));
el.newChatForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  startChat(el.newChatUser.value);
  el.newChatUser.value = '';
});
el.newGroupForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  createGroup(el.groupName.value, el.groupOpen.checked);
});
el.joinGroupForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  joinGroup(el.groupId.value);
});
el.refreshOnline.addEventListener('click', () => refreshOnline());
el.back.addEventListener('click', closeConv);
el.membersButton.addEventListener('click', toggleMembers);
el.inviteForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  invite(el.inviteUser.value);
});
el.leaveGroup.addEventListener('click', leaveCurrentGroup);
el.blockButton.addEventListener('click', toggleBlock);
el.muteButton.addEventListener('click', toggleMute);
el.loadOlder.addEventListener('click', () => current && loadHistory(current));
el.scroll.addEventListener('scroll', () => {
  if (current && el.scroll.scrollTop < 40 && current.history === 'more') loadHistory(current);
});
el.composerForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  sendText();
  el.composer.focus();
});
el.composer.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    sendText();
  } else if (ev.key === 'Escape') {
    if (replying) cancelReply();
    else closeConv();
  }
});
el.replyCancel.addEventListener('click', () => cancelReply(true));
el.composer.addEventListener('input', () => {
  autosize();
  if (el.composer.value.trim()) typingDue();
  else stopTyping();
});
el.attach.addEventListener('click', () => el.fileInput.click());
el.fileInput.addEventListener('change', () => {
  const files = [...el.fileInput.files];
  el.fileInput.value = '';
  sendFiles(files);
});
document.addEventListener('visibilitychange', () => current && markConvRead(current));
document.addEventListener('click', (ev) => {
  if (palette && !palette.el.contains(ev.target)) closePalette();
});
window.addEventListener('focus', () => current && markConvRead(current));

try {
  el.loginUser.value = localStorage.getItem(LAST_USER_KEY) || '';
} catch {
  // storage off
}
setConnState('offline');
renderNotify();
const kept = readKept();
if (kept) resumeKept(kept);
else (el.loginUser.value ? el.loginPassword : el.loginUser).focus();
