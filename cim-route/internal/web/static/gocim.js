// gocim.js: the gocim client for browsers (and any JavaScript runtime with
// fetch and WebSocket). An ES module with no dependencies and no build step.
//
// Two layers, as in the Go SDK (cim-client/client):
//
//   - Api is a thin client of the route's public HTTP API: register, login,
//     online users, presence, log-off, history, uploads and downloads,
//     groups (creating, joining, inviting, leaving, kicking, renaming,
//     handing one to another member, dissolving), delayed messages,
//     password changes, logging out the user's other devices, blocking
//     users, muting conversations and deleting the account.
//     Failures the route reports are thrown as ApiError carrying the
//     route's result code. It keeps the access token of its latest login
//     and sends it as "Authorization: Bearer" where the route wants it.
//   - Client logs in through the route, opens a WebSocket to the gateway
//     the route names (server.wsUrl, subprotocol "gocim.json": every message
//     one Frame of proto/cim.proto in protojson), and keeps it alive on its
//     own: it heartbeats, notices a dead link, logs in again through the
//     route (which may pick another gateway) with jittered exponential
//     backoff, and reports what happens as events.
//
// Reliable delivery (docs/ARCHITECTURE.md, "Reliable delivery"): every
// message and receipt stored in the user's inbox carries a seq. The Client
// shows each exactly once and in seq order, live or fetched by SYNC (gaps
// are held back and filled), and acknowledges what it showed with delayed,
// cumulative ACKs. Large groups' messages ("group timelines") carry a
// groupSeq instead and get the same treatment per group (ACK.groups,
// SYNC{group}). As a sender it keeps every message in an outbox until the
// route answers RECEIPT_SENT or a final ERROR, writing it again with the
// same clientMsgId after a timeout and on every new link (the route
// deduplicates). The position (lastSeq), the outbox and recent statuses are
// kept in a Storage (localStorage by default) per route and user, so a page
// reload resumes where it was.
//
// Recall and edit (docs/ARCHITECTURE.md, "Recall, edit and delete"): a
// sender changes one of its messages, named by the route's msgId, within the
// route's --edit-window (15 minutes by default): recall()/recallInGroup()
// take it back, edit()/editInGroup() replace its text. Each is a MSG with op
// and refMsgId, sent, kept and resent like any message (own clientMsgId,
// 'status' events, an ERROR BadArgument when the route refuses it, e.g. too
// old). Recipients get it as a 'message' event of its own (own msgId and
// seq, in order after the original) with op 'recall' or 'edit' and
// refMsgId: apply it to the message refMsgId only when that message's from
// equals this one's (anybody may name any msgId), ignore an edit of a
// message already recalled, and never show it as a message. History shows
// messages as they are now: op 'edited' (text is the latest) or 'recalled'
// (no text, no file), the changes themselves left out. Api.deleteHistory()
// removes messages from the user's own history only.
//
// Replies: a new message may answer an earlier one of the same
// conversation, named by its msgId: the replyTo option of send(),
// sendGroup(), sendFile() and sendGroupFile() (or sendMsg()'s replyTo),
// checked here for the form of a route msgId (32 lowercase hex digits;
// ClientError 'bad-reply' otherwise, and on a broadcast, a recall or an
// edit: an edit keeps the original's). It goes with the MSG (Msg.reply_to),
// is kept in the outbox record (resent with it after a reconnect or a
// reload) and shows on the message's SentMessage. The route checks its
// form only and hands it to every recipient: Message.replyTo on 'message'
// events and history entries ("" for none). Show the message quoted when
// the one it names is known (one shown, or from history).
//
// Reactions: react(to, msgId, emoji) and reactInGroup(gid, msgId, emoji)
// set the user's reaction to a message of that conversation (anybody's,
// one's own too): one emoji per user and message, a later one replacing
// the earlier, '' taking it back. The emoji is 1..32 bytes of UTF-8 with
// no whitespace and no control character, the message named by its msgId
// (ClientError 'bad-reaction' otherwise, before anything is written). A
// MSG with op MSG_OP_REACT, refMsgId and the emoji as its body, sent, kept
// (across reloads too) and resent like an edit (SentMessage.op 'react',
// text the emoji; the route refuses one with an ERROR BadArgument, final).
// Others' come, in order with the messages, as 'reaction' events (never
// as 'message': not a chat line, nothing unread, never marked read; they
// are acknowledged like messages): apply them to the message msgId as
// "from's reaction is now emoji" ('' none). The copy of a reaction the
// user made on another device comes the same way with self set; one made
// by this client is not shown. History gives each message's reactions as
// they are (Message.reactions: [{emoji, count, mine}], in the order each
// emoji first came; mine: the user's own, at most one).
//
// Mentions: a new group message may name the members its text mentions
// ("@bob" as typed), the mentions option of sendGroup() and
// sendGroupFile() (or sendMsg()'s mentions): an array of at most 50
// (MAX_MENTIONS) user ids or names, each a non-empty string; ClientError
// 'bad-mentions' for anything else, and on any other message (private, a
// broadcast, a recall, an edit, a reaction), before anything is written.
// It goes with the MSG (Msg.mentions), is kept in the outbox record
// (resent with it after a reconnect or a reload) and shows on the
// message's SentMessage. The route keeps only the group's members (names
// resolved to ids; others dropped silently) and hands every member the ids:
// Message.mentions on 'message' events and history entries ([] for none),
// and Message.mentionsMe, true when they include this client's user id.
// The text is not parsed for them: mentions is the truth.
//
// Mutes: a user mutes a conversation, with a user or a group it is in,
// for a while or until it unmutes (muteUser, muteGroup, unmuteUser,
// unmuteGroup; mutes() lists them: [{userId, userName, group, untilMs}],
// untilMs 0 for no end). Messages still come and are stored as ever: the
// list only tells the app where to notify less. The route pushes nothing
// when it changes, so the Client keeps the list it last read: it reads it
// once after its first login (again after the next one if that failed),
// and then applies its own mute and unmute answers and the answers of
// mutes() calls (which learn other devices' changes); each change is a
// 'mutes' event with the list, as is the end of a mute with an end (it
// leaves the list then). muted(message) tells whether a message's
// conversation is muted per that list, and it does not mention the user:
// the app's cue to make no sound, badge or notification for it.
//
// Group owners: a group's owner (Group.owner, a member) alone kicks,
// renames and dissolves it, and hands it to another member with
// transferGroup(gid, user); it cannot leave the group before it did. The
// route pushes no change of owner (nor of name): apps learn it from
// group() and groups() when they need it.
//
// Presence and typing (docs/ARCHITECTURE.md, "Presence and typing"): the
// login names the platform (option platform, "web" by default).
// subscribe(users, groups) watches users and groups' members: its answer
// is a snapshot of their states, then changes come as 'presence' events;
// the client subscribes again after every reconnect and keeps per user the
// newest state (highest atMs), ignoring changes of users it does not
// watch. Last seen: an offline state's atMs is when the user's last
// session ended (a change: when the route saw it go; a snapshot: as the
// route recorded it, 0 when never seen or when the user blocked this one),
// which presenceOf() and the events give as lastSeen (0 when online or not
// known) and lastSeenText() words ("last seen 5 min ago"); Api.presence()
// answers it too. typing()/typingInGroup() tell a peer or a group's online members
// that the user is typing (live only: nothing stored, dropped offline);
// theirs come as 'typing' events.
//
// Several devices (route --login-policy platform): a user is logged in
// once per platform and every device gets every message of the user,
// including the copies of what it sent from its other devices (a
// 'message' with outgoing true: from is the user's own id, to the
// recipient, or group) and the READs it made there ('readelsewhere'). The
// copy of what this client sent itself (its clientMsgId) is acknowledged
// and not shown; markRead() never names the user's own messages.
//
// Staying signed in: every login answers a resume token, which logs in
// once more without the password (and answers the next one). The Client
// uses it for its own reconnects and hands each new one out as a 'resume'
// event; a page that wants to survive a reload keeps it (a credential: only
// when the user asked) and gives it to the next Client as the resumeToken
// option, which then needs no password. close() logs the session off,
// which revokes the token ('resume' with token ''); disconnect() ends the
// client the same way but leaves the session's token usable. A plain page
// reload revokes nothing. changePassword() and logoutOthers() end the
// user's other sessions and revoke every token; this session stays and
// gets a new one ('resume'), and after a password change its reconnects
// log in with the new password. deleteAccount() deletes the account and
// ends the client for good, without a log-off (the session went with the
// account): 'resume' with token '', and 'closed' (usually 'kicked' first:
// the gateway's KICK "account deleted" tends to beat the route's answer).
//
// Events (Client is an EventTarget; each event is a CustomEvent whose
// detail is the payload; client.on(type, fn) calls fn(detail)):
//
//   state        {state}            idle | connecting | online | reconnecting | stopped | closed
//   connected    {gateway}          logged in to a gateway (first time and after each reconnect)
//   disconnected {reason, gateway}  the link was lost; the client reconnects by itself
//   synced       {lastSeq}          the inbox has caught up with the server after a (re)connect
//   message      Message            a message, exactly once, in order; op 'recall' | 'edit' (with
//                                   refMsgId): a change of an earlier message, not one to show;
//                                   outgoing: the user sent it from another device; replyTo: the
//                                   msgId of the message it answers; mentions: the user ids a
//                                   group message mentions, mentionsMe: the user among them
//   reaction     Reaction event     {from, fromName, to, group, msgId (the message reacted to), emoji ('' when
//                                   taken back), reactionId (the REACT's own msgId), timestampMs, self (the
//                                   user made it on another device)}: from's reaction to msgId is now emoji
//   readelsewhere ReadElsewhere     the user read these messages of peer (or in group) on another device
//   receipt      Receipt            RECEIPT_SENT / DELIVERED / READ (once per status per message sent here)
//   status       SentMessage        one of this client's messages changed status
//   error        GatewayError       an ERROR frame: the final answer to a send (clientMsgId set) or about the link
//   retrying     GatewayError       a send was rate limited and will be sent again
//   presence     {states, snapshot} watched users' states: a SUBSCRIBE's snapshot (every watched user) or changes
//   typing       {from, fromName, to, group, stopped}  a user is typing to us or in one of our groups (stopped: no more)
//   kicked       {reason, error}    stopped for good (logged in elsewhere, login refused, account
//                                   deleted); no reconnects
//   resume       {token, expiresAt} a login (or changePassword/logoutOthers) handed out a new resume
//                                   token (expiresAt unix seconds, 0 when none); token '' when there is
//                                   none to keep any more (refused, close() logged the session off,
//                                   or deleteAccount() deleted the account)
//   mutes        {mutes}            the muted conversations as last read changed (or were read the
//                                   first time): [{userId, userName, group, untilMs}], see "Mutes"
//   closed       {}                 close(), disconnect() or deleteAccount() finished
//
// Everything runs on the page's one thread: methods may be called at any
// time, events are dispatched synchronously in the order things happen.

export const VERSION = 'gocim-js/1';

/** The WebSocket subprotocol this client speaks. */
export const SUBPROTOCOL = 'gocim.json';

/** Result codes of the route's API and of ERROR frames (proto/codes). */
export const Codes = Object.freeze({
  OK: 9000,
  RepeatLogin: 5000,
  Offline: 7000,
  NoServer: 7100,
  BadAccount: 9100,
  BadArgument: 3000,
  Unauthorized: 4010,
  WrongGateway: 4011,
  LoginTimeout: 4080,
  FrameTooLarge: 4130,
  BadFrame: 4000,
  SlowConsumer: 4290,
  Unavailable: 5030,
  Internal: 5001,
  GoingAway: 5031,
  Reconnect: 5033,
  KickedElsewhere: 4090,
  StaleSession: 4091,
  Forbidden: 4030,
  RateLimited: 4291,
  TooLarge: 4131,
  NoGroup: 9200,
  GroupFull: 9201,
  TooManyConnections: 4292,
  QuotaExceeded: 4293,
  Busy: 5032,
  StorageFull: 5070,
});

/** Defaults of the Client's options (milliseconds where it is a time). */
export const Defaults = Object.freeze({
  heartbeatMs: 60_000,
  pongTimeoutMs: 10_000,
  reconnectMinMs: 500,
  reconnectMaxMs: 30_000,
  connectTimeoutMs: 10_000,
  startTimeoutMs: 30_000,
  resendTimeoutMs: 5_000,
  resendMax: 5,
  sentKept: 1000,
  ackDelayMs: 100,
  ackIntervalMs: 500,
  ackEvery: 100,
  groupAckDelayMs: 1_000,
  syncTimeoutMs: 10_000,
  gapWaitMs: 200,
  groupGapWaitMs: 1_000,
  maxFrame: 65_536,
  httpTimeoutMs: 10_000,
});

// ---------------------------------------------------------------- errors

/** A failure the route answered with a result code (code 0: no route answer at all). */
export class ApiError extends Error {
  constructor(code, message, httpStatus = 0, retryAfter = 0, options) {
    super(apiErrorText(code, message, httpStatus), options);
    this.name = 'ApiError';
    this.code = code;
    this.httpStatus = httpStatus;
    /** Seconds the route asked to wait (429 Retry-After), 0 when none. */
    this.retryAfter = retryAfter;
    this.detail = message;
  }
}

function apiErrorText(code, message, status) {
  let msg = message || codeText(code);
  if (code === Codes.Unauthorized) {
    msg = `access token refused (${msg}): the session was replaced, logged off or expired`;
  }
  return code ? `route: ${msg} (code ${code}, HTTP ${status})` : `route: ${msg}${status ? ` (HTTP ${status})` : ''}`;
}

/** An ERROR frame from a gateway. */
export class GatewayError extends Error {
  constructor(code, text = '', clientMsgId = '') {
    super(`gateway: ${text || codeText(code)} (code ${code})`);
    this.name = 'GatewayError';
    this.code = code;
    this.text = text;
    this.clientMsgId = clientMsgId;
  }
}

/** A misuse or a state that refuses a call: reason is one of the ClientError.* strings. */
export class ClientError extends Error {
  constructor(reason, message) {
    super(`gocim: ${message || reason}`);
    this.name = 'ClientError';
    this.reason = reason;
  }
}
ClientError.CLOSED = 'closed';
ClientError.STOPPED = 'stopped';
ClientError.NOT_STARTED = 'not-started';
ClientError.STARTED = 'started';
ClientError.NOT_LOGGED_IN = 'not-logged-in';
ClientError.TOO_LARGE = 'too-large';
ClientError.NO_RECIPIENT = 'no-recipient';
ClientError.NO_GROUP = 'no-group';
ClientError.TIMEOUT = 'timeout';
ClientError.ABORTED = 'aborted';
ClientError.SUPERSEDED = 'superseded';
ClientError.NO_MESSAGE = 'no-message';

// stopError ends a link in a way reconnecting cannot fix (a KICK, an ERROR
// saying the session is not ours any more).
class StopError extends Error {
  constructor(reason, error = null) {
    super(reason);
    this.name = 'StopError';
    this.error = error;
  }
}

const codeTexts = {
  9000: 'ok', 5000: 'user already logged in', 7000: 'user offline', 7100: 'no gateway available',
  9100: 'bad account', 3000: 'bad argument', 4010: 'unauthorized', 4011: 'token issued for another gateway',
  4080: 'login timeout', 4130: 'frame too large', 4000: 'bad frame', 4290: 'slow consumer',
  5030: 'service unavailable', 5001: 'internal error', 5031: 'gateway going away',
  5033: 'messages not forwarded: log in again', 4090: 'logged in elsewhere',
  4091: 'session moved: log in again', 4030: 'forbidden', 4291: 'rate limited', 4131: 'too large',
  9200: 'no such group', 9201: 'group is full', 4292: 'too many connections', 4293: 'quota exceeded',
  5032: 'server busy', 5070: 'storage full',
};

/** A short English description of a result code. */
export function codeText(code) {
  return codeTexts[code] || 'unknown';
}

// ----------------------------------------------------------------- bytes

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export function utf8Encode(s) {
  return encoder.encode(s);
}

/** The string of UTF-8 bytes (invalid sequences become U+FFFD). */
export function utf8Decode(b) {
  return decoder.decode(b);
}

/** Standard base64 (with padding) of bytes, as protojson writes bytes fields. */
export function bytesToBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Bytes of standard or URL-safe base64, padded or not (protojson reads both). */
export function base64ToBytes(b64) {
  if (!b64) return new Uint8Array(0);
  let s = String(b64).replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, '');
  while (s.length % 4) s += '=';
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// num reads a protojson number (64-bit ones come as strings); 0 when absent.
function num(v) {
  if (v === undefined || v === null || v === '') return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

function isUserId(s) {
  return typeof s === 'string' && /^[0-9]+$/.test(s);
}

function isRef(s) {
  return typeof s === 'string' && s.length > 0 && s.length <= 128 && /^[0-9a-fA-F]+$/.test(s);
}

// isMsgId: s has the form of the route's msgIds, 32 lowercase hex digits.
function isMsgId(s) {
  return typeof s === 'string' && /^[0-9a-f]{32}$/.test(s);
}

// replyOf checks the replyTo option of a send: '' for none (absent, null
// or ''), else a msgId; anything else is ClientError 'bad-reply'.
function replyOf(v) {
  if (v === undefined || v === null || v === '') return '';
  if (!isMsgId(v)) throw new ClientError('bad-reply', `replyTo ${JSON.stringify(v)} is not a message id (32 lowercase hex digits)`);
  return v;
}

/** The most bytes (UTF-8) of a reaction's emoji. */
export const MAX_REACTION_BYTES = 32;

// A lone surrogate has no UTF-8 form (TextEncoder would write U+FFFD for
// it); whitespace and control characters as the route's Go sees them
// (unicode.IsSpace: the White_Space property; unicode.IsControl: Cc).
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const spaceOrControl = /[\p{White_Space}\p{Cc}]/u;

// reactionOf checks the emoji of a reaction: '' (taking one back), or 1..32
// bytes of UTF-8 without whitespace or control characters; anything else
// is ClientError 'bad-reaction'.
function reactionOf(v) {
  if (typeof v !== 'string') throw new ClientError('bad-reaction', `the reaction is ${v === null ? 'null' : `a ${typeof v}`}, not a string ('' takes one back)`);
  if (v === '') return '';
  if (loneSurrogate.test(v)) throw new ClientError('bad-reaction', 'reaction is not valid UTF-8 (a lone surrogate)');
  if (spaceOrControl.test(v)) throw new ClientError('bad-reaction', `reaction ${JSON.stringify(v)} has whitespace or a control character`);
  const n = utf8Encode(v).length;
  if (n > MAX_REACTION_BYTES) throw new ClientError('bad-reaction', `reaction of ${n} bytes, at most ${MAX_REACTION_BYTES}`);
  return v;
}

/** The most users one group message mentions. */
export const MAX_MENTIONS = 50;

// ------------------------------------------------------------- last seen

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// hhmm is a Date's local time of day, 24-hour "14:02".
function hhmm(d) {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * Words a last seen (unix ms, as PresenceState.lastSeen and
 * UserPresence.lastSeen give it) relative to now (unix ms, Date.now() by
 * default), in local time: "last seen just now" (under a minute, or ahead
 * of this clock), "last seen 5 min ago" (under an hour), "last seen today
 * at 14:02", "last seen yesterday at 14:02", "last seen 3 Dec at 14:02",
 * and with the year when it is another year's ("last seen 3 Dec 2025 at
 * 14:02"). '' when lastSeen is 0 (not known). The words go stale: word it
 * again as time passes.
 */
export function lastSeenText(lastSeen, now = Date.now()) {
  const ms = num(lastSeen);
  if (ms <= 0) return '';
  const ago = now - ms;
  if (ago < 60_000) return 'last seen just now';
  if (ago < 3600_000) return `last seen ${Math.floor(ago / 60_000)} min ago`;
  const d = new Date(ms);
  const today = new Date(now);
  if (d.toDateString() === today.toDateString()) return `last seen today at ${hhmm(d)}`;
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (d.toDateString() === yesterday.toDateString()) return `last seen yesterday at ${hhmm(d)}`;
  const year = d.getFullYear() === today.getFullYear() ? '' : ` ${d.getFullYear()}`;
  return `last seen ${d.getDate()} ${MONTHS[d.getMonth()]}${year} at ${hhmm(d)}`;
}

// mentionsOf checks the mentions option of a send: [] for none (absent,
// null or []), else an array of at most MAX_MENTIONS non-empty strings
// (user ids or names, passed as given: the route resolves and filters
// them); anything else is ClientError 'bad-mentions'.
function mentionsOf(v) {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ClientError('bad-mentions', `mentions is ${typeof v === 'string' ? 'a string' : `a ${typeof v}`}, not an array of user ids or names`);
  if (v.length > MAX_MENTIONS) throw new ClientError('bad-mentions', `${v.length} mentions, at most ${MAX_MENTIONS}`);
  for (const u of v) {
    if (typeof u !== 'string') throw new ClientError('bad-mentions', `a mention is ${u === null ? 'null' : `a ${typeof u}`}, not a user id or name`);
    if (u.trim() === '') throw new ClientError('bad-mentions', `mention ${JSON.stringify(u)} is empty, not a user id or name`);
  }
  return v.slice();
}

// wireMentions reads a MSG's or a /history entry's mentions: the user ids,
// [] when none.
function wireMentions(v) {
  return Array.isArray(v) ? v.map((u) => String(u ?? '')).filter(Boolean) : [];
}

// --------------------------------------------------------------- storage

/** Storage kept in memory (the Storage interface's three methods). */
export class MemoryStorage {
  constructor() {
    this._m = new Map();
  }
  getItem(k) {
    return this._m.has(k) ? this._m.get(k) : null;
  }
  setItem(k, v) {
    this._m.set(k, String(v));
  }
  removeItem(k) {
    this._m.delete(k);
  }
}

function defaultStorage() {
  try {
    const ls = globalThis.localStorage;
    if (ls) {
      const probe = '__gocim_probe__';
      ls.setItem(probe, '1');
      ls.removeItem(probe);
      return ls;
    }
  } catch {
    // Private mode, a sandboxed frame, storage turned off: keep it in memory.
  }
  return new MemoryStorage();
}

// --------------------------------------------------------------- backoff

// Backoff spaces login attempts: attempt n waits a uniformly random time in
// [min, min(max, min·2^(n+1))) (full jitter), so the thousands of clients a
// dead gateway held come back spread out, not in waves.
class Backoff {
  constructor(min, max, rand = Math.random) {
    this.min = min;
    this.max = max;
    this.rand = rand;
    this.step = 0;
  }
  next() {
    this.step = this.step <= 0 ? Math.min(this.min, this.max) : Math.min(2 * this.step, this.max);
    const ceil = Math.min(2 * this.step, this.max);
    if (ceil <= this.min) return this.min;
    return this.min + Math.floor(this.rand() * (ceil - this.min));
  }
  reset() {
    this.step = 0;
  }
}

// ------------------------------------------------------------------- Api

// mergeSignals returns a signal that aborts when any of signals does, and
// a function that releases the listeners.
function mergeSignals(signals) {
  const list = signals.filter(Boolean);
  const ctl = new AbortController();
  const offs = [];
  for (const s of list) {
    if (s.aborted) {
      ctl.abort(s.reason);
      break;
    }
    const on = () => ctl.abort(s.reason);
    s.addEventListener('abort', on, { once: true });
    offs.push(() => s.removeEventListener('abort', on));
  }
  return { signal: ctl.signal, release: () => offs.forEach((f) => f()) };
}

function abortError(signal) {
  const r = signal && signal.reason;
  if (r instanceof Error) return r;
  return new ClientError(ClientError.ABORTED, 'aborted');
}

function toUser(u) {
  return { userId: String(u?.userId ?? ''), userName: String(u?.userName ?? '') };
}

function toGroup(g) {
  return {
    groupId: String(g?.groupId ?? ''),
    name: String(g?.name ?? ''),
    owner: String(g?.owner ?? ''),
    open: g?.open === true || g?.open === 1 || g?.open === '1' || g?.open === 'true',
    members: num(g?.members),
  };
}

/**
 * A client of the route's public HTTP API. It keeps the access token of
 * its latest login and sends it as "Authorization: Bearer" on the calls
 * that act for the session. Use one Api per user.
 */
export class Api {
  /**
   * @param {string} routeUrl the route's base URL, e.g. "http://127.0.0.1:8080"; "" for the page's own origin
   * @param {{fetch?: Function, timeoutMs?: number, platform?: string}} [options]
   */
  constructor(routeUrl = '', options = {}) {
    this.base = String(routeUrl || '').replace(/\/+$/, '');
    const f = options.fetch || globalThis.fetch;
    if (typeof f !== 'function') throw new ClientError('no-fetch', 'no fetch function');
    this._fetch = options.fetch ? f : f.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? Defaults.httpTimeoutMs;
    /** The platform logins name (terminal, web, mobile, desktop, device; "" for none) unless login() is given one. */
    this.platform = String(options.platform ?? '');
    /** The bearer sent on session calls ("" for none); the latest login's. */
    this.accessToken = '';
    /** The user and session of the latest login. */
    this.userId = '';
    this.sessionId = '';
  }

  async _request(method, path, opts = {}) {
    const headers = { Accept: 'application/json', ...(opts.headers || {}) };
    let body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] = 'application/json';
    } else if (opts.body !== undefined) {
      body = opts.body;
    }
    if (opts.auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const timer = new AbortController();
    const t = timeoutMs > 0 ? setTimeout(() => timer.abort(new ClientError(ClientError.TIMEOUT, 'timeout')), timeoutMs) : null;
    const { signal, release } = mergeSignals([opts.signal, timer.signal]);
    try {
      let resp;
      try {
        resp = await this._fetch(this.base + path, { method, headers, body, signal, credentials: 'same-origin', cache: 'no-store' });
      } catch (err) {
        if (opts.signal?.aborted) throw abortError(opts.signal);
        if (timer.signal.aborted) throw new ApiError(0, `${path}: no answer within ${timeoutMs} ms`, 0, 0, { cause: err });
        throw new ApiError(0, `${path}: route unreachable (${err?.message || err})`, 0, 0, { cause: err });
      }
      if (opts.raw && resp.ok) return resp;
      let text;
      try {
        text = await resp.text();
      } catch (err) {
        throw new ApiError(0, `${path}: reading the answer: ${err?.message || err}`, resp.status, 0, { cause: err });
      }
      let env = null;
      try {
        env = JSON.parse(text);
      } catch {
        env = null;
      }
      if (!env || typeof env !== 'object' || typeof env.code !== 'number') {
        const excerpt = text.trim().slice(0, 80);
        throw new ApiError(0, `${resp.status} ${resp.statusText || ''}`.trim() + (excerpt ? `: ${excerpt}` : ''), resp.status);
      }
      if (env.code !== Codes.OK) {
        const ra = Number(resp.headers.get('Retry-After')) || 0;
        throw new ApiError(env.code, env.message || '', resp.status, ra);
      }
      return env.data ?? null;
    } finally {
      if (t) clearTimeout(t);
      release();
    }
  }

  /** Creates an account (POST /registerAccount). A taken name is ApiError code 9100 (HTTP 409). */
  async register(userName, password, { signal } = {}) {
    return toUser(await this._request('POST', '/registerAccount', { json: { userName, password }, signal }));
  }

  /**
   * Logs in (POST /login) by user name or decimal user id, naming the
   * platform (option, else the Api's; "" for none). The answer's access
   * token becomes the Api's bearer.
   */
  async login(user, password, { signal, platform } = {}) {
    const req = isUserId(user) ? { userId: user, password } : { userName: user, password };
    const pf = String(platform ?? this.platform ?? '');
    if (pf) req.platform = pf;
    return this._login(req, signal);
  }

  /**
   * Logs in again (POST /login) with the resumeToken of an earlier login
   * instead of the password: once per token, as the token's user and
   * platform; the answer carries the next. ApiError code 4010 means it is
   * used or revoked (a newer login, a log-off, a password reset, a ban):
   * log in with the password.
   */
  async resume(resumeToken, { signal } = {}) {
    return this._login({ password: '', resumeToken: String(resumeToken) }, signal);
  }

  async _login(req, signal) {
    const d = await this._request('POST', '/login', { json: req, signal });
    const s = d?.server || {};
    const res = {
      userId: String(d?.userId ?? ''),
      userName: String(d?.userName ?? ''),
      sessionId: String(d?.sessionId ?? ''),
      token: String(d?.token ?? ''),
      expiresAt: num(d?.expiresAt),
      accessToken: String(d?.accessToken ?? ''),
      accessExpiresAt: num(d?.accessExpiresAt),
      resumeToken: String(d?.resumeToken ?? ''),
      resumeExpiresAt: num(d?.resumeExpiresAt),
      server: {
        id: String(s.id ?? ''),
        host: String(s.host ?? ''),
        tcpPort: num(s.tcpPort),
        httpPort: num(s.httpPort),
        wsUrl: String(s.wsUrl ?? ''),
      },
    };
    if (!res.token) throw new ApiError(0, 'login answer without a token', 200);
    // The latest login's session is the user's current one at the route.
    this.accessToken = res.accessToken;
    this.userId = res.userId;
    this.sessionId = res.sessionId;
    return res;
  }

  /**
   * Who is online (GET /onlineUser): a page, by id, of at most `limit`
   * (default and at most 1000) after the user id `after`; a full page means
   * there may be more after its last user.
   */
  async onlineUsers({ signal, after, limit } = {}) {
    const d = await this._request('GET', '/onlineUser' + pageQuery(after, limit), { auth: true, signal });
    return Array.isArray(d) ? d.map(toUser) : [];
  }

  /**
   * Users' presence (GET /presence?users=…, ids or names, at most 100), in
   * the order asked: [{userId, userName, online, since (unix ms the session
   * came online; 0 offline), lastSeen (offline: unix ms its last session
   * ended; 0 online, never seen, or hidden from this user by a block)}]. An
   * unknown user is ApiError code 9100.
   */
  async presence(users, { signal } = {}) {
    const list = [].concat(users ?? []).map((u) => String(u).trim()).filter(Boolean);
    if (list.length === 0) return [];
    const p = new URLSearchParams({ users: list.join(',') });
    const d = await this._request('GET', `/presence?${p}`, { auth: true, signal });
    const out = Array.isArray(d?.users) ? d.users : [];
    return out.map((u) => ({ userId: String(u?.userId ?? ''), userName: String(u?.userName ?? ''), online: u?.online === true, since: num(u?.since), lastSeen: num(u?.lastSeen) }));
  }

  /**
   * Changes the user's password (POST /account/password, with the access
   * token), given the current one; next is 6 to 128 characters (else
   * ApiError 3000). Every other session of the user ends (kicked: "password
   * changed") and every resume token is revoked; this session stays and
   * gets a new one. Resolves to {sessionsEnded, resumeToken,
   * resumeExpiresAt} (the token "" and 0 when the route hands none out). A
   * wrong current password is ApiError 4030 (Codes.Forbidden, HTTP 403);
   * attempts count as logins (429 / 4291 when too many).
   */
  async changePassword(current, next, { signal } = {}) {
    return this._secure('/account/password', { password: String(current ?? ''), newPassword: String(next ?? '') }, signal);
  }

  /**
   * Ends every other session of the user (kicked: "logged out by another
   * device") and revokes every resume token, the remembered logins of
   * devices offline now too, given the password (POST
   * /account/logout-others, with the access token). This session stays
   * and gets a new token. Resolves and fails as changePassword().
   */
  async logoutOthers(password, { signal } = {}) {
    return this._secure('/account/logout-others', { password: String(password ?? '') }, signal);
  }

  /**
   * Deletes the user's own account for good, given its password (POST
   * /account/delete, with the access token): its messages, history,
   * remembered logins, blocks and delayed messages go; each group it owns
   * passes to the member with the lowest user id (the longest registered;
   * one with no other member is dissolved) and it leaves every group;
   * every session of the user, this one too, ends (kicked: "account
   * deleted") and the name can be registered again, as a new account.
   * Resolves to the account deleted, {userId, userName}. A wrong password
   * is ApiError 4030 (Codes.Forbidden, HTTP 403), as is an account an
   * external authenticator (route --auth) manages; attempts count as
   * logins (429 / 4291 when too many).
   */
  async deleteAccount(password, { signal } = {}) {
    return toUser(await this._request('POST', '/account/delete', { json: { password: String(password ?? '') }, auth: true, signal }));
  }

  async _secure(path, json, signal) {
    const d = await this._request('POST', path, { json, auth: true, signal });
    return { sessionsEnded: num(d?.sessionsEnded), resumeToken: String(d?.resumeToken ?? ''), resumeExpiresAt: num(d?.resumeExpiresAt) };
  }

  /** Logs the session off at once (POST /offLine): the route forgets it and the gateway closes it. */
  async offline({ signal } = {}) {
    const body = {};
    if (this.userId) body.userId = this.userId;
    if (this.sessionId) body.sessionId = this.sessionId;
    await this._request('POST', '/offLine', { json: body, auth: true, signal });
  }

  /**
   * One page of history (GET /history), newest first. q: {peer, group,
   * keyword, before (the previous page's next), limit (1..100)}.
   */
  async history(q = {}, { signal } = {}) {
    const p = new URLSearchParams();
    for (const k of ['peer', 'group', 'keyword', 'before']) {
      if (q[k]) p.set(k, String(q[k]));
    }
    if (q.limit > 0) p.set('limit', String(q.limit));
    const qs = p.toString();
    const d = await this._request('GET', '/history' + (qs ? `?${qs}` : ''), { auth: true, signal });
    const me = this.userId;
    const msgs = Array.isArray(d?.messages) ? d.messages.map((h) => historyMessage(h, me)) : [];
    return { messages: msgs, next: String(d?.next ?? '') };
  }

  /**
   * History that follows the cursor until it has n messages (default
   * q.limit or 20), the history ends, or it made 10 requests. A page may
   * be short or empty and still have a next cursor.
   */
  async historyFill(q = {}, n = 0, { signal } = {}) {
    if (!(n > 0)) n = q.limit > 0 ? q.limit : 20;
    const out = { messages: [], next: '' };
    let before = q.before || '';
    for (let i = 0; i < 10; i++) {
      const page = await this.history({ ...q, before, limit: Math.min(n - out.messages.length, 100) }, { signal });
      out.messages.push(...page.messages);
      out.next = page.next;
      if (!page.next || page.next === before || out.messages.length >= n) break;
      before = page.next;
    }
    return out;
  }

  /**
   * Removes messages (msgIds) from this user's own history (POST
   * /history/delete): history leaves them out from now on; nobody else's
   * changes and no device is told. More than 100 ids go in several calls;
   * an id not in the history is harmless. No id at all is ClientError
   * 'no-message'. Calls count against the route's /history rate.
   */
  async deleteHistory(msgIds, { signal } = {}) {
    const ids = [].concat(msgIds ?? []).filter(Boolean).map(String);
    if (ids.length === 0) throw new ClientError(ClientError.NO_MESSAGE, 'no message id');
    for (let i = 0; i < ids.length; i += MAX_HISTORY_DELETE) {
      await this._request('POST', '/history/delete', { json: { msgIds: ids.slice(i, i + MAX_HISTORY_DELETE) }, auth: true, signal });
    }
  }

  /**
   * Stores a file at the route (POST /upload) and returns {ref, name, size,
   * contentType}. A refusal for want of room is ApiError code 4293 (quota)
   * or 5070 (storage full); above the route's limit, HTTP 413.
   */
  async upload(blob, { name, contentType, signal } = {}) {
    const fileName = name || blob?.name || 'file';
    const type = contentType || blob?.type || 'application/octet-stream';
    const size = blob?.size ?? 0;
    const p = new URLSearchParams({ name: fileName });
    const d = await this._request('POST', `/upload?${p}`, {
      body: blob,
      headers: { 'Content-Type': type },
      auth: true,
      signal,
      // Big files take longer: at least 32 KiB/s on top of the usual bound.
      timeoutMs: this.timeoutMs > 0 ? this.timeoutMs + Math.ceil(size / 32) : 0,
    });
    if (!d?.ref) throw new ApiError(0, '/upload: answer without a ref', 200);
    return { ref: String(d.ref), name: String(d.name ?? fileName), size: num(d.size), contentType: String(d.contentType ?? type) };
  }

  /** Fetches a stored file (GET /files/<ref>) as a Blob. */
  async download(ref, { signal } = {}) {
    if (!isRef(ref)) throw new ClientError('bad-ref', `${JSON.stringify(ref)} is not a file ref`);
    const resp = await this._request('GET', `/files/${ref}`, { auth: true, raw: true, signal, timeoutMs: 0 });
    return resp.blob();
  }

  /** Creates a group (POST /groups); the caller becomes owner and first member. */
  async createGroup(name, open = false, { signal } = {}) {
    return toGroup(await this._request('POST', '/groups', { json: { name, open: !!open }, auth: true, signal }));
  }

  /** The groups the caller is a member of (GET /groups). */
  async groups({ signal } = {}) {
    const d = await this._request('GET', '/groups', { auth: true, signal });
    return Array.isArray(d) ? d.map(toGroup) : [];
  }

  /** One group (GET /groups/:gid): members, or anyone for an open group. */
  async group(gid, { signal } = {}) {
    return toGroup(await this._request('GET', groupPath(gid, ''), { auth: true, signal }));
  }

  /**
   * A group's members (GET /groups/:gid/members), for members: a page, by
   * id, of at most `limit` (default and at most 1000) after the user id
   * `after`; a full page means there may be more.
   */
  async groupMembers(gid, { signal, after, limit } = {}) {
    const d = await this._request('GET', groupPath(gid, '/members') + pageQuery(after, limit), { auth: true, signal });
    return Array.isArray(d) ? d.map(toUser) : [];
  }

  /** Joins an open group, or one the caller was invited to (POST /groups/:gid/join). */
  async joinGroup(gid, { signal } = {}) {
    return toGroup(await this._request('POST', groupPath(gid, '/join'), { auth: true, signal }));
  }

  /** Invites users (ids or names) and returns the ids invited (POST /groups/:gid/invite). */
  async inviteToGroup(gid, users, { signal } = {}) {
    const d = await this._request('POST', groupPath(gid, '/invite'), { json: { users: [].concat(users) }, auth: true, signal });
    return Array.isArray(d?.invited) ? d.invited.map(String) : [];
  }

  /**
   * Leaves a group (POST /groups/:gid/leave); the owner cannot (403): it
   * hands the group to a member first (transferGroup()) or dissolves it.
   */
  async leaveGroup(gid, { signal } = {}) {
    await this._request('POST', groupPath(gid, '/leave'), { auth: true, signal });
  }

  /** Removes a member (POST /groups/:gid/kick); owner only. */
  async kickFromGroup(gid, user, { signal } = {}) {
    await this._request('POST', groupPath(gid, '/kick'), { json: { userId: user }, auth: true, signal });
  }

  /** Renames a group (POST /groups/:gid/rename); owner only. */
  async renameGroup(gid, name, { signal } = {}) {
    return toGroup(await this._request('POST', groupPath(gid, '/rename'), { json: { name }, auth: true, signal }));
  }

  /**
   * Hands a group to another of its members, by user id or name (POST
   * /groups/:gid/owner {userId}); owner only. Resolves to the group, its
   * owner that member now (naming oneself changes nothing). A caller not
   * the owner, or a user not a member, is ApiError 4030 (HTTP 403); an
   * unknown user 9100; no user at all is ClientError 'no-recipient', no
   * group 'no-group' (nothing sent). Nobody is told live: other members
   * learn the owner from group() or groups().
   */
  async transferGroup(gid, user, { signal } = {}) {
    const path = groupPath(gid, '/owner');
    const u = blockedUser(user);
    return toGroup(await this._request('POST', path, { json: { userId: u }, auth: true, signal }));
  }

  /** Deletes a group (POST /groups/:gid/dissolve); owner only. */
  async dissolveGroup(gid, { signal } = {}) {
    await this._request('POST', groupPath(gid, '/dissolve'), { auth: true, signal });
  }

  /** How many members received and read each of the caller's group messages (GET /groups/receipts). */
  async groupReceipts(msgIds, { signal } = {}) {
    const ids = [].concat(msgIds).filter(Boolean);
    const out = {};
    for (let i = 0; i < ids.length; i += 100) {
      const p = new URLSearchParams({ msgIds: ids.slice(i, i + 100).join(',') });
      const d = await this._request('GET', `/groups/receipts?${p}`, { auth: true, signal });
      for (const [id, c] of Object.entries(d || {})) out[id] = { delivered: num(c?.delivered), read: num(c?.read) };
    }
    return out;
  }

  /** A private message the route sends after delaySeconds (POST /delay): {delayId, dueAt (unix ms)}. */
  async delay(to, text, delaySeconds, { signal } = {}) {
    const d = await this._request('POST', '/delay', { json: { to, msg: text, delaySeconds }, auth: true, signal });
    return { delayId: String(d?.delayId ?? ''), dueAt: num(d?.dueAt) };
  }

  /**
   * The users the caller blocked (GET /blocks), by user id: [{userId,
   * userName}], at most 1000.
   */
  async blocks({ signal } = {}) {
    const d = await this._request('GET', '/blocks', { auth: true, signal });
    return Array.isArray(d?.users) ? d.users.map(toUser) : [];
  }

  /**
   * Blocks a user (POST /blocks; id or name): their private messages to
   * the caller are answered SENT to them but never stored nor delivered,
   * the caller's to them are refused (an 'error' event, GatewayError 4030),
   * and typing between the two is dropped; groups are unaffected. Resolves
   * to the user blocked, {userId, userName}; one blocked already is no
   * error. An unknown user is ApiError 9100, oneself 3000, more than 1000
   * blocked 4293 (HTTP 429). No user at all is ClientError 'no-recipient'.
   */
  async block(user, { signal } = {}) {
    const u = blockedUser(user);
    return toUser(await this._request('POST', '/blocks', { json: { user: u }, auth: true, signal }));
  }

  /**
   * Unblocks a user (DELETE /blocks/:user; id or name) and resolves to
   * {userId, userName}; one not blocked is no error. An unknown user is
   * ApiError 9100.
   */
  async unblock(user, { signal } = {}) {
    const u = blockedUser(user);
    return toUser(await this._request('DELETE', `/blocks/${encodeURIComponent(u)}`, { auth: true, signal }));
  }

  /**
   * The conversations the caller muted that are in force (GET /mutes;
   * expired ones left out): users first, then groups, each in id order, at
   * most 1000. Each is a Mute, {userId, userName, group, untilMs}: a user's
   * has userId and userName and group '', a group's group and the user
   * fields ''; untilMs is when it ends (unix ms), 0 when it lasts until
   * unmuted.
   */
  async mutes({ signal } = {}) {
    const d = await this._request('GET', '/mutes', { auth: true, signal });
    return Array.isArray(d?.mutes) ? d.mutes.map(toMute) : [];
  }

  /**
   * Mutes the caller's conversation with a user (POST /mutes; id or name)
   * for seconds (rounded up to whole seconds; 0 or absent: until unmuted,
   * as is more than 366 days). Messages still come and are stored as ever:
   * the list only tells apps where to notify less. Muting again replaces
   * the end. Resolves to the Mute, {userId, userName, group: '', untilMs}.
   * Oneself is ApiError 3000, an unknown user 9100, more than 1000 mutes
   * 4293 (HTTP 429); no user at all is ClientError 'no-recipient', seconds
   * negative or not a number ClientError 'bad-duration' (nothing sent).
   */
  async muteUser(user, seconds = 0, { signal } = {}) {
    const u = blockedUser(user);
    return toMute(await this._request('POST', '/mutes', { json: muteBody({ user: u }, seconds), auth: true, signal }));
  }

  /**
   * muteUser() for a group the caller is in (POST /mutes {group}): resolves
   * to {userId: '', userName: '', group, untilMs}. A group it is not in is
   * ApiError 4030, one that does not exist 9200 (HTTP 404); no group is
   * ClientError 'no-group'.
   */
  async muteGroup(gid, seconds = 0, { signal } = {}) {
    const g = mutedGroup(gid);
    return toMute(await this._request('POST', '/mutes', { json: muteBody({ group: g }, seconds), auth: true, signal }));
  }

  /**
   * Unmutes the conversation with a user (DELETE /mutes?user=; id or name)
   * and resolves to it as a Mute with untilMs 0; one not muted is no
   * error. The errors are muteUser()'s.
   */
  async unmuteUser(user, { signal } = {}) {
    const u = blockedUser(user);
    return { ...toMute(await this._request('DELETE', `/mutes?${new URLSearchParams({ user: u })}`, { auth: true, signal })), untilMs: 0 };
  }

  /** Unmutes a group (DELETE /mutes?group=); as unmuteUser(), the errors muteGroup()'s. */
  async unmuteGroup(gid, { signal } = {}) {
    const g = mutedGroup(gid);
    return { ...toMute(await this._request('DELETE', `/mutes?${new URLSearchParams({ group: g })}`, { auth: true, signal })), untilMs: 0 };
  }
}

// blockedUser is the user (id or name) a block, an unblock, a mute, an
// unmute or a group's hand-over names.
function blockedUser(user) {
  const u = String(user ?? '').trim();
  if (!u) throw new ClientError(ClientError.NO_RECIPIENT, 'no user');
  return u;
}

// mutedGroup is the group a mute or an unmute names.
function mutedGroup(gid) {
  const g = String(gid ?? '').trim();
  if (!g) throw new ClientError(ClientError.NO_GROUP, 'no group');
  return g;
}

// muteBody is the body of POST /mutes for who ({user} or {group}) and
// seconds: forSeconds rounded up (a positive fraction never becomes 0,
// which would mean until unmuted), left out for 0 or none; anything but a
// number >= 0 is ClientError 'bad-duration'.
function muteBody(who, seconds) {
  if (seconds === undefined || seconds === null) return who;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    const what = typeof seconds === 'number' ? String(seconds) : `a ${typeof seconds}`;
    throw new ClientError('bad-duration', `mute for ${what} seconds: want a number >= 0 (0: until unmuted)`);
  }
  const n = Math.ceil(seconds);
  return n > 0 ? { ...who, forSeconds: n } : who;
}

function toMute(m) {
  return { userId: String(m?.userId ?? ''), userName: String(m?.userName ?? ''), group: String(m?.group ?? ''), untilMs: num(m?.untilMs) };
}

/** The most msgIds one POST /history/delete takes (Api.deleteHistory sends more in several). */
const MAX_HISTORY_DELETE = 100;

/** The query of a listing's page: '' for the first page of the default size. */
function pageQuery(after, limit) {
  const q = new URLSearchParams();
  if (after) q.set('after', String(after));
  if (limit) q.set('limit', String(limit));
  const qs = q.toString();
  return qs ? `?${qs}` : '';
}

function groupPath(gid, suffix) {
  if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
  return `/groups/${encodeURIComponent(gid)}${suffix}`;
}

// ---------------------------------------------------------------- messages

function kindOf(k) {
  return k === 'KIND_FILE' || k === 1 || k === '1' || k === 'file' || k === 'FILE' ? 'file' : 'text';
}

function fileOf(f) {
  if (!f) return null;
  return { name: String(f.name ?? ''), size: num(f.size), contentType: String(f.contentType ?? ''), ref: String(f.ref ?? '') };
}

// A MSG's op as the application sees it: '' for a new message, 'recall' or
// 'edit' for a change of refMsgId, 'react' for a reaction to it (never a
// 'message' event: see 'reaction'); an op this client does not know keeps
// its wire name (still not a new message).
const wireOps = { MSG_OP_NEW: '', 0: '', MSG_OP_RECALL: 'recall', 1: 'recall', MSG_OP_EDIT: 'edit', 2: 'edit', MSG_OP_REACT: 'react', 3: 'react' };
const opNames = { recall: 'MSG_OP_RECALL', edit: 'MSG_OP_EDIT', react: 'MSG_OP_REACT' };

// knownOp: op is one this client sends ('recall', 'edit', 'react').
function knownOp(op) {
  return typeof op === 'string' && Object.prototype.hasOwnProperty.call(opNames, op);
}

function opOf(v) {
  if (v === undefined || v === null || v === '') return '';
  const k = String(v);
  return Object.prototype.hasOwnProperty.call(wireOps, k) ? wireOps[k] : k;
}

// wireMessage turns a protojson Msg into the Message the application sees
// (me: this client's user id, for mentionsMe).
function wireMessage(m, me = '') {
  let kind = kindOf(m.kind);
  const file = fileOf(m.file);
  if (file && kind === 'text') kind = 'file';
  const bytes = base64ToBytes(m.body);
  return {
    msgId: String(m.msgId ?? ''),
    clientMsgId: String(m.clientMsgId ?? ''),
    seq: num(m.seq),
    groupSeq: num(m.groupSeq),
    from: String(m.from ?? ''),
    fromName: String(m.fromName ?? ''),
    to: String(m.to ?? ''),
    group: String(m.group ?? ''),
    broadcast: m.broadcast === true,
    kind,
    text: kind === 'text' ? utf8Decode(bytes) : '',
    data: kind === 'file' && bytes.length > 0 ? bytes : null,
    file,
    timestampMs: num(m.timestampMs),
    op: opOf(m.op),
    refMsgId: String(m.refMsgId ?? ''),
    replyTo: String(m.replyTo ?? ''),
    reactions: [],
    ...mentionFields(m.mentions, me),
    outgoing: false,
  };
}

// mentionFields are a Message's mentions and mentionsMe.
function mentionFields(v, me) {
  const mentions = wireMentions(v);
  return { mentions, mentionsMe: !!me && mentions.includes(me) };
}

// wireReaction turns a REACT MSG (already a Message) into the 'reaction'
// event's detail; self: the user made it on another device.
function wireReaction(m, self) {
  return {
    from: m.from,
    fromName: m.fromName,
    to: m.to,
    group: m.group,
    msgId: m.refMsgId,
    emoji: m.kind === 'text' ? m.text : '',
    reactionId: m.msgId,
    timestampMs: m.timestampMs,
    self,
  };
}

// reactionsOf reads a /history entry's reactions: [{emoji, count, mine}]
// in the route's order (each emoji as it first came); [] when none.
function reactionsOf(v) {
  if (!Array.isArray(v)) return [];
  const out = [];
  for (const r of v) {
    const emoji = String(r?.emoji ?? '');
    const count = num(r?.count);
    if (emoji && count > 0) out.push({ emoji, count, mine: r?.mine === true });
  }
  return out;
}

// historyMessage turns a /history entry into a Message: body is the text,
// or a file's inline bytes in base64; a timeline entry has groupSeq (its
// seq is the group's, not the inbox's); me: the viewer's user id.
function historyMessage(h, me = '') {
  let kind = kindOf(h.kind);
  const file = fileOf(h.file);
  if (file && kind === 'text') kind = 'file';
  const groupSeq = num(h.groupSeq);
  const body = String(h.body ?? '');
  let data = null;
  if (kind === 'file' && body) {
    try {
      data = base64ToBytes(body);
    } catch {
      data = null;
    }
  }
  return {
    msgId: String(h.msgId ?? ''),
    clientMsgId: '',
    seq: groupSeq > 0 ? 0 : num(h.seq),
    groupSeq,
    from: String(h.from ?? ''),
    fromName: String(h.fromName ?? ''),
    to: String(h.to ?? ''),
    group: String(h.group ?? ''),
    broadcast: false,
    kind,
    text: kind === 'text' ? body : '',
    data,
    file,
    timestampMs: num(h.timestampMs),
    // the message's state: 'edited' (text is the latest), 'recalled' (no text, no file)
    op: String(h.op ?? ''),
    refMsgId: '',
    replyTo: String(h.replyTo ?? ''),
    // the reactions to it now (none once recalled)
    reactions: String(h.op ?? '') === 'recalled' ? [] : reactionsOf(h.reactions),
    ...mentionFields(h.mentions, me),
    outgoing: false,
  };
}

const statusNames = { RECEIPT_SENT: 'sent', RECEIPT_DELIVERED: 'delivered', RECEIPT_READ: 'read', 1: 'sent', 2: 'delivered', 3: 'read' };
// Later statuses are better; a message's status only rises.
const statusRank = { pending: 1, failed: 2, sent: 3, delivered: 4, read: 5 };

function wireReceipt(rc, item) {
  return {
    status: statusNames[rc.status] || '',
    msgId: String((item ? item.msgId : rc.msgId) ?? ''),
    clientMsgId: String((item ? item.clientMsgId : rc.clientMsgId) ?? ''),
    by: String(rc.by ?? ''),
    timestampMs: num(rc.timestampMs),
    seq: num(rc.seq),
    group: String(rc.group ?? ''),
    count: num(rc.count),
  };
}

// wireReadElsewhere turns a RECEIPT_READ the user made on another device
// into the 'readelsewhere' event's detail.
function wireReadElsewhere(rc) {
  const items = Array.isArray(rc.items) ? rc.items : [];
  const msgIds = items.length ? items.map((it) => String(it?.msgId ?? '')).filter(Boolean) : rc.msgId ? [String(rc.msgId)] : [];
  return {
    peer: String(rc.peer ?? ''),
    group: String(rc.group ?? ''),
    msgIds,
    timestampMs: num(rc.timestampMs),
    seq: num(rc.seq),
  };
}

function wireError(e) {
  return new GatewayError(num(e?.code), String(e?.text ?? ''), String(e?.clientMsgId ?? ''));
}

// wirePresenceState turns a protojson PresenceState into the PresenceState
// the application sees: offline, atMs is the last seen (0 when not known).
function wirePresenceState(s) {
  const online = s?.online === true;
  const atMs = num(s?.atMs);
  return {
    userId: String(s?.userId ?? ''),
    userName: String(s?.userName ?? ''),
    online,
    platform: String(s?.platform ?? ''),
    atMs,
    lastSeen: online ? 0 : atMs,
  };
}

function wireTyping(t) {
  return {
    from: String(t?.from ?? ''),
    fromName: String(t?.fromName ?? ''),
    to: String(t?.to ?? ''),
    group: String(t?.group ?? ''),
    stopped: t?.stopped === true,
  };
}

// Protobuf sizes, to refuse a message that does not fit in one frame
// before the gateway does.
function varintSize(n) {
  let s = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}
function fieldSize(len) {
  return len > 0 ? 1 + varintSize(len) + len : 0;
}
// strSize is a string field's size; tag: its key's bytes (2 from field 16 on).
function strSize(s, tag = 1) {
  return s ? fieldSize(utf8Encode(s).length) + tag - 1 : 0;
}
function msgFrameSize(m, bodyLen) {
  let n = strSize(m.clientMsgId) + strSize(m.to) + strSize(m.group) + fieldSize(bodyLen) + strSize(m.refMsgId) + strSize(m.replyTo, 2);
  for (const u of m.mentions || []) n += fieldSize(utf8Encode(u).length) + 1; // field 18: a key of 2 bytes
  if (m.kind === 'file') n += 2;
  if (m.op) n += 2;
  if (m.broadcast) n += 2;
  if (m.file) {
    const f = strSize(m.file.name) + (m.file.size ? 1 + varintSize(m.file.size) : 0) + strSize(m.file.contentType) + strSize(m.file.ref);
    n += 1 + varintSize(f) + f;
  }
  return 2 + 1 + varintSize(n) + n;
}

// ------------------------------------------------------------------ inbox

// The inbox tracks the seqs this client has shown so that every stored MSG
// and RECEIPT is shown exactly once and in seq order (a port of the Go
// SDK's inbox.go; see its comments for the reasoning). last is the highest
// seq up to which everything was shown (or is known to be gone); an entry
// at or below it is a duplicate, last+1 is shown with every held-back
// successor, anything beyond is held back and one SYNC after=last fills the
// gap. At most one SYNC is outstanding; one unanswered for the sync timeout
// is asked again. When seqs go back (the server lost its tail) it rewinds.
const REWIND_SPAN = 1024;
const INBOX_BUFFER = 1024;

class Stamps {
  constructor() {
    this.seq = new Array(64).fill(0);
    this.ts = new Array(64).fill(0);
    this.next = 0;
  }
  put(seq, f) {
    const ts = f.type === 'RECEIPT' ? num(f.receipt?.timestampMs) : num(f.msg?.timestampMs);
    this.putTs(seq, ts);
  }
  putTs(seq, ts) {
    this.seq[this.next] = seq;
    this.ts[this.next] = ts;
    this.next = (this.next + 1) % this.seq.length;
  }
  at(seq) {
    if (seq === 0) return 0;
    for (let i = 0; i < this.seq.length; i++) if (this.seq[i] === seq) return this.ts[i];
    return 0;
  }
}

class Inbox {
  // gapWait: how long a gap may stay open before a SYNC asks for it (0: at
  // once); pushes are reordered now and then and the missing entry usually
  // follows within milliseconds (the Go SDK's Config.GapWait).
  constructor(maxHeld = INBOX_BUFFER, gapWait = 0) {
    this.gapWait = Math.max(gapWait, 0);
    this.gapSince = 0;
    this.last = 0;
    this.held = new Map();
    this.maxHeld = maxHeld;
    this.dropped = 0;
    this.syncing = false;
    this.syncSince = 0;
    this.rewound = false;
    this.stamps = new Stamps();
  }

  position() {
    return [this.last, this.stamps.at(this.last)];
  }

  restore(last, ts) {
    this.last = last;
    if (ts) this.stamps.putTs(last, ts);
  }

  rewind(to, now) {
    if (to >= this.last) return false;
    this.last = to;
    this.rewound = true;
    if (this.dropped !== 0 && this.dropped <= this.last) this.dropped = 0;
    this.syncing = false;
    return this.request(now);
  }

  // The gateway asks for everything after LOGIN.lastSeq on the client's
  // behalf: a SYNC is outstanding already.
  linkUp(now) {
    this.syncing = true;
    this.syncSince = now;
    this.gapSince = 0;
  }

  add(seq, f, now) {
    if (seq <= this.last) return { show: [], sync: false };
    if (seq === this.last + 1) {
      const show = [f];
      this.last = seq;
      this.stamps.put(seq, f);
      this._flush(show);
      return { show, sync: false };
    }
    if (!this.held.has(seq)) this._hold(seq, f);
    return { show: [], sync: this._gap(now) };
  }

  // A gap: ask at once without a gap wait or when entries were dropped for
  // space; otherwise expire asks when it is still open after gapWait.
  _gap(now) {
    if (this.gapWait <= 0 || this.dropped !== 0) return this.request(now);
    if (!this.gapSince) this.gapSince = now;
    return false;
  }

  _hold(seq, f) {
    if (this.held.size >= this.maxHeld) {
      let top = seq;
      for (const s of this.held.keys()) top = Math.max(top, s);
      if (this.dropped === 0 || top < this.dropped) this.dropped = top;
      if (top === seq) return;
      this.held.delete(top);
    }
    this.held.set(seq, f);
  }

  request(now) {
    if (this.syncing) return false;
    this.syncing = true;
    this.syncSince = now;
    this.gapSince = 0;
    return true;
  }

  answer(s, now) {
    const prev = this.last;
    this.syncing = false;
    const after = num(s.afterSeq);
    const head = num(s.headSeq);
    const lastSeq = num(s.lastSeq);
    if (head < after && head < this.last) {
      return { show: [], sync: this.rewind(Math.max(head, REWIND_SPAN) - REWIND_SPAN, now) };
    }
    const ts = num(s.afterTsMs);
    if (ts !== 0 && after <= this.last) {
      const mine = this.stamps.at(after);
      if (mine !== 0 && mine !== ts) {
        return { show: [], sync: this.rewind(Math.max(after, REWIND_SPAN) - REWIND_SPAN, now) };
      }
    }
    if (this.rewound) {
      if (after > this.last) {
        this.syncing = true; // the answer to a SYNC asked before the rewind
        return { show: [], sync: false };
      }
      this.rewound = false;
    }
    // from_acked: the server started after what the user acknowledged.
    if (after > this.last) {
      for (const seq of [...this.held.keys()]) if (seq <= after) this.held.delete(seq);
      this.last = after;
    }
    const show = [];
    let first = num(s.firstSeq);
    if (first === 0 && lastSeq === 0 && head > 0) first = head + 1;
    if (first > this.last + 1) this._showHeld(show, first - 1);
    let covered = lastSeq;
    if (this.dropped !== 0 && this.dropped <= covered) covered = this.dropped - 1;
    if (covered > this.last) this._showHeld(show, covered);
    this._flush(show);
    if (this.dropped !== 0 && this.dropped <= this.last) this.dropped = 0;
    const more = this.held.size > 0 || head > this.last;
    let sync = false;
    if (more) {
      if (this.last > prev || lastSeq > 0) {
        sync = this.request(now);
      } else {
        // No progress: asking again at once could spin; expire asks later.
        this.syncing = true;
        this.syncSince = now;
      }
    }
    return { show, sync };
  }

  _showHeld(show, upTo) {
    const seqs = [...this.held.keys()].filter((s) => s <= upTo).sort((a, b) => a - b);
    for (const seq of seqs) {
      const f = this.held.get(seq);
      show.push(f);
      this.stamps.put(seq, f);
      this.held.delete(seq);
    }
    this.last = upTo;
  }

  _flush(show) {
    for (;;) {
      const f = this.held.get(this.last + 1);
      if (!f) {
        if (this.held.size === 0) this.gapSince = 0;
        return;
      }
      this.held.delete(this.last + 1);
      this.last++;
      this.stamps.put(this.last, f);
      show.push(f);
    }
  }

  expire(now, timeout) {
    if (!this.syncing) {
      if (!this.gapSince) return { sync: false, next: 0 };
      const due = this.gapSince + this.gapWait;
      if (now < due) return { sync: false, next: due };
      this.syncing = true;
      this.syncSince = now;
      this.gapSince = 0;
      return { sync: true, next: now + timeout };
    }
    const deadline = this.syncSince + timeout;
    if (now < deadline) return { sync: false, next: deadline };
    this.syncSince = now;
    return { sync: true, next: now + timeout };
  }
}

// ------------------------------------------------------------------- acks

// Acks batches cumulative ACKs: one goes out delay after the first
// entry it covers was shown, or at once when `every` entries wait.
// Each batch's waits are scaled by a factor spread() draws for it (0.5–1.5
// in a Client): clients that connected or got a message together would
// otherwise acknowledge together, and every ACK turns into DELIVERED
// receipts the route reads and pushes at once.
class Acks {
  constructor(delay, every, interval = 0, spread = null) {
    this.delay = delay;
    this.every = every;
    this.interval = interval;
    this.spread = spread;
    this.scale = 1;
    this.sentAt = -Infinity;
    this.shown = 0;
    this.acked = 0;
    this.count = 0;
    this.since = 0;
    this.posted = false;
  }
  show(seq, n, now) {
    if (seq <= this.shown) return false;
    this.shown = seq;
    this.count += n;
    if (!this.posted) {
      this._post(now);
      return true;
    }
    return this.count >= this.every;
  }
  _post(now) {
    this.posted = true;
    this.since = now;
    this.scale = this.spread ? this.spread() : 1;
  }
  due(now) {
    if (!this.posted || this.shown <= this.acked) return { seq: 0, ok: false, next: 0 };
    const deadline = Math.max(this.since + this.delay * this.scale, this.sentAt + this.interval * this.scale);
    if (this.count < this.every && now < deadline) return { seq: 0, ok: false, next: deadline };
    return { seq: this.shown, ok: true, next: 0 };
  }
  unacked() {
    return { seq: this.shown, ok: this.shown > this.acked };
  }
  sent(seq, now) {
    if (seq > this.acked) this.acked = seq;
    this.sentAt = now;
    if (this.shown <= this.acked) {
      this.count = 0;
      this.posted = false;
      return;
    }
    this._post(now);
    this.count = 1;
  }
}

// -------------------------------------------------------------- timelines

// Timelines track the large groups whose messages the route stores once
// (docs/ARCHITECTURE.md, "Group timelines"): each gets the inbox's
// bookkeeping over its groupSeqs and its own cumulative ACK (ACK.groups).
// A group with no known position asks SYNC{group, fromAcked}.
const MAX_ACK_GROUPS = 64;

class Timelines {
  constructor(ackDelay, ackEvery, gapWait = 0, spread = null) {
    this.gapWait = gapWait;
    this.spread = spread;
    this.ackDelay = ackDelay;
    this.ackEvery = ackEvery;
    this.of = new Map();
    this.want = new Set();
  }
  get(gid) {
    let t = this.of.get(gid);
    if (!t) {
      t = { in: new Inbox(INBOX_BUFFER, this.gapWait), acks: new Acks(this.ackDelay, this.ackEvery, 0, this.spread), known: false };
      this.of.set(gid, t);
    }
    return t;
  }
  restore(gid, last, acked) {
    const t = this.get(gid);
    t.in.last = last;
    t.acks.shown = last;
    t.acks.acked = Math.min(acked, last);
    if (t.acks.shown > t.acks.acked) {
      t.acks.posted = true;
      t.acks.since = 0;
    }
    t.known = true;
  }
  linkUp() {
    for (const t of this.of.values()) t.in.syncing = false;
  }
  syncs(now, timeout) {
    const gids = [];
    let next = 0;
    for (const [gid, t] of this.of) {
      const { sync, next: at } = t.in.expire(now, timeout);
      if (at && (!next || at < next)) next = at;
      if (sync || this.want.has(gid)) gids.push(gid);
    }
    this.want.clear();
    gids.sort();
    const frames = gids.map((gid) => {
      const t = this.of.get(gid);
      const s = { group: gid, afterSeq: String(t.in.last) };
      if (!t.known) s.fromAcked = true;
      return { type: 'SYNC', sync: s };
    });
    return { frames, next };
  }
  add(gid, f, now) {
    const t = this.get(gid);
    const { show, sync } = t.in.add(num(f.msg.groupSeq), f, now);
    if (sync) this.want.add(gid);
    return show;
  }
  answer(s, now) {
    const gid = String(s.group);
    const t = this.get(gid);
    const { show, sync } = t.in.answer(s, now);
    t.known = true;
    if (sync) this.want.add(gid);
    return show;
  }
  listed(gs, now) {
    let asked = false;
    for (const g of gs || []) {
      if (!g?.group) continue;
      const t = this.get(String(g.group));
      if (num(g.seq) > t.in.last && t.in.request(now)) {
        this.want.add(String(g.group));
        asked = true;
      }
    }
    return asked;
  }
  shown(gid, n, now) {
    const t = this.get(gid);
    return t.acks.show(t.in.last, n, now);
  }
  dueAcks(now, all) {
    const gs = [];
    let next = 0;
    for (const [gid, t] of this.of) {
      let { seq, ok, next: at } = t.acks.due(now);
      if (all) ({ seq, ok } = t.acks.unacked());
      if (!ok) {
        if (at && (!next || at < next)) next = at;
        continue;
      }
      if (gs.length === MAX_ACK_GROUPS) {
        next = now;
        continue;
      }
      gs.push({ group: gid, seq: String(seq) });
    }
    return { gs, next };
  }
  acked(gs, now) {
    for (const g of gs) this.get(g.group).acks.sent(num(g.seq), now);
  }
}

// ------------------------------------------------------------------ shown

// Shown remembers the last 4096 messages shown (msgId → {group, seq,
// from}), to drop a repeat (a group message fanned out again comes under a
// new seq) and to name the entries a READ is about.
const SHOWN_KEPT = 4096;

class Shown {
  constructor(size = SHOWN_KEPT) {
    this.size = size;
    this.m = new Map();
  }
  has(id) {
    return this.m.has(id);
  }
  peek(id) {
    return this.m.get(id);
  }
  // containsOrAdd reports whether id was there, adding it when not.
  containsOrAdd(id, v) {
    if (this.m.has(id)) return true;
    this.m.set(id, v);
    if (this.m.size > this.size) this.m.delete(this.m.keys().next().value);
    return false;
  }
  values() {
    return this.m.values();
  }
  entries() {
    return this.m.entries();
  }
}

// ----------------------------------------------------------------- outbox

// The outbox keeps every MSG until the route answers it (a port of the Go
// SDK's outbox.go): RECEIPT_SENT, or an ERROR that is final. A try
// unanswered within its timeout (resendTimeout, doubling per try) is sent
// again with the same clientMsgId, and every pending one is written again
// on a new link (the route deduplicates). ERROR Unavailable is not final
// until every try got it; ERROR RateLimited not until the last try did. A
// broadcast is never written twice (the route cannot deduplicate it)
// unless the gateway said it dropped it. It also remembers the status of
// recent messages: the last `kept` sent (sentKept), and every one still
// waiting for an answer.
const MAX_BACKOFF_STEPS = 4;

class Outbox {
  constructor(timeout, tries, kept = Defaults.sentKept) {
    this.timeout = timeout;
    this.tries = tries;
    this.kept = kept > 0 ? Math.max(1, Math.floor(kept)) : Defaults.sentKept;
    this.recs = new Map();
    this.byMsgId = new Map();
    this.order = [];
    this.queue = [];
    this.armed = 0;
  }

  tryTimeout(k) {
    return this.timeout * 2 ** Math.min(Math.max(k - 1, 0), MAX_BACKOFF_STEPS);
  }

  limit(r) {
    return r.once && !r.limited ? 1 : this.tries;
  }

  // add records m (encoded as frame) as pending and returns its record.
  add(m, frame, now) {
    const id = m.clientMsgId;
    let r = this.recs.get(id);
    if (!r) {
      r = newRecord(m, now);
      this.recs.set(id, r);
      this.order.push(r);
    }
    r.frame = frame;
    r.once = !!m.broadcast;
    if (!r.pending) {
      r.pending = true;
      r.error = null;
      r.tries = 1;
      r.unavail = 0;
      r.written = false;
      r.unsent = false;
      r.deadline = 0;
      r.limited = false;
      r.slowed = false;
      if (statusRank[r.status] < statusRank.sent) r.status = 'pending';
      if (!this.queue.includes(r)) this.queue.push(r);
    }
    this._evict();
    return r;
  }

  // restore puts back a record from storage: pending ones in the queue,
  // answered ones only for their status.
  restore(p) {
    if (!p || !p.clientMsgId || this.recs.has(p.clientMsgId)) return;
    const r = newRecord({ clientMsgId: p.clientMsgId, to: p.to, group: p.group, broadcast: p.broadcast, kind: p.kind, text: p.text, file: p.file, op: p.op, refMsgId: p.refMsgId, replyTo: p.replyTo, mentions: p.mentions }, p.at || 0);
    r.msgId = p.msgId || '';
    r.status = statusRank[p.status] ? p.status : 'sent';
    r.recipients = p.recipients || 0;
    r.delivered = p.delivered || 0;
    r.read = p.read || 0;
    r.seen = p.seen || 0;
    r.error = p.error ? new GatewayError(p.error.code, p.error.text, p.clientMsgId) : null;
    if (p.frame) {
      r.frame = p.frame;
      r.pending = true;
      r.once = !!p.broadcast;
      r.tries = Math.max(1, p.tries || 1);
      r.written = !!p.written;
      if (r.once && r.written) return; // might have gone out: never twice
    }
    this.recs.set(r.clientMsgId, r);
    if (r.msgId) this.byMsgId.set(r.msgId, r);
    this.order.unshift(r);
    if (r.pending) this.queue.unshift(r);
  }

  _evict() {
    while (this.order.length > this.kept) {
      const i = this.order.findIndex((r) => !r.pending);
      if (i < 0) return;
      const [r] = this.order.splice(i, 1);
      this.recs.delete(r.clientMsgId);
      if (r.msgId && this.byMsgId.get(r.msgId) === r) this.byMsgId.delete(r.msgId);
    }
  }

  // wrote records a write of r (first or again) and whether the control
  // loop must learn of an earlier deadline.
  wrote(r, now) {
    if (!r.pending) return false;
    r.written = true;
    r.unsent = false;
    r.deadline = now + this.tryTimeout(r.tries);
    if (!this.armed || r.deadline < this.armed) {
      this.armed = r.deadline;
      return true;
    }
    return false;
  }

  // receipt applies a RECEIPT: {emit, sent, rec}: whether to tell the
  // application, the SENT it implies when never seen, and the record when
  // it changed.
  receipt(rc) {
    let r = this.recs.get(rc.clientMsgId);
    if (!r && rc.msgId) r = this.byMsgId.get(rc.msgId);
    const st = rc.status;
    if (!r || !statusRank[st]) return { emit: true, sent: null, rec: null };
    if (statusRank[st] > statusRank.sent && !fromRecipient(r, rc.by)) return { emit: false, sent: null, rec: null };
    let sent = null;
    const sentBit = 1 << statusRank.sent;
    if (statusRank[st] > statusRank.sent && (r.seen & sentBit) === 0) {
      r.seen |= sentBit;
      sent = { ...rc, status: 'sent', clientMsgId: r.clientMsgId, by: '', group: r.group, count: 0, seq: 0 };
    }
    const before = snapshotKey(r);
    if (rc.msgId && !r.msgId) {
      r.msgId = rc.msgId;
      this.byMsgId.set(rc.msgId, r);
    }
    r.pending = false;
    if (statusRank[st] > statusRank[r.status]) r.status = st;
    const bit = 1 << statusRank[st];
    let emit = (r.seen & bit) === 0;
    r.seen |= bit;
    if (rc.group || r.group) {
      if (this._count(r, st, rc.count) && statusRank[st] > statusRank.sent) emit = true;
    }
    return { emit, sent, rec: snapshotKey(r) !== before ? r : null };
  }

  _count(r, st, n) {
    const k = st === 'sent' ? 'recipients' : st === 'delivered' ? 'delivered' : st === 'read' ? 'read' : '';
    if (!k || !(n > r[k])) return false;
    r[k] = n;
    return true;
  }

  groupCounts(counts) {
    const changed = [];
    for (const [id, c] of Object.entries(counts)) {
      const r = this.byMsgId.get(id);
      if (!r) continue;
      const before = snapshotKey(r);
      this._count(r, 'delivered', c.delivered);
      this._count(r, 'read', c.read);
      if (c.read > 0 && statusRank[r.status] < statusRank.read) r.status = 'read';
      else if (c.delivered > 0 && statusRank[r.status] < statusRank.delivered) r.status = 'delivered';
      if (snapshotKey(r) !== before) changed.push(r);
    }
    return changed;
  }

  // fail applies an ERROR answering one of our MSGs: {final, notice, rec}.
  fail(e) {
    const r = this.recs.get(e.clientMsgId);
    if (!r) return { final: e, notice: null, rec: null };
    if (!r.pending) return { final: null, notice: null, rec: null };
    if (e.code === Codes.Unavailable) {
      r.unavail++;
      if (r.tries < this.limit(r) || r.unavail < r.tries) return { final: null, notice: null, rec: null };
    } else if (e.code === Codes.RateLimited) {
      if (r.tries < this.tries) {
        r.limited = true;
        if (!r.slowed) {
          r.slowed = true;
          return { final: null, notice: e, rec: null };
        }
        return { final: null, notice: null, rec: null };
      }
    }
    this._final(r, e);
    return { final: e, notice: null, rec: r };
  }

  _final(r, e) {
    r.pending = false;
    r.error = e;
    if (statusRank[r.status] < statusRank.failed) r.status = 'failed';
  }

  // expire handles tries whose timeout passed: {again (records to write
  // again), failed (records that ran out of tries), next (deadline)}.
  expire(now) {
    const again = [];
    const failed = [];
    let next = 0;
    const live = [];
    for (const r of this.queue) {
      if (!r.pending) continue;
      live.push(r);
      if (r.unsent) {
        again.push(r);
        continue;
      }
      if (!r.deadline) continue; // not written yet: waits for a link
      if (now < r.deadline) {
        if (!next || r.deadline < next) next = r.deadline;
        continue;
      }
      if (r.tries >= this.limit(r)) {
        const e = new GatewayError(Codes.Unavailable, `${describe(r)} not sent: no answer after ${r.tries} ${r.tries === 1 ? 'try' : 'tries'}`, r.clientMsgId);
        this._final(r, e);
        live.pop();
        failed.push(r);
        continue;
      }
      r.tries++;
      r.unsent = true;
      r.deadline = 0;
      r.limited = false;
      again.push(r);
    }
    this.queue = live;
    this.armed = next;
    return { again, failed, next };
  }

  // replay returns, in order, the records to write on a new link: every
  // pending one but a broadcast that went out already.
  replay() {
    return this.queue.filter((r) => r.pending && !(r.once && r.written && !r.unsent));
  }

  pendingCount() {
    return this.queue.filter((r) => r.pending).length;
  }
}

function newRecord(m, now) {
  return {
    clientMsgId: m.clientMsgId,
    msgId: '',
    to: m.to || '',
    group: m.group || '',
    broadcast: !!m.broadcast,
    kind: m.kind === 'file' ? 'file' : 'text',
    text: m.kind === 'file' ? '' : m.text || '',
    file: m.file || null,
    op: knownOp(m.op) ? m.op : '',
    refMsgId: knownOp(m.op) ? String(m.refMsgId || '') : '',
    replyTo: m.op || m.broadcast ? '' : String(m.replyTo || ''),
    mentions: !m.op && m.group && Array.isArray(m.mentions) ? m.mentions.map(String) : [],
    status: 'pending',
    tries: 1,
    error: null,
    at: now,
    recipients: 0,
    delivered: 0,
    read: 0,
    // bookkeeping
    frame: '',
    pending: false,
    once: false,
    deadline: 0,
    written: false,
    unsent: false,
    unavail: 0,
    limited: false,
    slowed: false,
    seen: 0,
  };
}

function snapshotKey(r) {
  return `${r.status}|${r.msgId}|${r.recipients}|${r.delivered}|${r.read}|${r.pending}`;
}

function describe(r) {
  if (r.op === 'react') return `reaction ${JSON.stringify(r.text)} to message ${r.refMsgId}${r.group ? ` in group ${r.group}` : ` to ${r.to}`}`;
  if (r.op) return `${r.op} of message ${r.refMsgId}${r.group ? ` in group ${r.group}` : ` to ${r.to}`}`;
  if (r.broadcast) return 'broadcast';
  if (r.group) return `message to group ${r.group}`;
  return `message to ${r.to}`;
}

// fromRecipient: for a private message sent to a user id, only that
// user's DELIVERED/READ receipts count.
function fromRecipient(r, by) {
  if (r.group || r.broadcast || !by || !isUserId(r.to)) return true;
  return by === r.to;
}

// sentMessage is the public copy of a record.
function sentMessage(r) {
  return {
    clientMsgId: r.clientMsgId,
    msgId: r.msgId,
    to: r.to,
    group: r.group,
    broadcast: r.broadcast,
    kind: r.kind,
    text: r.text,
    file: r.file,
    op: r.op,
    refMsgId: r.refMsgId,
    replyTo: r.replyTo,
    mentions: r.mentions.slice(),
    status: r.status,
    tries: r.tries,
    error: r.error,
    at: r.at,
    recipients: r.recipients,
    delivered: r.delivered,
    read: r.read,
  };
}

// ------------------------------------------------------------------- link

const MAX_EARLY = 64;

// Link is one logged-in WebSocket to a gateway. The first failure ends it:
// fail records why, closes the socket and resolves `ended`.
class Link {
  constructor(client, ws, login) {
    this.client = client;
    this.ws = ws;
    this.login = login;
    this.gateway = login.server.id || login.server.wsUrl;
    this.ack = null;
    this.early = [];
    this.born = Date.now();
    this.done = false;
    this.cause = null;
    this.lastErr = null;
    this.handler = null; // frames go here; before adoption, into early
    this.progress = 0;
    this.lastWrite = Date.now();
    this.lastRead = Date.now();
    this.pinged = false;
    this.progressAtPing = 0;
    this.hbTimer = null;
    this.ended = new Promise((resolve) => {
      this._resolveEnded = resolve;
    });
    this.onFail = null; // the handshake's listener
  }

  // send writes one frame (an object or its JSON); false when the link
  // cannot take it (it will go on the next one).
  send(frame) {
    if (this.done || this.ws.readyState !== 1) return false;
    try {
      this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    } catch (err) {
      this.fail(new Error(`write to gateway: ${err?.message || err}`));
      return false;
    }
    this.lastWrite = Date.now();
    return true;
  }

  fail(cause) {
    if (this.done) return;
    this.done = true;
    this.cause = cause;
    clearTimeout(this.hbTimer);
    try {
      this.ws.close(1000);
    } catch {
      // already closing
    }
    if (this.onFail) this.onFail(cause);
    this._resolveEnded(cause);
  }

  // The heartbeat: PING after heartbeat without writing, or without
  // reading anything; a PONG (or any other frame) within pongTimeout
  // settles it, otherwise the link is dead.
  startHeartbeat() {
    if (this.client.opts.heartbeatMs <= 0) return;
    this._arm(this.client.opts.heartbeatMs);
  }

  _arm(ms) {
    clearTimeout(this.hbTimer);
    if (!this.done) this.hbTimer = setTimeout(() => this._tick(), Math.max(0, ms));
  }

  _tick() {
    if (this.done) return;
    const hb = this.client.opts.heartbeatMs;
    const now = Date.now();
    if (this.pinged) {
      if (this.progress === this.progressAtPing) {
        this.fail(new Error(`no PONG within ${this.client.opts.pongTimeoutMs} ms`));
        return;
      }
      this.pinged = false;
      this._arm(this.lastWrite + hb - now);
      return;
    }
    const idle = now - Math.min(this.lastWrite, this.lastRead);
    if (idle < hb) {
      this._arm(hb - idle);
      return;
    }
    this.probe();
  }

  // probe sends a PING now and expects a sign of life within pongTimeout
  // (also used when the browser says the network changed).
  probe() {
    if (this.done || this.pinged) return;
    this.progressAtPing = this.progress;
    if (!this.send({ type: 'PING' })) return;
    this.pinged = true;
    this._arm(this.client.opts.pongTimeoutMs);
  }

  ponged() {
    if (this.pinged) {
      this.pinged = false;
      this._arm(this.lastWrite + this.client.opts.heartbeatMs - Date.now());
    }
  }

  // onMessage takes one WebSocket message: one Frame in protojson.
  onMessage(ev) {
    if (this.done) return;
    this.lastRead = Date.now();
    this.progress++;
    if (typeof ev.data !== 'string') {
      this.fail(new Error('bad frame from gateway: a binary message on a gocim.json connection'));
      return;
    }
    let f;
    try {
      f = JSON.parse(ev.data);
    } catch (err) {
      this.fail(new Error(`bad frame from gateway: ${err?.message || err}`));
      return;
    }
    if (!f || typeof f !== 'object') {
      this.fail(new Error('bad frame from gateway: not an object'));
      return;
    }
    if (this.handler) {
      this.handler(f);
    } else if (this.early.length < MAX_EARLY) {
      this.early.push(f);
    } else {
      this.fail(new Error('gateway pushed too many frames before the link was ready'));
    }
  }

  onClose(ev) {
    if (this.done) return;
    if (this.lastErr) {
      this.fail(this.lastErr);
      return;
    }
    const why = ev && ev.code ? ` (close ${ev.code}${ev.reason ? ` ${ev.reason}` : ''})` : '';
    this.fail(new Error(`gateway closed the connection${why}`));
  }
}

function kickReason(k) {
  return k?.reason || 'kicked by the server';
}

// --------------------------------------------------------------- Client

const STATE_KEY_VERSION = 1;
const PERSIST_SENT = 300; // answered messages whose status is kept across reloads
const PERSIST_SHOWN = 256;
const PERSIST_OUTBOX_BYTES = 2 << 20;
const MAX_PENDING_READS = 1000;
const MAX_READ_IDS = 100;
const INLINE_RESERVE = 1024;
// SUBSCRIBE req_ids start here, apart from the LOGIN's (as the Go SDK's).
const SUBSCRIBE_REQ_BASE = 2 ** 40;

function newIds() {
  const b = new Uint8Array(8);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
  const prefix = [...b].map((x) => x.toString(16).padStart(2, '0')).join('') + '-';
  let n = 0;
  const next = () => prefix + ++n;
  next.prefix = prefix; // the echo of our own sends carries it
  return next;
}

function makeEvent(type, detail) {
  if (typeof CustomEvent === 'function') return new CustomEvent(type, { detail });
  const e = new Event(type);
  e.detail = detail;
  return e;
}

/**
 * Client keeps one user's connection to a gocim cluster. Create it, call
 * start(), listen to its events, send; close() when done.
 */
export class Client extends EventTarget {
  /**
   * @param {object} options see gocim.d.ts (ClientOptions)
   */
  constructor(options = {}) {
    super();
    if (!options.userName) throw new ClientError('bad-options', 'userName is required');
    if (!options.password && !options.resumeToken) throw new ClientError('bad-options', 'a password or a resumeToken is required');
    const o = { ...Defaults };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
    o.platform = options.platform === undefined || options.platform === null ? 'web' : String(options.platform);
    if (o.reconnectMinMs > o.reconnectMaxMs) throw new ClientError('bad-options', 'reconnectMinMs is above reconnectMaxMs');
    this.opts = o;
    this.routeUrl = String(options.routeUrl || '').replace(/\/+$/, '');
    /** The route API client this Client uses (its access token is the latest login's). */
    this.api = options.api || new Api(this.routeUrl, { fetch: options.fetch, timeoutMs: o.httpTimeoutMs });
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') throw new ClientError('no-websocket', 'no WebSocket implementation');
    this._storage = options.storage === undefined || options.storage === null ? defaultStorage() : options.storage || new MemoryStorage();
    this._log = options.logger === undefined ? globalThis.console : options.logger;
    this._rand = options.random || Math.random;
    this._nextId = newIds();

    this._inbox = new Inbox(INBOX_BUFFER, o.gapWaitMs);
    const spread = () => 0.5 + this._rand();
    this._tl = new Timelines(o.groupAckDelayMs, o.ackEvery, o.groupGapWaitMs, spread);
    this._shown = new Shown();
    this._acks = new Acks(o.ackDelayMs, o.ackEvery, o.ackIntervalMs, spread);
    this._out = new Outbox(o.resendTimeoutMs, o.resendMax, o.sentKept);

    this._state = 'idle';
    this._started = false;
    this._closing = false;
    this._stopErr = null;
    this._cur = null;
    this._open = false;
    this._syncOn = null;
    this._info = { userId: '', userName: '', sessionId: '', gateway: '', connected: false };
    this._life = new AbortController();
    this._wakeSleep = null;
    this._controlTimer = null;
    this._pokeQueued = false;
    this._saveTimer = null;
    this._stateKey = '';
    this._loadedFor = '';
    this._pendingReads = [];
    this._tokenRefusals = 0;
    this._resume = String(options.resumeToken || ''); // the token the next login resumes with (see _login)
    this._loggedOff = false; // close() revoked the session's token: hand out no newer one
    this._caughtUp = false;
    this._closed = null;
    this._unlisten = [];
    // Presence: the subscription in force (null: none), what it learned of
    // the watched users (userId → PresenceState), the last req_id handed
    // out, and the subscribe() calls waiting for their answer by req_id.
    this._pres = { sub: null, states: new Map(), req: 0, waiting: new Map() };
    // Mutes (see "mutes" below): the muted conversations as last read
    // ('u:<user id>' or 'g:<gid>' → Mute; null until anything is known),
    // that list as last told (sorted, for what changed), whether a list came from the route yet, the count of reads and own
    // changes (tick) and the read whose answer is in force (applied), the
    // reads under way, the own changes answered (key → {n: the tick of
    // the answer, mute: the Mute, or null for an unmute}) that a read asked
    // before them must not undo, the automatic read done or under way, and
    // the timer of the next mute to end.
    this._mutes = { list: null, last: [], read: false, tick: 0, applied: 0, reading: new Set(), own: new Map(), auto: false, timer: null };
  }

  // ------------------------------------------------------------ events

  /** on calls fn(detail) for every event of type; it returns a function that stops it. */
  on(type, fn) {
    const h = (e) => {
      try {
        fn(e.detail, e);
      } catch (err) {
        this._log?.error?.('gocim: event handler failed', type, err);
      }
    };
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  _emit(type, detail) {
    this.dispatchEvent(makeEvent(type, detail));
  }

  _setState(s) {
    if (this._state === s) return;
    this._state = s;
    this._emit('state', { state: s });
  }

  /** idle | connecting | online | reconnecting | stopped | closed */
  get state() {
    return this._state;
  }

  /** Who the client is logged in as and where. */
  get info() {
    return { ...this._info, state: this._state };
  }

  /** The highest inbox seq shown in order (the position a reload resumes from). */
  get lastSeq() {
    return this._inbox.last;
  }

  /** Whether the inbox caught up with the server since the last (re)connect. */
  get caughtUp() {
    return this._caughtUp;
  }

  // ------------------------------------------------------------- start

  /**
   * Logs in through the route, connects to the gateway it names and waits
   * for LOGIN_ACK. It rejects for a permanent reason (ApiError 9100 bad
   * account, 3000, 5000 repeat login; a refused session; the resumeToken
   * refused when there is no password: that ApiError, 4010 or 3000) and
   * retries transient failures with backoff until timeoutMs (default 30 s)
   * or signal. After it resolves the client keeps itself connected until
   * close() or disconnect().
   */
  async start({ signal, timeoutMs } = {}) {
    if (this._closing) throw new ClientError(ClientError.CLOSED, 'closed');
    if (this._started) throw new ClientError(ClientError.STARTED, 'already started');
    this._started = true;
    this._setState('connecting');
    const limit = timeoutMs ?? this.opts.startTimeoutMs;
    const timer = new AbortController();
    const t = limit > 0 ? setTimeout(() => timer.abort(new ClientError(ClientError.TIMEOUT, `start: no connection within ${limit} ms`)), limit) : null;
    const { signal: sig, release } = mergeSignals([signal, timer.signal, this._life.signal]);
    const bo = new Backoff(this.opts.reconnectMinMs, this.opts.reconnectMaxMs, this._rand);
    let last = null;
    try {
      for (;;) {
        try {
          const link = await this._connect(sig);
          this._adopt(link);
          break;
        } catch (err) {
          if (this._closing) throw new ClientError(ClientError.CLOSED, 'closed');
          if (sig.aborted) {
            const why = abortError(sig);
            if (last && why instanceof ClientError) why.message += `; last attempt: ${last.message}`;
            throw why;
          }
          if (this._permanent(err, true)) throw err instanceof StopError ? new ClientError(ClientError.STOPPED, err.message) : err;
          last = err;
          const d = Math.max(bo.next(), retryAfterMs(err));
          this._log?.warn?.('gocim: login failed, retrying', err.message, `in ${d} ms`);
          await this._sleep(d, sig);
        }
      }
    } catch (err) {
      this._started = false;
      if (!this._closing) this._setState('idle');
      throw err;
    } finally {
      if (t) clearTimeout(t);
      release();
    }
    this._listenWindow();
    this._supervise(this._cur);
  }

  // _login logs in at the route: with a resume token when there is one
  // (the resumeToken option first, then the last login's: the route checks
  // no password hash for it, so a failed gateway's users come back at
  // little cost), with the password when there is none or the route
  // refuses it (used, revoked, expired, or a route that takes none). The
  // client keeps the token in memory only; each new one goes out as a
  // 'resume' event, so that keeping it across reloads (a credential at
  // rest) is the page's decision, not the SDK's.
  //
  // changePassword() and logoutOthers() revoke every resume token, and
  // changePassword() the password: a login under way with the old ones is
  // refused. When they changed meanwhile, the login is tried again with
  // the new ones instead of giving up.
  async _login(signal) {
    for (;;) {
      const token = this._resume, password = this.opts.password;
      try {
        return await this._loginWith(token, password, signal);
      } catch (err) {
        const refused = err instanceof ApiError && (err.code === Codes.BadAccount || err.code === Codes.Unauthorized);
        const changed = (this._resume && this._resume !== token) || this.opts.password !== password;
        if (!refused || !changed || this._closing) throw err;
      }
    }
  }

  async _loginWith(token, password, signal) {
    if (token) {
      try {
        const res = await this.api.resume(token, { signal });
        this._setResume(res.resumeToken, res.resumeExpiresAt);
        return res;
      } catch (err) {
        if (!(err instanceof ApiError) || (err.code !== Codes.Unauthorized && err.code !== Codes.BadArgument)) throw err;
        // Forgotten unless another token replaced it meanwhile.
        if (this._resume === token) this._setResume('', 0);
        // Nothing else to log in with: _permanent gives up on it.
        if (!password) throw err;
      }
    }
    if (!password) throw new ClientError('no-credential', 'no resume token and no password to log in with');
    const res = await this.api.login(this.opts.userName, password, { signal, platform: this.opts.platform });
    this._setResume(res.resumeToken, res.resumeExpiresAt);
    return res;
  }

  // _setResume keeps the token the next login resumes with and tells the
  // page when it changed. After close() no new one is handed out: a login
  // that was under way then must not leave the page a live credential.
  _setResume(token, expiresAt) {
    const t = String(token || '');
    if (t === this._resume || (t && this._loggedOff)) return;
    this._resume = t;
    this._emit('resume', { token: t, expiresAt: t ? num(expiresAt) : 0 });
  }

  // _connect runs one login: route /login, WebSocket, LOGIN → LOGIN_ACK.
  async _connect(signal) {
    const res = await this._login(signal);
    this._load(res.userId);
    if (!res.server.wsUrl) {
      throw new Error(`gateway ${res.server.id || '?'} has no WebSocket listener (no server.wsUrl in the login answer)`);
    }
    const link = await this._dial(res, signal);
    this._tokenRefusals = 0;
    return link;
  }

  _dial(res, signal) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this._WebSocket(res.server.wsUrl, SUBPROTOCOL);
      } catch (err) {
        reject(new Error(`dial ${res.server.wsUrl}: ${err?.message || err}`));
        return;
      }
      const link = new Link(this, ws, res);
      let settled = false;
      const finish = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        link.onFail = null;
        if (err) {
          link.fail(err);
          reject(err);
        } else {
          resolve(link);
        }
      };
      const timer = setTimeout(() => finish(new Error(`no LOGIN_ACK from ${res.server.wsUrl} within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
      const onAbort = () => finish(abortError(signal));
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      link.onFail = (cause) => finish(cause instanceof StopError || cause instanceof GatewayError ? cause : new Error(`gateway ${res.server.wsUrl}: ${cause?.message || cause} during login`));
      ws.onopen = () => {
        if (ws.protocol && ws.protocol !== SUBPROTOCOL) {
          finish(new Error(`gateway chose subprotocol ${ws.protocol}, not ${SUBPROTOCOL}`));
          return;
        }
        const [last, ts] = this._inbox.position();
        const login = { token: res.token, clientVersion: VERSION };
        if (last) login.lastSeq = String(last);
        if (ts) login.lastTsMs = String(ts);
        link.send({ type: 'LOGIN', reqId: '1', login });
      };
      ws.onmessage = (ev) => link.onMessage(ev);
      ws.onclose = (ev) => link.onClose(ev);
      ws.onerror = () => {}; // a close event follows with what is known
      link.handler = (f) => {
        switch (f.type) {
          case 'LOGIN_ACK':
            link.ack = f.loginAck || {};
            if (link.ack.gatewayId) link.gateway = link.ack.gatewayId;
            link.handler = null; // until adopted, frames wait in early
            finish(null);
            return;
          case 'ERROR':
            finish(wireError(f.error));
            return;
          case 'KICK':
            finish(new StopError(kickReason(f.kick)));
            return;
          case 'PING':
          case 'PONG':
            return;
          default:
            if (link.early.length >= MAX_EARLY) finish(new Error('gateway pushed too many frames before LOGIN_ACK'));
            else link.early.push(f);
        }
      };
    });
  }

  // _adopt makes link the current one (not yet open for sends).
  _adopt(link) {
    this._cur = link;
    this._open = false;
    this._caughtUp = false;
    const now = Date.now();
    this._inbox.linkUp(now);
    this._tl.linkUp();
    const ack = link.ack || {};
    this._info = {
      userId: String(ack.userId || link.login.userId),
      userName: String(ack.userName || link.login.userName),
      sessionId: String(ack.sessionId || link.login.sessionId),
      gateway: link.gateway,
      connected: true,
    };
    this._emit('connected', { gateway: link.gateway });
    this._autoReadMutes();
  }

  // _runLink starts reading l: the frames that came early first, then the
  // replay of what still waits for an answer, the ACK of what earlier links
  // showed, and then l takes new sends.
  _runLink(l) {
    const reack = this._acks.unacked();
    l.handler = (f) => this._handle(l, f);
    l.startHeartbeat();
    const early = l.early;
    l.early = [];
    for (const f of early) {
      if (l.done) break;
      this._handle(l, f);
    }
    if (l.done || this._cur !== l) return;
    const now = Date.now();
    for (const r of this._out.replay()) {
      if (!l.send(r.frame)) return;
      this._out.wrote(r, now);
    }
    if (reack.seq > 0 && reack.seq > this._acks.acked && l.send(ackFrame(reack.seq))) this._acks.sent(reack.seq, Date.now());
    this._resubscribe(l);
    if (l.done || this._cur !== l) return;
    this._open = true;
    this._flushReads(l);
    this._setState('online');
    this._dirty();
    this._poke();
  }

  async _supervise(l) {
    const bo = new Backoff(this.opts.reconnectMinMs, this.opts.reconnectMaxMs, this._rand);
    for (;;) {
      this._runLink(l);
      const cause = await l.ended;
      this._detach(l);
      if (this._closing) return;
      if (cause instanceof StopError) {
        this._stop(cause.message, cause.error, l.gateway);
        return;
      }
      const reason = cause?.message || String(cause);
      this._log?.warn?.('gocim: connection lost, reconnecting:', reason);
      this._setState('reconnecting');
      this._emit('disconnected', { reason, gateway: l.gateway });
      // A link that stayed up a while earns a fresh, short backoff.
      if (Date.now() - l.born >= this.opts.reconnectMaxMs) bo.reset();
      try {
        l = await this._reconnect(bo);
      } catch (err) {
        if (!this._closing) this._stop(`login refused: ${err?.message || err}`, err instanceof GatewayError ? err : err?.error || null, '');
        return;
      }
    }
  }

  async _reconnect(bo) {
    let wait = bo.next();
    for (;;) {
      await this._sleep(wait, this._life.signal).catch(() => {});
      if (this._closing) throw new ClientError(ClientError.CLOSED, 'closed');
      try {
        const l = await this._connect(this._life.signal);
        if (this._closing) {
          l.fail(new ClientError(ClientError.CLOSED, 'closed'));
          throw new ClientError(ClientError.CLOSED, 'closed');
        }
        this._adopt(l);
        return l;
      } catch (err) {
        if (this._closing) throw new ClientError(ClientError.CLOSED, 'closed');
        if (this._permanent(err, false)) throw err;
        this._log?.warn?.('gocim: reconnect failed:', err?.message || err);
        wait = Math.max(bo.next(), retryAfterMs(err));
      }
    }
  }

  // _permanent reports whether retrying a failed login cannot help.
  _permanent(err, first) {
    if (err instanceof StopError) return true;
    // The resume token is gone (refused, or the route hands out none) and
    // there is no password: no retry can log in.
    if (!this._resume && !this.opts.password) return true;
    if (err instanceof ApiError) {
      if (err.code === Codes.BadAccount || err.code === Codes.BadArgument) return true;
      if (err.code === Codes.RepeatLogin) return first;
      return false;
    }
    if (err instanceof GatewayError) {
      if (err.code === Codes.KickedElsewhere) return true;
      if (err.code === Codes.Unauthorized) {
        // No text: the route says the session is not current any more
        // (another login took over): logging in again would only kick
        // that one in turn. With text, the token itself was refused
        // (expired on a slow connection, a rotated secret): a new login
        // brings a new token, a few times.
        if (!err.text) return true;
        this._tokenRefusals++;
        return this._tokenRefusals > 5;
      }
      return false;
    }
    return false;
  }

  _detach(l) {
    if (this._cur === l) {
      this._cur = null;
      this._open = false;
      this._info = { ...this._info, connected: false };
    }
  }

  _stop(reason, error, gateway) {
    if (!this._stopErr) this._stopErr = new ClientError(ClientError.STOPPED, `stopped: ${reason}`);
    this._log?.warn?.('gocim: stopped, not reconnecting:', reason);
    // The session is somebody else's now; what this tab would save could
    // overwrite the state of the one that took over.
    clearTimeout(this._saveTimer);
    this._saveTimer = null;
    this._stateKey = '';
    this._failSubscribes(this._stopErr);
    clearTimeout(this._mutes.timer);
    this._mutes.timer = null;
    this._setState('stopped');
    this._emit('kicked', { reason, error: error || null, gateway });
  }

  // _sleep waits ms, or less when woken (the network came back), or
  // rejects when signal aborts.
  _sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', onAbort);
        if (this._wakeSleep === wake) this._wakeSleep = null;
      };
      const t = setTimeout(() => {
        done();
        resolve();
      }, ms);
      const onAbort = () => {
        done();
        reject(abortError(signal));
      };
      const wake = () => {
        done();
        resolve();
      };
      this._wakeSleep = wake;
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Tries to reconnect now instead of at the end of the current backoff wait. */
  reconnectNow() {
    if (this._wakeSleep) this._wakeSleep();
    else if (this._cur) this._cur.probe();
  }

  _listenWindow() {
    const w = globalThis.window;
    if (!w || typeof w.addEventListener !== 'function') return;
    const add = (target, type, fn) => {
      target.addEventListener(type, fn);
      this._unlisten.push(() => target.removeEventListener(type, fn));
    };
    add(w, 'online', () => this.reconnectNow());
    add(w, 'offline', () => this._cur?.probe());
    add(w, 'pagehide', () => this._saveNow());
    const d = globalThis.document;
    if (d) {
      add(d, 'visibilitychange', () => {
        if (d.visibilityState === 'visible') {
          if (this._cur && Date.now() - this._cur.lastRead > 15_000) this._cur.probe();
          else if (!this._cur) this.reconnectNow();
        } else {
          this._saveNow();
        }
      });
    }
  }

  // ------------------------------------------------------------ reading

  _handle(l, f) {
    if (l.done || this._cur !== l) return;
    if (f.type !== 'ERROR') l.lastErr = null;
    const now = Date.now();
    switch (f.type) {
      case 'PONG':
        l.ponged();
        return;
      case 'PING':
      case 'LOGIN_ACK':
        return;
      case 'MSG':
      case 'RECEIPT': {
        const p = f.type === 'MSG' ? f.msg : f.receipt;
        if (!p) return;
        const seq = num(p.seq);
        if (f.type === 'MSG' && seq === 0 && num(p.groupSeq) > 0 && p.group) {
          const gid = String(p.group);
          const show = this._tl.add(gid, f, now);
          if (show.length === 0) this._poke(); // held: a SYNC now or after the gap wait
          this._showGroup(gid, show);
          return;
        }
        if (seq === 0) {
          this._show(f); // a broadcast or a direct answer: not an inbox entry
          return;
        }
        if (this._reused(seq, f)) {
          this._log?.warn?.('gocim: inbox seq reused for a new message: the server lost recent entries; syncing again', seq);
          if (this._inbox.rewind(Math.max(seq, REWIND_SPAN + 1) - REWIND_SPAN - 1, now)) this._requestSync(l);
        }
        const { show, sync } = this._inbox.add(seq, f, now);
        if (sync) this._requestSync(l);
        else if (show.length === 0) this._poke(); // a gap waiting: the timer learns when to ask
        this._showAll(show);
        return;
      }
      case 'SYNC': {
        const s = f.sync || {};
        if (s.group) {
          const show = this._tl.answer(s, now);
          this._poke();
          this._showGroup(String(s.group), show);
          return;
        }
        const { show, sync } = this._inbox.answer(s, now);
        if (sync) this._requestSync(l);
        if (this._tl.listed(s.groups, now)) this._poke();
        this._showAll(show);
        if (!this._inbox.syncing && this._inbox.held.size === 0 && !this._caughtUp) {
          this._caughtUp = true;
          this._emit('synced', { lastSeq: this._inbox.last });
        }
        return;
      }
      case 'ERROR': {
        const e = wireError(f.error);
        if (this._subscribeRefused(num(f.reqId), e)) return; // subscribe() rejects with it
        if (e.code === Codes.Unauthorized || e.code === Codes.KickedElsewhere) {
          l.fail(new StopError(e.message, e));
          return;
        }
        if (!e.clientMsgId) {
          l.lastErr = e; // the close that usually follows is reported with it
          this._emit('error', e);
          return;
        }
        const { final, notice, rec } = this._out.fail(e);
        if (rec) this._statusChanged(rec);
        if (final) this._emit('error', final);
        else if (notice) this._emit('retrying', notice);
        return;
      }
      case 'KICK':
        l.fail(new StopError(kickReason(f.kick)));
        return;
      case 'PRESENCE':
        this._presence(f);
        return;
      case 'TYPING':
        if (f.typing) this._emit('typing', wireTyping(f.typing));
        return;
      default:
        // A newer gateway's frame type: nothing to do with it.
        return;
    }
  }

  // _reused: a message under a seq shown before for another message.
  _reused(seq, f) {
    const id = f.msg?.msgId;
    if (f.type !== 'MSG' || !id || seq > this._inbox.last || this._shown.has(id)) return false;
    for (const m of this._shown.values()) if (m.seq === seq) return true;
    return false;
  }

  _showAll(show) {
    const now = Date.now();
    for (const f of show) {
      this._show(f);
      const seq = num(f.type === 'MSG' ? f.msg?.seq : f.receipt?.seq);
      if (this._acks.show(seq, 1, now)) this._poke();
    }
    if (this._acks.show(this._inbox.last, 0, now)) this._poke();
    if (show.length) this._dirty();
  }

  _showGroup(gid, show) {
    for (const f of show) this._show(f);
    if (this._tl.shown(gid, show.length, Date.now())) this._poke();
    if (show.length) this._dirty();
  }

  // _show turns one MSG or RECEIPT into events. The user's own messages
  // come back as copies for its devices (--login-policy platform): the copy
  // of what this client sent is not shown (the caller still counts its
  // seq), one sent elsewhere is shown with outgoing set; a READ the user
  // made elsewhere is 'readelsewhere'. A reaction is a 'reaction' event,
  // never a 'message' (and markRead() never names it).
  _show(f) {
    if (f.type === 'MSG') {
      const m = wireMessage(f.msg, this._info.userId);
      const react = m.op === 'react';
      if (m.msgId && this._shown.containsOrAdd(m.msgId, { group: m.group, seq: m.seq, from: m.from, react })) return;
      if (this._sentByMe(m)) {
        if (this._sentHere(m.clientMsgId)) return;
        m.outgoing = true;
      }
      if (react) this._emit('reaction', wireReaction(m, m.outgoing));
      else this._emit('message', m);
      return;
    }
    const rc = f.receipt;
    if (this._readElsewhere(rc)) {
      const r = wireReadElsewhere(rc);
      this._dropReads(r.msgIds);
      this._emit('readelsewhere', r);
      return;
    }
    const items = Array.isArray(rc.items) ? rc.items : [];
    if (items.length === 0) {
      this._showReceipt(wireReceipt(rc));
      return;
    }
    // One receipt for several of our messages: one event each.
    for (const it of items) this._showReceipt(wireReceipt(rc, it));
  }

  // _sentByMe: m is a copy of a message the user sent (from its own id;
  // neither a broadcast, never copied, nor a private message to itself,
  // stored once as an incoming one).
  _sentByMe(m) {
    const me = this._info.userId;
    return !!me && m.from === me && !m.broadcast && (!!m.group || m.to !== me);
  }

  // _sentHere: clientMsgId is one of this client's sends (made here, or
  // given to sendMsg and still in the outbox, also after a reload).
  _sentHere(id) {
    return !!id && (id.startsWith(this._nextId.prefix) || this._out.recs.has(id));
  }

  // _readElsewhere: rc is a READ the user made on another device: by the
  // user itself, about a peer's or a group's messages. (One without
  // either is about the user's message to itself: a receipt like any.)
  _readElsewhere(rc) {
    const me = this._info.userId;
    return !!me && statusNames[rc.status] === 'read' && String(rc.by ?? '') === me && !!(rc.peer || rc.group);
  }

  // _dropReads forgets READs not yet written for messages read elsewhere.
  _dropReads(ids) {
    if (!ids.length || !this._pendingReads.length) return;
    const gone = new Set(ids);
    this._pendingReads = this._pendingReads.filter((r) => {
      const keep = r.ids.map((id) => !gone.has(id));
      r.seqs = r.seqs.filter((_, i) => keep[i]);
      r.ids = r.ids.filter((_, i) => keep[i]);
      return r.ids.length > 0;
    });
  }

  _showReceipt(rc) {
    const { emit, sent, rec } = this._out.receipt(rc);
    if (sent) this._emit('receipt', sent);
    if (rec) this._statusChanged(rec);
    if (emit) this._emit('receipt', rc);
  }

  _statusChanged(r) {
    this._dirty();
    this._emit('status', sentMessage(r));
  }

  _requestSync(l) {
    this._syncOn = l;
    this._poke();
  }

  // ------------------------------------------------------------ control

  _poke() {
    if (this._pokeQueued) return;
    this._pokeQueued = true;
    queueMicrotask(() => {
      this._pokeQueued = false;
      this._control();
    });
  }

  _control() {
    clearTimeout(this._controlTimer);
    this._controlTimer = null;
    if (this._closing && !this._cur) return;
    const now = Date.now();
    const next = this._controlStep(now);
    if (next && !this._closing) this._controlTimer = setTimeout(() => this._control(), Math.max(0, next - Date.now()));
  }

  // _controlStep writes what is due: SYNCs asked for or unanswered, ACKs,
  // group SYNCs and ACKs, resends; it returns when to come back (0: when
  // poked).
  _controlStep(now) {
    const cur = this._cur;
    const open = this._open;
    const want = this._syncOn;
    this._syncOn = null;
    let next = 0;
    const soonest = (t) => {
      if (t && (!next || t < next)) next = t;
    };

    const ex = this._inbox.expire(now, this.opts.syncTimeoutMs);
    soonest(ex.next);
    if (cur && (want === cur || ex.sync)) {
      const [last, ts] = this._inbox.position();
      const s = { afterSeq: String(last) };
      if (ts) s.afterTsMs = String(ts);
      cur.send({ type: 'SYNC', sync: s });
    }

    const due = this._acks.due(now);
    if (!due.ok) soonest(due.next);
    else if (cur && cur.send(ackFrame(due.seq))) {
      this._acks.sent(due.seq, Date.now());
      soonest(this._acks.due(Date.now()).next);
      this._dirty();
    }

    if (cur) {
      const { frames, next: at } = this._tl.syncs(now, this.opts.syncTimeoutMs);
      soonest(at);
      for (const f of frames) cur.send(f);
      const { gs, next: at2 } = this._tl.dueAcks(now, false);
      soonest(at2);
      if (gs.length && cur.send({ type: 'ACK', ack: { groups: gs } })) {
        this._tl.acked(gs, Date.now());
        soonest(this._tl.dueAcks(Date.now(), false).next);
        this._dirty();
      }
    }

    const { again, failed, next: at } = this._out.expire(now);
    soonest(at);
    for (const r of again) {
      if (!cur || !open || !cur.send(r.frame)) break;
      this._out.wrote(r, Date.now());
      soonest(r.deadline);
    }
    for (const r of failed) {
      this._log?.info?.('gocim: giving up on a message', r.clientMsgId, r.error?.text);
      this._statusChanged(r);
      this._emit('error', r.error);
    }
    return next;
  }

  // ------------------------------------------------------------ sending

  /**
   * Sends text to one user (id or name); returns the clientMsgId receipts
   * and errors will carry. Option replyTo: the msgId of the message of
   * this conversation it answers (a reply).
   */
  send(to, text, { replyTo, mentions } = {}) {
    if (!to) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    return this.sendMsg({ to: String(to), text: String(text), replyTo, mentions });
  }

  /**
   * Sends text to group gid (SENT's count: the members it went to); option
   * replyTo as send()'s. Option mentions: the members the text mentions,
   * an array of at most MAX_MENTIONS user ids or names (ClientError
   * 'bad-mentions' otherwise); the route keeps the members among them and
   * every member gets their ids as Message.mentions.
   */
  sendGroup(gid, text, { replyTo, mentions } = {}) {
    if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
    return this.sendMsg({ group: String(gid), text: String(text), replyTo, mentions });
  }

  /** Sends text to everybody online (CIM's group chat; nothing stored, never resent). */
  broadcast(text) {
    return this.sendMsg({ broadcast: true, text: String(text) });
  }

  /**
   * Recalls (takes back) one of this user's messages to user `to` (an id
   * or a name), named by the route's msgId (SentMessage.msgId, or the
   * Message's from history or an event). A MSG with op MSG_OP_RECALL and
   * refMsgId, sent like any message: it returns the clientMsgId at once,
   * is kept and resent until the route answers, and gets 'status' events
   * (SentMessage.op 'recall'). Recipients (every device, online or later)
   * get it in order after the message; history then shows it recalled.
   * The route refuses (an 'error' event, GatewayError 3000 BadArgument) a
   * message older than its --edit-window (15 minutes by default).
   */
  recall(to, msgId) {
    if (!to) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    return this._revise({ to: String(to) }, 'recall', msgId, '');
  }

  /** recall() for a message to group gid. */
  recallInGroup(gid, msgId) {
    if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
    return this._revise({ group: String(gid) }, 'recall', msgId, '');
  }

  /**
   * Replaces the text of one of this user's text messages to user `to`
   * (id or name) with text: a MSG with op MSG_OP_EDIT, refMsgId and the new
   * text, sent, stored and delivered like recall()'s, within the same
   * window; history then shows the latest text. A recalled message cannot
   * be edited (GatewayError 3000), nor can a file message's.
   */
  edit(to, msgId, text) {
    if (!to) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    return this._revise({ to: String(to) }, 'edit', msgId, text);
  }

  /** edit() for a message to group gid. */
  editInGroup(gid, msgId, text) {
    if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
    return this._revise({ group: String(gid) }, 'edit', msgId, text);
  }

  _revise(m, op, msgId, text) {
    if (!msgId) throw new ClientError(ClientError.NO_MESSAGE, 'no message id');
    return this.sendMsg({ ...m, op, refMsgId: String(msgId), text: String(text ?? '') });
  }

  /**
   * Sets this user's reaction to a message of the conversation with user
   * `to` (an id or a name; the peer's message or one's own), named by the
   * route's msgId: emoji (1..32 bytes of UTF-8, no whitespace, no control
   * character) replaces any earlier one of this user, '' takes it back.
   * ClientError 'bad-reaction' for another emoji or a msgId not of the
   * route's form. A MSG with op MSG_OP_REACT, refMsgId and the emoji as
   * body, sent like edit(): it returns the clientMsgId at once, is kept
   * (across reloads too) and resent until the route answers, and gets
   * 'status' events (SentMessage.op 'react', text the emoji); the route
   * refuses (an 'error' event, GatewayError 3000 BadArgument) e.g. a
   * new emoji on a message with 20 different ones. The peer and the user's other
   * devices get it as a 'reaction' event.
   */
  react(to, msgId, emoji) {
    if (!to) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    return this._react({ to: String(to) }, msgId, emoji);
  }

  /** react() for a message of group gid (anybody's). */
  reactInGroup(gid, msgId, emoji) {
    if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
    return this._react({ group: String(gid) }, msgId, emoji);
  }

  _react(m, msgId, emoji) {
    if (!msgId) throw new ClientError(ClientError.NO_MESSAGE, 'no message id');
    return this.sendMsg({ ...m, op: 'react', refMsgId: msgId, text: emoji });
  }

  /**
   * Sends one message: {to | group | broadcast, text} or a file message
   * {…, kind: 'file', file: {name, size, contentType, ref?}, data?:
   * Uint8Array}, or a change of an earlier message {to | group, op:
   * 'recall' | 'edit', refMsgId, text (edit)} (see recall(), edit()), or a
   * reaction to one {to | group, op: 'react', refMsgId, text: the emoji,
   * '' to take it back} (see react(); ClientError 'bad-reaction' for a
   * malformed emoji or refMsgId). A new message to a user or a group may
   * name the message it answers, replyTo (a msgId; ClientError 'bad-reply'
   * for anything else, and on a broadcast, a recall, an edit or a
   * reaction). A new group message may name the members it mentions,
   * mentions (see sendGroup(); ClientError 'bad-mentions' for a malformed
   * list, and on any other message). It returns the clientMsgId at once;
   * the message is written now when online, else when the link is back,
   * and kept (across reloads too) until the route answers.
   */
  sendMsg(m) {
    if (this._stopErr) throw this._stopErr;
    if (this._closing) throw new ClientError(ClientError.CLOSED, 'closed');
    if (!this._started) throw new ClientError(ClientError.NOT_STARTED, 'not started');
    if (!m.to && !m.group && !m.broadcast) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    const op = m.op ? String(m.op) : '';
    if (op) {
      if (!knownOp(op)) throw new ClientError('bad-op', `unknown op ${JSON.stringify(op)} (recall, edit or react)`);
      if (!m.refMsgId) throw new ClientError(ClientError.NO_MESSAGE, 'no message id');
      if (m.broadcast) throw new ClientError('bad-op', 'a broadcast cannot be recalled, edited or reacted to');
    }
    const react = op === 'react';
    if (react && !isMsgId(m.refMsgId)) throw new ClientError('bad-reaction', `refMsgId ${JSON.stringify(m.refMsgId)} is not a message id (32 lowercase hex digits)`);
    const emoji = react ? reactionOf(m.text) : '';
    const replyTo = replyOf(m.replyTo);
    if (replyTo && op) throw new ClientError('bad-reply', `a ${op} cannot be a reply (an edit keeps the original's)`);
    if (replyTo && m.broadcast) throw new ClientError('bad-reply', 'a broadcast cannot be a reply');
    const mentions = mentionsOf(m.mentions);
    if (mentions.length && (op || !m.group || m.broadcast)) {
      throw new ClientError('bad-mentions', `${op ? `a ${op}` : m.broadcast ? 'a broadcast' : 'a private message'} cannot mention anybody (a new group message only)`);
    }
    const kind = !op && (m.kind === 'file' || m.file) ? 'file' : 'text';
    const msg = {
      clientMsgId: m.clientMsgId || this._nextId(),
      to: m.to ? String(m.to) : '',
      group: m.group ? String(m.group) : '',
      broadcast: !!m.broadcast,
      kind,
      text: react ? emoji : kind === 'text' && op !== 'recall' ? String(m.text ?? '') : '',
      file: kind === 'file' ? fileOf(m.file) : null,
      op,
      refMsgId: op ? String(m.refMsgId) : '',
      replyTo,
      mentions,
    };
    const body = kind === 'text' ? utf8Encode(msg.text) : m.data instanceof Uint8Array ? m.data : new Uint8Array(0);
    if (msgFrameSize(msg, body.length) > this.opts.maxFrame) throw new ClientError(ClientError.TOO_LARGE, 'message larger than the frame limit');
    const w = { clientMsgId: msg.clientMsgId };
    if (msg.to) w.to = msg.to;
    if (msg.group) w.group = msg.group;
    if (msg.broadcast) w.broadcast = true;
    if (body.length) w.body = bytesToBase64(body);
    if (op) {
      w.op = opNames[op];
      w.refMsgId = msg.refMsgId;
    }
    if (replyTo) w.replyTo = replyTo;
    if (mentions.length) w.mentions = mentions;
    if (kind === 'file') {
      w.kind = 'KIND_FILE';
      const f = { name: msg.file.name };
      if (msg.file.size) f.size = String(msg.file.size);
      if (msg.file.contentType) f.contentType = msg.file.contentType;
      if (msg.file.ref) f.ref = msg.file.ref;
      w.file = f;
    }
    const frame = JSON.stringify({ type: 'MSG', msg: w });
    const now = Date.now();
    const r = this._out.add(msg, frame, now);
    this._statusChanged(r);
    const l = this._cur;
    if (l && this._open && r.pending && !r.written && l.send(frame)) {
      if (this._out.wrote(r, Date.now())) this._poke();
    }
    return msg.clientMsgId;
  }

  /**
   * Builds a file message for blob (a File or Blob): its bytes inline when
   * it fits in one frame (up to maxFrame − 1 KiB), else uploaded to the
   * route first (POST /upload) and named by file.ref.
   */
  async prepareFile(blob, { name, contentType, signal } = {}) {
    const fileName = name || blob?.name || 'file';
    const type = contentType || blob?.type || 'application/octet-stream';
    const size = blob.size;
    if (size <= this.opts.maxFrame - INLINE_RESERVE) {
      const data = new Uint8Array(await blob.arrayBuffer());
      return { kind: 'file', file: { name: fileName, size, contentType: type, ref: '' }, data };
    }
    this._needLogin();
    const ref = await this.api.upload(blob, { name: fileName, contentType: type, signal });
    return { kind: 'file', file: { name: fileName, size, contentType: type, ref: ref.ref }, data: null };
  }

  /**
   * Sends a file (File or Blob) to a user; resolves to the clientMsgId.
   * Option replyTo as send()'s (checked before anything is uploaded; so is
   * mentions, refused: ClientError 'bad-mentions').
   */
  async sendFile(to, blob, options = {}) {
    if (!to) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    const replyTo = replyOf(options.replyTo);
    if (mentionsOf(options.mentions).length) throw new ClientError('bad-mentions', 'a private message cannot mention anybody (a new group message only)');
    const m = await this.prepareFile(blob, options);
    return this.sendMsg({ ...m, to: String(to), replyTo });
  }

  /**
   * Sends a file (File or Blob) to a group; resolves to the clientMsgId.
   * Options replyTo and mentions as sendGroup()'s (checked before anything
   * is uploaded).
   */
  async sendGroupFile(gid, blob, options = {}) {
    if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
    const replyTo = replyOf(options.replyTo);
    const mentions = mentionsOf(options.mentions);
    const m = await this.prepareFile(blob, options);
    return this.sendMsg({ ...m, group: String(gid), replyTo, mentions });
  }

  /** The file of a file message as a Blob: its inline bytes, or the route's copy (GET /files/<ref>). */
  async downloadFile(message, { signal } = {}) {
    const f = message?.file;
    if (message?.kind !== 'file' || !f) throw new ClientError('not-a-file', 'not a file message');
    const type = f.contentType || 'application/octet-stream';
    if (f.ref) return this.api.download(f.ref, { signal });
    return new Blob([message.data || new Uint8Array(0)], { type });
  }

  /** What the client knows of one of its messages, by clientMsgId (or null). */
  status(clientMsgId) {
    const r = this._out.recs.get(clientMsgId);
    return r ? sentMessage(r) : null;
  }

  /** What the client knows of one of its messages, by the route's msgId (or null). */
  statusByMsgId(msgId) {
    const r = this._out.byMsgId.get(msgId);
    return r ? sentMessage(r) : null;
  }

  /** The n most recently sent messages (all it remembers when n <= 0), oldest first. */
  recent(n = 0) {
    const list = n > 0 ? this._out.order.slice(-n) : this._out.order.slice();
    return list.map(sentMessage);
  }

  /** How many sent messages still wait for the route's answer. */
  get pending() {
    return this._out.pendingCount();
  }

  // ------------------------------------------------------------ reading

  /**
   * Tells the senders that these messages were read: Message objects (as
   * events or history give them) or msgIds of messages shown lately. It
   * first acknowledges what was shown (so DELIVERED reaches the sender
   * before READ), then writes READ{msgIds, seqs, peer, group} per sender
   * and group. Messages without an inbox seq (a large group's timeline)
   * and our own are skipped. Offline, the READs wait for the next link.
   * It returns how many messages it named.
   */
  markRead(items) {
    const list = [].concat(items || []);
    const groups = new Map();
    let upTo = 0;
    let n = 0;
    for (const it of list) {
      const id = typeof it === 'string' ? it : it?.msgId;
      if (!id) continue;
      const known = this._shown.peek(id);
      if (known?.react) continue; // a reaction is no message to read
      const seq = (typeof it === 'object' && it.seq) || known?.seq || 0;
      const group = (typeof it === 'object' ? it.group : known?.group) || '';
      const from = (typeof it === 'object' ? it.from : known?.from) || '';
      if (known) upTo = Math.max(upTo, known.seq);
      if (!seq || !from || from === this._info.userId || from === '0') continue;
      const key = `${group}\u0000${from}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { peer: from, group, ids: [], seqs: [] }));
      if (!g.ids.includes(id)) {
        g.ids.push(id);
        g.seqs.push(seq);
        n++;
      }
    }
    if (upTo > 0) this._acks.show(Math.min(upTo, this._inbox.last), 0, Date.now());
    for (const g of groups.values()) {
      for (let i = 0; i < g.ids.length; i += MAX_READ_IDS) {
        this._pendingReads.push({ peer: g.peer, group: g.group, ids: g.ids.slice(i, i + MAX_READ_IDS), seqs: g.seqs.slice(i, i + MAX_READ_IDS) });
      }
    }
    if (this._pendingReads.length > MAX_PENDING_READS) this._pendingReads.splice(0, this._pendingReads.length - MAX_PENDING_READS);
    if (this._cur && this._open) this._flushReads(this._cur);
    return n;
  }

  _flushReads(l) {
    if (!this._pendingReads.length) return;
    const { seq, ok } = this._acks.unacked();
    if (ok) {
      if (!l.send(ackFrame(seq))) return;
      this._acks.sent(seq, Date.now());
    }
    while (this._pendingReads.length) {
      const r = this._pendingReads[0];
      const read = { msgIds: r.ids, seqs: r.seqs.map(String), peer: r.peer };
      if (r.group) read.group = r.group;
      if (!l.send({ type: 'READ', read })) return;
      this._pendingReads.shift();
    }
  }

  // ------------------------------------------------------------ presence

  /**
   * Watches the presence of users (ids or names) and of the members of
   * groups (this user must be a member of each), replacing the previous
   * subscription; with neither it ends it. It resolves to the current state
   * of every watched user (groups' members after the users, this user left
   * out of groups); changes then come as 'presence' events. Offline, the
   * SUBSCRIBE waits for the next link; after every reconnect the client
   * subscribes again by itself (the snapshot comes as a 'presence' event).
   * A refused subscription (unknown user: GatewayError 9100; not a member:
   * 4030; no such group: 9200; too many users: 3000) rejects with the
   * GatewayError and leaves the previous one in force. A later subscribe()
   * before this one was sent rejects it (ClientError 'superseded'); an
   * aborted signal rejects it but the subscription stays (the gateway may
   * answer it still).
   */
  subscribe(users = [], groups = [], { signal } = {}) {
    if (this._stopErr) return Promise.reject(this._stopErr);
    if (this._closing) return Promise.reject(new ClientError(ClientError.CLOSED, 'closed'));
    if (!this._started) return Promise.reject(new ClientError(ClientError.NOT_STARTED, 'not started'));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const names = (x) => [].concat(x ?? []).map((v) => String(v).trim()).filter(Boolean);
    const sub = { users: names(users), groups: names(groups) };
    const p = this._pres;
    const req = SUBSCRIBE_REQ_BASE + ++p.req;
    const prev = p.sub;
    p.sub = sub;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (p.waiting.get(req) !== w) return;
        p.waiting.delete(req);
        reject(abortError(signal));
      };
      const w = {
        req,
        sub,
        prev,
        link: null,
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      p.waiting.set(req, w);
      signal?.addEventListener('abort', onAbort, { once: true });
      const l = this._cur;
      if (l && this._open && l.send(subscribeFrame(req, sub))) w.link = l;
    });
  }

  /**
   * The latest state learned of a watched user, by id: {userId, userName,
   * online, platform, atMs, lastSeen (offline: when its last session ended,
   * unix ms; 0 online or not known)}, or null when not watched or not known
   * yet.
   */
  presenceOf(userId) {
    const s = this._pres.states.get(String(userId));
    return s ? { ...s } : null;
  }

  /** The subscription in force ({users, groups} as given), or null. */
  get subscription() {
    const sub = this._pres.sub;
    return sub ? { users: [...sub.users], groups: [...sub.groups] } : null;
  }

  // _resubscribe sends the subscription in force on a new link: the
  // subscribe() call that set it reuses its req_id (it was never sent, or
  // its link died before the answer); calls it replaced are rejected.
  // Without a waiting call it goes with a new req_id and its answer is only
  // a 'presence' event.
  _resubscribe(l) {
    const p = this._pres;
    let sent = false;
    for (const w of [...p.waiting.values()]) {
      if (w.link && !w.link.done) continue; // answered on its live link
      if (w.sub !== p.sub || sent) {
        p.waiting.delete(w.req);
        w.reject(new ClientError(ClientError.SUPERSEDED, 'subscribe: replaced by a later subscribe before it was answered'));
        continue;
      }
      w.link = l;
      sent = true;
      if (!l.send(subscribeFrame(w.req, w.sub))) w.link = null;
    }
    if (sent || !p.sub || p.sub.users.length + p.sub.groups.length === 0) return;
    l.send(subscribeFrame(SUBSCRIBE_REQ_BASE + ++p.req, p.sub));
  }

  // _presence takes a PRESENCE frame: a snapshot replaces what the client
  // knew (and answers the subscribe() of its req_id); a change is kept and
  // reported for watched users only, and only when it is not older than
  // what the client has.
  _presence(f) {
    const pr = f.presence || {};
    const states = (Array.isArray(pr.states) ? pr.states : []).map(wirePresenceState);
    const p = this._pres;
    if (pr.snapshot === true) {
      p.states = new Map(states.map((s) => [s.userId, s]));
      const req = num(f.reqId);
      const w = p.waiting.get(req);
      if (w) {
        p.waiting.delete(req);
        w.resolve(states.map((s) => ({ ...s })));
      }
      this._emit('presence', { states: states.map((s) => ({ ...s })), snapshot: true });
      return;
    }
    const kept = [];
    for (const s of states) {
      const old = p.states.get(s.userId);
      if (!old || old.atMs > s.atMs) continue;
      p.states.set(s.userId, s);
      kept.push({ ...s });
    }
    if (kept.length) this._emit('presence', { states: kept, snapshot: false });
  }

  // _subscribeRefused hands an ERROR answering a subscribe() to its caller
  // (the previous subscription is in force again) and reports whether it
  // did.
  _subscribeRefused(req, e) {
    if (req < SUBSCRIBE_REQ_BASE) return false;
    const p = this._pres;
    const w = p.waiting.get(req);
    if (!w) return false;
    p.waiting.delete(req);
    if (p.sub === w.sub) p.sub = w.prev;
    w.reject(e);
    return true;
  }

  _failSubscribes(err) {
    const p = this._pres;
    const ws = [...p.waiting.values()];
    p.waiting.clear();
    for (const w of ws) w.reject(err);
  }

  /**
   * Tells a user (id or name) that this user is typing (stopped: that it
   * stopped, e.g. the draft was cleared). Live only: nothing is stored or
   * answered, it is dropped when offline (false) and a recipient offline
   * never sees it; the gateway drops indicators over its rate, so send one
   * when typing starts and at most every few seconds after.
   */
  typing(to, stopped = false) {
    if (!to) throw new ClientError(ClientError.NO_RECIPIENT, 'no recipient');
    return this._sendTyping({ to: String(to) }, stopped);
  }

  /** typing() to a group's online members (groups of at most 200 members; larger ones get none). */
  typingInGroup(gid, stopped = false) {
    if (!gid) throw new ClientError(ClientError.NO_GROUP, 'no group');
    return this._sendTyping({ group: String(gid) }, stopped);
  }

  _sendTyping(t, stopped) {
    if (stopped) t.stopped = true;
    const l = this._cur;
    if (this._stopErr || this._closing || !l || !this._open) return false;
    return l.send({ type: 'TYPING', typing: t });
  }

  // ------------------------------------------------------------ the route

  _needLogin() {
    if (!this.api.accessToken && !this._info.userId) throw new ClientError(ClientError.NOT_LOGGED_IN, 'not logged in');
  }

  /** Who is online (GET /onlineUser). */
  onlineUsers(opts) {
    this._needLogin();
    return this.api.onlineUsers(opts);
  }

  /** One page of history (GET /history): {messages (newest first), next}. */
  history(q = {}, opts) {
    this._needLogin();
    return this.api.history(q, opts);
  }

  /** History following the cursor until n messages (see Api.historyFill). */
  historyFill(q = {}, n = 0, opts) {
    this._needLogin();
    return this.api.historyFill(q, n, opts);
  }

  /** Removes messages from this user's own history (see Api.deleteHistory). */
  deleteHistory(msgIds, opts) {
    this._needLogin();
    return this.api.deleteHistory(msgIds, opts);
  }

  /**
   * Changes the user's password (Api.changePassword) and keeps this client
   * logged in: its reconnects use the new password, and it keeps the
   * resume token the route handed this session in place of the revoked
   * ones (a 'resume' event). Resolves to how many other sessions ended. A
   * refusal (ApiError 4030 wrong password, 3000, 4291) changes nothing.
   */
  async changePassword(current, next, opts) {
    this._needLogin();
    const res = await this.api.changePassword(current, next, opts);
    this.opts.password = String(next);
    this._setResume(res.resumeToken, res.resumeExpiresAt);
    return res.sessionsEnded;
  }

  /**
   * Ends the user's other sessions and remembered logins
   * (Api.logoutOthers); this client keeps the resume token the route handed
   * it (a 'resume' event). Resolves to how many other sessions ended.
   */
  async logoutOthers(password, opts) {
    this._needLogin();
    const res = await this.api.logoutOthers(password, opts);
    this._setResume(res.resumeToken, res.resumeExpiresAt);
    return res.sessionsEnded;
  }

  /**
   * Deletes the user's account for good (Api.deleteAccount), then ends
   * this client: no POST /offLine (unlike close(): the session went with
   * the account), a 'resume' event with token '' (unlike disconnect(): no
   * token is left to keep), and the state saved for the user in the
   * storage (position, outbox, statuses) is forgotten; messages still
   * waiting for an answer are dropped. Resolves to the account deleted,
   * {userId, userName}, once the client is closed (state 'closed', a
   * 'closed' event).
   *
   * The route kicks every session of the user, this one too, before it
   * answers, so the gateway's KICK usually comes first: the client stops
   * before this resolves ('kicked' with reason "account deleted", state
   * 'stopped'; then 'closed'). When the answer comes first the client
   * closes and the KICK never shows (no 'kicked', only 'closed'). A
   * refusal (ApiError 4030: a wrong password, or an account the route's
   * --auth manages; 3000; 4291) changes nothing; a call that got no answer
   * (ApiError code 0) may still have deleted the account, and then the
   * KICK stops the client ('kicked').
   */
  async deleteAccount(password, opts) {
    this._needLogin();
    // _stop forgets the key when the KICK comes first: take it now.
    const key = this._stateKey;
    const user = await this.api.deleteAccount(password, opts);
    await this._end(false, true);
    // Whatever ended the client (a close() the 'kicked' event made the
    // page call, this call), nothing of the account is kept.
    this._stateKey = '';
    if (key) {
      try {
        this._storage.removeItem(key);
      } catch {
        // storage off: nothing kept
      }
    }
    return user;
  }

  createGroup(name, open = false, opts) {
    this._needLogin();
    return this.api.createGroup(name, open, opts);
  }
  groups(opts) {
    this._needLogin();
    return this.api.groups(opts);
  }
  group(gid, opts) {
    this._needLogin();
    return this.api.group(gid, opts);
  }
  groupMembers(gid, opts) {
    this._needLogin();
    return this.api.groupMembers(gid, opts);
  }
  async joinGroup(gid, opts) {
    this._needLogin();
    const g = await this.api.joinGroup(gid, opts);
    // A large group's messages after the join: ask for the timeline.
    this._poke();
    return g;
  }
  inviteToGroup(gid, users, opts) {
    this._needLogin();
    return this.api.inviteToGroup(gid, users, opts);
  }
  leaveGroup(gid, opts) {
    this._needLogin();
    return this.api.leaveGroup(gid, opts);
  }
  kickFromGroup(gid, user, opts) {
    this._needLogin();
    return this.api.kickFromGroup(gid, user, opts);
  }
  renameGroup(gid, name, opts) {
    this._needLogin();
    return this.api.renameGroup(gid, name, opts);
  }
  transferGroup(gid, user, opts) {
    this._needLogin();
    return this.api.transferGroup(gid, user, opts);
  }
  dissolveGroup(gid, opts) {
    this._needLogin();
    return this.api.dissolveGroup(gid, opts);
  }

  /** Group receipt counts by msgId; they also raise the statuses this client reports. */
  async groupReceipts(msgIds, opts) {
    this._needLogin();
    const counts = await this.api.groupReceipts(msgIds, opts);
    for (const r of this._out.groupCounts(counts)) this._statusChanged(r);
    return counts;
  }

  /** A private message the route sends after delaySeconds (POST /delay). */
  delay(to, text, delaySeconds, opts) {
    this._needLogin();
    return this.api.delay(to, text, delaySeconds, opts);
  }

  /** The users this user blocked (Api.blocks): [{userId, userName}], by id. */
  blocks(opts) {
    this._needLogin();
    return this.api.blocks(opts);
  }

  /**
   * Blocks a user, by id or name (Api.block): their private messages are
   * no longer delivered here, and what this user sends them fails with
   * GatewayError 4030 ('error' event, status 'failed'). Resolves to
   * {userId, userName}.
   */
  block(user, opts) {
    this._needLogin();
    return this.api.block(user, opts);
  }

  /** Unblocks a user, by id or name (Api.unblock): {userId, userName}. */
  unblock(user, opts) {
    this._needLogin();
    return this.api.unblock(user, opts);
  }

  // ------------------------------------------------------------ mutes

  /**
   * The conversations this user muted (Api.mutes): [{userId, userName,
   * group, untilMs}], users first, then groups, each by id. The answer
   * replaces the list muted() consults (a 'mutes' event when that changed):
   * call it to learn what the user's other devices muted or unmuted since
   * (the route pushes no change). Of reads made at the same time the one
   * asked last wins, and none undoes a change of this client's that was
   * answered after it was asked.
   */
  mutes(opts) {
    this._needLogin();
    return this._readMutes(opts);
  }

  /**
   * Mutes the conversation with a user, by id or name, for seconds (0 or
   * absent: until unmuted) (Api.muteUser); muted() knows it at once (a
   * 'mutes' event). Resolves to the Mute.
   */
  muteUser(user, seconds, opts) {
    this._needLogin();
    return this.api.muteUser(user, seconds, opts).then((m) => this._ownMute(m, true));
  }

  /** Mutes a group this user is in for seconds (0 or absent: until unmuted) (Api.muteGroup); as muteUser(). */
  muteGroup(gid, seconds, opts) {
    this._needLogin();
    return this.api.muteGroup(gid, seconds, opts).then((m) => this._ownMute(m, true));
  }

  /** Unmutes the conversation with a user, by id or name (Api.unmuteUser); muted() knows at once. */
  unmuteUser(user, opts) {
    this._needLogin();
    return this.api.unmuteUser(user, opts).then((m) => this._ownMute(m, false));
  }

  /** Unmutes a group (Api.unmuteGroup); muted() knows at once. */
  unmuteGroup(gid, opts) {
    this._needLogin();
    return this.api.unmuteGroup(gid, opts).then((m) => this._ownMute(m, false));
  }

  /**
   * The muted conversations as this client last read them (mutes(), the
   * automatic read after the first login, its own mute and unmute
   * answers), those ended left out: [{userId, userName, group, untilMs}],
   * users first, then groups, each by id; [] before anything is known.
   */
  get muteList() {
    return sortedMutes(this._mutes.list, Date.now());
  }

  /**
   * Whether an app should stay quiet about message m (no sound, badge or
   * desktop notification): its conversation is muted in the list this
   * client read last, the mute not ended (untilMs 0, or after now), and it
   * does not mention the user (mentionsMe). A private message's
   * conversation is its other party: from, or to for the user's own
   * (outgoing); a group message's its group. A broadcast belongs to none:
   * never muted. False while no list is known.
   */
  muted(m) {
    if (!m || m.broadcast) return false;
    const me = this._info.userId || this.api.userId;
    if (m.mentionsMe === true || (me && Array.isArray(m.mentions) && m.mentions.includes(me))) return false;
    const now = Date.now();
    if (m.group) return inForce(this._mutes.list?.get(`g:${m.group}`), now);
    const peer = String((m.outgoing || (me && m.from === me) ? m.to : m.from) ?? '');
    return inForce(this._muteOfUser(peer), now);
  }

  // _muteOfUser is the mute of the conversation with peer (an id, or a
  // name, matched case-insensitively), or undefined.
  _muteOfUser(peer) {
    const list = this._mutes.list;
    if (!peer || !list) return undefined;
    const m = list.get(`u:${peer}`);
    if (m || isUserId(peer)) return m;
    const name = peer.toLowerCase();
    for (const x of list.values()) if (x.userId && x.userName.toLowerCase() === name) return x;
    return undefined;
  }

  // _autoReadMutes reads the list once after the first login (again after
  // the next login when that read failed), so that muted() works without
  // the app calling mutes().
  _autoReadMutes() {
    const M = this._mutes;
    if (M.auto || this._closing) return;
    M.auto = true;
    // close() ends it (the client's life signal).
    this._readMutes({ signal: this._life.signal }).catch((err) => {
      M.auto = M.read;
      if (!this._closing) this._log?.warn?.('gocim: reading the muted conversations failed:', err?.message || err);
    });
  }

  async _readMutes(opts) {
    const M = this._mutes;
    const asked = ++M.tick;
    M.reading.add(asked);
    try {
      const list = await this.api.mutes(opts);
      if (asked > M.applied) {
        M.applied = asked;
        const next = new Map();
        for (const m of list) {
          const k = muteKey(m);
          if (k) next.set(k, m);
        }
        // What this client changed after the read was asked stays.
        for (const [k, o] of M.own) {
          if (o.n < asked) continue;
          if (o.mute) next.set(k, o.mute);
          else next.delete(k);
        }
        const first = !M.read;
        M.read = true;
        this._putMutes(next, first);
      }
      return list;
    } finally {
      M.reading.delete(asked);
      // Own changes older than every read under way matter no more.
      const oldest = Math.min(...M.reading);
      for (const [k, o] of M.own) if (o.n < oldest) M.own.delete(k);
    }
  }

  // _ownMute applies this client's own mute (on) or unmute m and returns m.
  _ownMute(m, on) {
    const k = muteKey(m);
    if (!k) return m;
    const M = this._mutes;
    const n = ++M.tick;
    if (M.reading.size) M.own.set(k, { n, mute: on ? m : null });
    const next = new Map(M.list || []);
    if (on) next.set(k, m);
    else next.delete(k);
    this._putMutes(next, false);
    return m;
  }

  // _putMutes makes next the list (the mutes ended left out) and emits
  // 'mutes' when it changed (or always: the first list read), then sets
  // the timer for the next mute to end.
  _putMutes(next, always) {
    const M = this._mutes;
    const now = Date.now();
    for (const [k, m] of next) if (!inForce(m, now)) next.delete(k);
    M.list = next;
    const after = sortedMutes(next, now);
    const changed = !sameMutes(M.last, after);
    M.last = after;
    if (!this._closing && (always || changed)) this._emit('mutes', { mutes: sortedMutes(next, now) });
    this._armMuteEnd();
  }

  // _armMuteEnd sets a timer for the next mute to end, which then leaves
  // the list (a 'mutes' event).
  _armMuteEnd() {
    const M = this._mutes;
    clearTimeout(M.timer);
    M.timer = null;
    if (this._closing || this._stopErr || !M.list) return;
    let end = 0;
    for (const m of M.list.values()) if (m.untilMs > 0 && (end === 0 || m.untilMs < end)) end = m.untilMs;
    if (end === 0) return;
    // setTimeout takes at most 2^31-1 ms (24.8 days): a longer wait is cut
    // and the timer set again.
    M.timer = setTimeout(() => {
      M.timer = null;
      this._putMutes(new Map(M.list), false);
    }, Math.min(Math.max(0, end - Date.now() + 1), 0x7fffffff));
  }

  // ------------------------------------------------------------ close

  /**
   * Acknowledges what was shown, logs the session off at the route (POST
   * /offLine, which also revokes its resume token: 'resume' with token
   * ''), closes the connection, stops reconnecting, saves the state and
   * emits 'closed'. Messages still waiting for an answer stay saved and
   * are sent by the next Client of this user. A second call (of close()
   * or disconnect()) waits for the first.
   */
  close() {
    return this._end(true);
  }

  /**
   * Ends the client as close() does but without logging the session off:
   * the last resume token stays usable, for a later page or process to
   * log in with (the resumeToken option). For "stay signed in"; close()
   * is the log-out.
   */
  disconnect() {
    return this._end(false);
  }

  // _end ends the client once: logOff, with POST /offLine (close());
  // gone, after the account was deleted (no /offLine, no token left, no
  // state saved).
  _end(logOff, gone = false) {
    if (!this._closed) this._closed = this._close(logOff, gone);
    return this._closed;
  }

  async _close(logOff, gone) {
    this._closing = true;
    if (logOff || gone) {
      // At once, before the route answers: the page forgets the token even
      // when the log-off fails, and no login still under way hands out one.
      this._setResume('', 0);
      this._loggedOff = true;
    }
    const stopped = !!this._stopErr;
    if (!this._stopErr) this._stopErr = new ClientError(ClientError.CLOSED, 'closed');
    const l = this._cur;
    let error = null;
    if (l && !stopped && !gone) {
      const { seq, ok } = this._acks.unacked();
      if (ok && l.send(ackFrame(seq))) this._acks.sent(seq, Date.now());
      const { gs } = this._tl.dueAcks(Date.now(), true);
      if (gs.length && l.send({ type: 'ACK', ack: { groups: gs } })) this._tl.acked(gs, Date.now());
    }
    if (logOff && this._info.sessionId && !stopped && this.api.accessToken) {
      try {
        await this.api.offline();
      } catch (err) {
        error = err;
        this._log?.warn?.('gocim: offLine failed:', err?.message || err);
      }
    }
    this._life.abort(new ClientError(ClientError.CLOSED, 'closed'));
    this._failSubscribes(new ClientError(ClientError.CLOSED, 'closed'));
    if (this._cur) this._cur.fail(new ClientError(ClientError.CLOSED, 'closed'));
    clearTimeout(this._controlTimer);
    clearTimeout(this._mutes.timer);
    this._mutes.timer = null;
    this._unlisten.forEach((f) => f());
    this._unlisten = [];
    if (gone) {
      // Nothing of a deleted account is kept (deleteAccount() removes
      // what was saved).
      clearTimeout(this._saveTimer);
      this._saveTimer = null;
      this._stateKey = '';
    } else if (!stopped) {
      this._saveNow();
    }
    this._setState('closed');
    this._emit('closed', {});
    if (error) throw error;
  }

  // ------------------------------------------------------------ storage

  _load(userId) {
    if (!userId || this._loadedFor === userId || this._stopErr) return;
    this._loadedFor = userId;
    this._stateKey = `gocim:v${STATE_KEY_VERSION}:${this.routeUrl || globalThis.location?.origin || ''}:${userId}`;
    let s = null;
    try {
      const raw = this._storage.getItem(this._stateKey);
      s = raw ? JSON.parse(raw) : null;
    } catch (err) {
      this._log?.warn?.('gocim: saved state unreadable, starting afresh:', err?.message || err);
    }
    if (!s || typeof s !== 'object') return;
    const last = num(s.lastSeq);
    if (last > this._inbox.last) {
      this._inbox.restore(last, num(s.lastTsMs));
      this._acks.shown = last;
      this._acks.acked = Math.min(num(s.acked), last);
      if (last > this._acks.acked) {
        this._acks.posted = true;
        this._acks.since = 0;
      }
    }
    for (const [gid, g] of Object.entries(s.groups || {})) {
      if (Array.isArray(g)) this._tl.restore(gid, num(g[0]), num(g[1]));
    }
    for (const e of Array.isArray(s.shown) ? s.shown : []) {
      if (Array.isArray(e) && e[0]) this._shown.containsOrAdd(String(e[0]), { group: String(e[1] || ''), seq: num(e[2]), from: String(e[3] || ''), react: e[4] === 1 });
    }
    // Oldest first in the saved list; restore puts each in front, so walk
    // it backwards.
    const sent = Array.isArray(s.sent) ? s.sent : [];
    const out = Array.isArray(s.outbox) ? s.outbox : [];
    for (let i = out.length - 1; i >= 0; i--) this._out.restore(out[i]);
    for (let i = sent.length - 1; i >= 0; i--) this._out.restore(sent[i]);
    for (const r of this._out.queue) this._emit('status', sentMessage(r));
  }

  _dirty() {
    if (!this._stateKey || this._saveTimer) return;
    this._saveTimer = setTimeout(() => {
      this._saveTimer = null;
      this._saveNow();
    }, 250);
  }

  _saveNow() {
    clearTimeout(this._saveTimer);
    this._saveTimer = null;
    if (!this._stateKey) return;
    const [last, ts] = this._inbox.position();
    const groups = {};
    for (const [gid, t] of this._tl.of) if (t.known || t.in.last > 0) groups[gid] = [t.in.last, t.acks.acked];
    const shown = [];
    for (const [id, v] of this._shown.entries()) shown.push(v.react ? [id, v.group, v.seq, v.from, 1] : [id, v.group, v.seq, v.from]);
    const outbox = [];
    let bytes = 0;
    for (const r of this._out.queue) {
      if (!r.pending || (r.once && r.written)) continue;
      bytes += r.frame.length;
      if (bytes > PERSIST_OUTBOX_BYTES) break;
      outbox.push({ ...persistRecord(r), frame: r.frame, tries: r.tries, written: r.written });
    }
    const sent = this._out.order.filter((r) => !r.pending && r.msgId).slice(-PERSIST_SENT).map(persistRecord);
    const state = { v: STATE_KEY_VERSION, lastSeq: last, lastTsMs: ts, acked: this._acks.acked, groups, shown: shown.slice(-PERSIST_SHOWN), outbox, sent };
    try {
      this._storage.setItem(this._stateKey, JSON.stringify(state));
    } catch (err) {
      // Quota or a storage turned off: try without the outbox's bodies.
      try {
        state.outbox = [];
        state.shown = [];
        this._storage.setItem(this._stateKey, JSON.stringify(state));
      } catch {
        // nothing more to do
      }
      this._log?.warn?.('gocim: saving the state failed:', err?.message || err);
    }
  }

  /** Forgets the saved state of this user (position, outbox, statuses) in the storage. */
  forgetSavedState() {
    if (!this._stateKey) return;
    try {
      this._storage.removeItem(this._stateKey);
    } catch {
      // ignore
    }
  }
}

function persistRecord(r) {
  const p = { clientMsgId: r.clientMsgId, msgId: r.msgId, to: r.to, group: r.group, kind: r.kind, status: r.status, at: r.at, seen: r.seen };
  if (r.broadcast) p.broadcast = true;
  if (r.text) p.text = r.text;
  if (r.file) p.file = r.file;
  if (r.op) {
    p.op = r.op;
    p.refMsgId = r.refMsgId;
  }
  if (r.replyTo) p.replyTo = r.replyTo;
  if (r.mentions.length) p.mentions = r.mentions;
  if (r.recipients) p.recipients = r.recipients;
  if (r.delivered) p.delivered = r.delivered;
  if (r.read) p.read = r.read;
  if (r.error) p.error = { code: r.error.code, text: r.error.text };
  return p;
}

// muteKey is the list's key of a Mute: 'u:<user id>' or 'g:<gid>' ('' for
// neither).
function muteKey(m) {
  if (m.group) return `g:${m.group}`;
  return m.userId ? `u:${m.userId}` : '';
}

// inForce: mute m holds at now (no end, or an end after now).
function inForce(m, now) {
  return !!m && (m.untilMs === 0 || m.untilMs > now);
}

// byId orders decimal ids as numbers (shorter first), then as text.
function byId(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

// sortedMutes is a copy of the mutes of list in force at now, as the route
// orders them: users first, then groups, each by id.
function sortedMutes(list, now) {
  if (!list) return [];
  const ms = [...list.values()].filter((m) => inForce(m, now)).map((m) => ({ ...m }));
  return ms.sort((a, b) => (a.group ? 1 : 0) - (b.group ? 1 : 0) || (a.group ? byId(a.group, b.group) : byId(a.userId, b.userId)));
}

function sameMutes(a, b) {
  return a.length === b.length && a.every((m, i) => m.userId === b[i].userId && m.userName === b[i].userName && m.group === b[i].group && m.untilMs === b[i].untilMs);
}

function subscribeFrame(req, sub) {
  const s = {};
  if (sub.users.length) s.users = sub.users;
  if (sub.groups.length) s.groups = sub.groups;
  return { type: 'SUBSCRIBE', reqId: String(req), subscribe: s };
}

function ackFrame(seq) {
  return { type: 'ACK', ack: { seq: String(seq) } };
}

function retryAfterMs(err) {
  return err instanceof ApiError && err.retryAfter > 0 ? err.retryAfter * 1000 : 0;
}
