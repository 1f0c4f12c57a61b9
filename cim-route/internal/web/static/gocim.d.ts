// Types of gocim.js, the gocim browser client (an ES module without
// dependencies). See the comment at the top of gocim.js for how it works.

export declare const VERSION: string;
/** The WebSocket subprotocol the client speaks: each message one Frame in protojson. */
export declare const SUBPROTOCOL: 'gocim.json';

/** Result codes of the route's API and of ERROR frames (proto/codes). */
export declare const Codes: Readonly<{
  OK: 9000;
  RepeatLogin: 5000;
  Offline: 7000;
  NoServer: 7100;
  BadAccount: 9100;
  BadArgument: 3000;
  Unauthorized: 4010;
  WrongGateway: 4011;
  LoginTimeout: 4080;
  FrameTooLarge: 4130;
  BadFrame: 4000;
  SlowConsumer: 4290;
  Unavailable: 5030;
  Internal: 5001;
  GoingAway: 5031;
  Reconnect: 5033;
  KickedElsewhere: 4090;
  StaleSession: 4091;
  Forbidden: 4030;
  RateLimited: 4291;
  TooLarge: 4131;
  NoGroup: 9200;
  GroupFull: 9201;
  TooManyConnections: 4292;
  QuotaExceeded: 4293;
  Busy: 5032;
  StorageFull: 5070;
}>;

/** The defaults of ClientOptions (milliseconds where it is a time). */
export declare const Defaults: Readonly<{
  heartbeatMs: number;
  pongTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  startTimeoutMs: number;
  resendTimeoutMs: number;
  resendMax: number;
  sentKept: number;
  ackDelayMs: number;
  ackIntervalMs: number;
  ackEvery: number;
  groupAckDelayMs: number;
  syncTimeoutMs: number;
  gapWaitMs: number;
  groupGapWaitMs: number;
  maxFrame: number;
  httpTimeoutMs: number;
}>;

/** A short English description of a result code. */
export declare function codeText(code: number): string;
export declare function utf8Encode(s: string): Uint8Array;
export declare function utf8Decode(b: Uint8Array): string;
/** Standard base64 with padding, as protojson writes bytes. */
export declare function bytesToBase64(b: Uint8Array): string;
/** Standard or URL-safe base64, padded or not. */
export declare function base64ToBytes(s: string): Uint8Array;
/** The most bytes (UTF-8) of a reaction's emoji: 32. */
export declare const MAX_REACTION_BYTES: 32;
/** The most users one group message mentions (SendOptions.mentions): 50. */
export declare const MAX_MENTIONS: 50;
/**
 * A last seen (unix ms) in words, relative to now (unix ms, default Date.now()), local time: "last seen just now"
 * (under a minute), "last seen 5 min ago", "last seen today at 14:02", "last seen yesterday at 14:02", "last seen
 * 3 Dec at 14:02" ("3 Dec 2025 at 14:02" another year); '' for 0. Word it again as time passes.
 */
export declare function lastSeenText(lastSeen: number, now?: number): string;

/** A failure the route answered with a result code; code 0: no route answer at all (network, timeout, a proxy's page). */
export declare class ApiError extends Error {
  readonly name: 'ApiError';
  readonly code: number;
  readonly httpStatus: number;
  /** Seconds the route asked to wait (HTTP 429 Retry-After); 0 when none. */
  readonly retryAfter: number;
  /** The route's own message. */
  readonly detail: string;
  constructor(code: number, message: string, httpStatus?: number, retryAfter?: number, options?: { cause?: unknown });
}

/** An ERROR frame from a gateway. */
export declare class GatewayError extends Error {
  readonly name: 'GatewayError';
  readonly code: number;
  readonly text: string;
  /** Set when the error answers one of this client's messages. */
  readonly clientMsgId: string;
  constructor(code: number, text?: string, clientMsgId?: string);
}

export type ClientErrorReason =
  | 'closed'
  | 'stopped'
  | 'not-started'
  | 'started'
  | 'not-logged-in'
  | 'too-large'
  | 'no-recipient'
  | 'no-group'
  | 'timeout'
  | 'aborted'
  | 'superseded'
  | 'no-message'
  | 'bad-op'
  | 'bad-reply'
  | 'bad-reaction'
  | 'bad-mentions'
  | 'bad-duration'
  | 'bad-options'
  | 'bad-ref'
  | 'not-a-file'
  | 'no-fetch'
  | 'no-websocket'
  | 'no-credential';

/** A call refused by the client itself. */
export declare class ClientError extends Error {
  readonly name: 'ClientError';
  readonly reason: ClientErrorReason;
  constructor(reason: ClientErrorReason, message?: string);
  static readonly CLOSED: 'closed';
  static readonly STOPPED: 'stopped';
  static readonly NOT_STARTED: 'not-started';
  static readonly STARTED: 'started';
  static readonly NOT_LOGGED_IN: 'not-logged-in';
  static readonly TOO_LARGE: 'too-large';
  static readonly NO_RECIPIENT: 'no-recipient';
  static readonly NO_GROUP: 'no-group';
  static readonly TIMEOUT: 'timeout';
  static readonly ABORTED: 'aborted';
  static readonly SUPERSEDED: 'superseded';
  static readonly NO_MESSAGE: 'no-message';
}

/** Where the client keeps its state between page loads (localStorage by default). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A StorageLike kept in memory. */
export declare class MemoryStorage implements StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface User {
  userId: string;
  userName: string;
}

/**
 * A muted conversation (GET /mutes): with a user (userId and userName;
 * group "") or a group (group; userId and userName "").
 */
export interface Mute {
  userId: string;
  userName: string;
  group: string;
  /** When the mute ends, unix ms; 0 when it lasts until unmuted. */
  untilMs: number;
}

/** The detail of a 'mutes' event. */
export interface MutesEvent {
  /** The muted conversations in force, users first, then groups, each by id (as Client.muteList). */
  mutes: Mute[];
}

/** The gateway a login sends the user to. */
export interface Server {
  /** The gateway id, "<host>:<tcpPort>:<httpPort>". */
  id: string;
  host: string;
  tcpPort: number;
  httpPort: number;
  /** Where browsers connect (ws:// or wss://); "" when the gateway has no WebSocket listener. */
  wsUrl: string;
}

export interface LoginResult {
  userId: string;
  userName: string;
  sessionId: string;
  /** The gateway token for LOGIN, and its expiry (unix seconds). */
  token: string;
  expiresAt: number;
  /** The bearer for the route's API, and its expiry (unix seconds). */
  accessToken: string;
  accessExpiresAt: number;
  /** Logs in again once without the password (Api.resume), and its expiry (unix seconds); "" and 0 when the route hands none out. */
  resumeToken: string;
  resumeExpiresAt: number;
  server: Server;
}

export interface FileInfo {
  name: string;
  size: number;
  contentType: string;
  /** Set when the bytes were uploaded to the route instead of inlined. */
  ref: string;
}

/** What Api.changePassword and Api.logoutOthers did. */
export interface SecuredResult {
  /** How many other sessions of the user ended. */
  sessionsEnded: number;
  /** This session's new resume token (every earlier one was revoked), and its expiry (unix seconds); "" and 0 when the route hands none out. */
  resumeToken: string;
  resumeExpiresAt: number;
}

export type MessageKind = 'text' | 'file';

/**
 * What a message is (docs/ARCHITECTURE.md, "Recall, edit and delete"):
 *  - '': a new message (shown as itself).
 *  - 'recall' | 'edit' (live only, with refMsgId): a change of the earlier
 *    message refMsgId by its sender, not a message to show. Apply it only
 *    when that message's from equals this one's; 'recall' hides it, 'edit'
 *    replaces its text with this one's text. An edit of a message already
 *    recalled is ignored (a recall is final).
 *  - 'edited' | 'recalled' (history only): the message's state now; text is
 *    its latest text, or none (nor file) when recalled.
 *  - anything else: a change this client does not know; not a message to show.
 * (A reaction, MSG_OP_REACT, never comes as a 'message': see ReactionEvent.)
 */
export type MessageOp = '' | 'recall' | 'edit' | 'edited' | 'recalled' | (string & {});

/** One emoji's reactions to a message, as history gives them. */
export interface Reaction {
  /** The emoji (1..32 bytes of UTF-8). */
  emoji: string;
  /** How many users reacted with it (at least 1). */
  count: number;
  /** It is this user's own reaction (at most one emoji of a message is). */
  mine: boolean;
}

/**
 * The detail of a 'reaction' event: from's reaction to the message msgId
 * (of the conversation to/group) is now emoji, or none when emoji is "".
 * One reaction per user and message: it replaces whatever from had. Not a
 * message: never show it as one, count it unread or mark it read.
 */
export interface ReactionEvent {
  /** Who reacted (user id) and their name. */
  from: string;
  fromName: string;
  /** The recipient of a private conversation's reaction ("" in a group). */
  to: string;
  /** The group of the message ("" for a private one). */
  group: string;
  /** The message reacted to (the REACT's refMsgId). */
  msgId: string;
  /** The emoji; "" when from took the reaction back. */
  emoji: string;
  /** The REACT's own msgId (time-ordered: a later reaction has a greater one). */
  reactionId: string;
  timestampMs: number;
  /** This user made it on another of its devices (route --login-policy platform; from is the user's own id). */
  self: boolean;
}

/** A message as events and history give it. */
export interface Message {
  /** The route's id ("" for none). */
  msgId: string;
  /** The sender's id for it (live messages only; "" from history). */
  clientMsgId: string;
  /** The receiver's inbox seq; 0 for broadcasts and group-timeline messages. */
  seq: number;
  /** A large group's timeline position; 0 otherwise. */
  groupSeq: number;
  from: string;
  fromName: string;
  to: string;
  /** The group id of a group message; "" otherwise. */
  group: string;
  /** CIM's "group chat": to everybody online, nothing stored. */
  broadcast: boolean;
  kind: MessageKind;
  /** The text of a text message ("" for a file). */
  text: string;
  /** A file message's bytes when they came inline; null otherwise. */
  data: Uint8Array | null;
  file: FileInfo | null;
  timestampMs: number;
  /** '' for a new message; see MessageOp. */
  op: MessageOp;
  /** The message a 'recall' or an 'edit' changes; "" otherwise. */
  refMsgId: string;
  /**
   * The msgId of the earlier message of this conversation this one answers
   * (a reply; live and from history); "" for none. Only the form of it is
   * checked: show the message quoted when the one it names is known (one
   * shown, or from history), and apply nothing else from it.
   */
  replyTo: string;
  /**
   * The reactions to it, from history (in the order each emoji first
   * came; none once recalled); [] on live messages, whose reactions come as
   * 'reaction' events.
   */
  reactions: Reaction[];
  /**
   * The user ids of the group members the message mentions (live and from
   * history), as the route kept them: members only, without duplicates, in
   * the order the sender gave; [] for none (always on private messages).
   * The truth about who is mentioned: "@name" in the text is for display.
   */
  mentions: string[];
  /** mentions includes this client's user id (the message mentions the user). */
  mentionsMe: boolean;
  /**
   * On 'message' events: the user sent it from another of its devices
   * (route --login-policy platform; from is the user's own id): show it as
   * sent, to `to` or in `group`. Always false from history.
   */
  outgoing: boolean;
}

export type ReceiptStatus = 'sent' | 'delivered' | 'read';

export interface Receipt {
  status: ReceiptStatus;
  msgId: string;
  clientMsgId: string;
  /** The user whose action produced it. */
  by: string;
  timestampMs: number;
  seq: number;
  /** For group messages: the group, and how many members reached this status so far (with sent: members it went to). */
  group: string;
  count: number;
}

/** The user read messages on another of its devices (route --login-policy platform). */
export interface ReadElsewhere {
  /** The user whose messages were read ("" for a group's). */
  peer: string;
  /** The group whose messages were read ("" for a peer's). */
  group: string;
  /** The messages read. */
  msgIds: string[];
  timestampMs: number;
  /** The inbox seq of the receipt that told it. */
  seq: number;
}

export type SendStatus = 'pending' | 'failed' | 'sent' | 'delivered' | 'read';

/** What the client knows about one message it sent. */
export interface SentMessage {
  clientMsgId: string;
  /** The route's id, from RECEIPT_SENT. */
  msgId: string;
  /** The recipient as given ("" for a group message or a broadcast). */
  to: string;
  group: string;
  broadcast: boolean;
  kind: MessageKind;
  /** The text (an edit's new text; a reaction's emoji, "" when taken back). */
  text: string;
  file: FileInfo | null;
  /** 'recall', 'edit' or 'react' for a recall(), an edit() or a react() of refMsgId; '' for a message. */
  op: '' | 'recall' | 'edit' | 'react';
  refMsgId: string;
  /** The msgId of the message it answers (the replyTo option); "" for none. */
  replyTo: string;
  /** The mentions option as given (user ids or names; the route keeps the members); [] for none. */
  mentions: string[];
  /** The best status so far; it only rises (failed sits between pending and sent). */
  status: SendStatus;
  /** Tries started: 1 for the first write, +1 per resend after a timeout. */
  tries: number;
  /** Why it failed, when status is 'failed'. */
  error: GatewayError | null;
  /** When it was sent (ms since the epoch). */
  at: number;
  /** Group messages: members it went to, and that received and read it so far. */
  recipients: number;
  delivered: number;
  read: number;
}

export interface HistoryQuery {
  /** The conversation with this user (id or name). */
  peer?: string;
  /** One group's messages (not with peer). */
  group?: string;
  /** Text containing it, ignoring case. */
  keyword?: string;
  /** The previous page's next cursor. */
  before?: string;
  /** Page size, 1..100 (default 20). */
  limit?: number;
}

export interface HistoryPage {
  /** Newest first; changed ones with op 'edited' or 'recalled', deleted ones left out (the changes themselves never appear). */
  messages: Message[];
  /** The cursor of the next, older page; "" at the end. A page may be short, even empty, and still have one. */
  next: string;
}

export interface Group {
  groupId: string;
  name: string;
  /** The owner's user id; the owner is a member. */
  owner: string;
  /** Anyone may join; otherwise only invited users. */
  open: boolean;
  members: number;
}

export interface GroupCount {
  delivered: number;
  read: number;
}

export interface UploadResult {
  ref: string;
  name: string;
  size: number;
  contentType: string;
}

export interface DelayResult {
  delayId: string;
  /** When it will be sent (unix ms). */
  dueAt: number;
}

export interface ApiOptions {
  /** fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** Bound of one call (default 10 s); uploads get more by their size. */
  timeoutMs?: number;
  /** The platform logins name unless login() is given one (default "": none). */
  platform?: Platform | string;
}

/** The kinds of client a login may name (the route also takes another [a-z0-9-]{1,16}). */
export type Platform = 'terminal' | 'web' | 'mobile' | 'desktop' | 'device';

/** One user's state as GET /presence reports it. */
export interface UserPresence {
  userId: string;
  userName: string;
  online: boolean;
  /** When its session came online (unix ms); 0 offline. */
  since: number;
  /** Offline: when its last session ended (unix ms); 0 online, never seen, or hidden (the user blocked this one). */
  lastSeen: number;
}

/** One watched user's state as SUBSCRIBE's snapshot and PRESENCE changes give it. */
export interface PresenceState {
  userId: string;
  userName: string;
  /** A confirmed route on a live gateway. */
  online: boolean;
  /** The platform of the session that came or went ("" when its login named none). */
  platform: string;
  /**
   * When the route saw it, unix ms; the client keeps the newest per user. In a snapshot: online, when the
   * session was confirmed; offline, the last seen (0: never seen, or the user blocked this one).
   */
  atMs: number;
  /** Offline: when the user's last session ended (atMs; unix ms); 0 online or not known. Word it with lastSeenText(). */
  lastSeen: number;
}

/** The detail of a 'presence' event. */
export interface PresenceEvent {
  /** snapshot: every watched user (the answer to a subscribe, also after a reconnect); otherwise the changes. */
  states: PresenceState[];
  snapshot: boolean;
}

/** The detail of a 'typing' event. */
export interface TypingEvent {
  /** Who is typing (user id) and their name. */
  from: string;
  fromName: string;
  /** This user's id for a private indicator ("" in a group). */
  to: string;
  /** The group it is typing in ("" for a private one). */
  group: string;
  /** The user stopped typing (cleared the draft); otherwise show it for a few seconds. */
  stopped: boolean;
}

/** A client of the route's public HTTP API. Use one per user. */
export declare class Api {
  /** @param routeUrl the route's base URL; "" for the page's own origin. */
  constructor(routeUrl?: string, options?: ApiOptions);
  readonly base: string;
  timeoutMs: number;
  /** The bearer sent on session calls: the latest login's ("" for none). */
  accessToken: string;
  /** The platform logins name unless login() is given one ("" for none). */
  platform: string;
  /** The user and session of the latest login. */
  userId: string;
  sessionId: string;

  register(userName: string, password: string, opts?: CallOptions): Promise<User>;
  /** By user name or decimal user id; platform (else the Api's) goes with it. */
  login(user: string, password: string, opts?: CallOptions & { platform?: Platform | string }): Promise<LoginResult>;
  /** Logs in again with an earlier login's resumeToken instead of the password, once per token; ApiError 4010 when used or revoked. */
  resume(resumeToken: string, opts?: CallOptions): Promise<LoginResult>;
  onlineUsers(opts?: CallOptions & { after?: string; limit?: number }): Promise<User[]>;
  /** GET /presence?users=… (ids or names, at most 100), in the order asked; an unknown user is ApiError 9100. */
  presence(users: string | string[], opts?: CallOptions): Promise<UserPresence[]>;
  offline(opts?: CallOptions): Promise<void>;
  /**
   * POST /account/password (bearer): sets the password to next (6–128
   * characters, else ApiError 3000) given the current one. Every other
   * session of the user ends (kicked: "password changed") and every resume
   * token is revoked; this session stays and gets the new resumeToken. A
   * wrong current password is ApiError 4030 (HTTP 403); attempts are rate
   * limited like logins (4291).
   */
  changePassword(current: string, next: string, opts?: CallOptions): Promise<SecuredResult>;
  /**
   * POST /account/logout-others (bearer): given the password, ends every
   * other session of the user (kicked: "logged out by another device") and
   * revokes every resume token, remembered logins of offline devices too;
   * this session gets the new resumeToken. Fails as changePassword().
   */
  logoutOthers(password: string, opts?: CallOptions): Promise<SecuredResult>;
  /**
   * POST /account/delete (bearer): given the password, deletes the user's
   * own account for good (messages, history, remembered logins, blocks,
   * delayed messages; each group it owns passes to the member with the
   * lowest user id, one with no other member is dissolved, and it leaves
   * every group). Every session of the user, this one too, ends (kicked:
   * "account deleted") and the name can be registered again. Resolves to
   * the account deleted. A wrong password, or an account the route's
   * --auth manages, is ApiError 4030 (HTTP 403); attempts are rate limited
   * like logins (4291).
   */
  deleteAccount(password: string, opts?: CallOptions): Promise<User>;
  history(q?: HistoryQuery, opts?: CallOptions): Promise<HistoryPage>;
  historyFill(q?: HistoryQuery, n?: number, opts?: CallOptions): Promise<HistoryPage>;
  /**
   * POST /history/delete: the messages leave this user's own history (no
   * one else's; no device is told). More than 100 ids go in several calls;
   * unknown ids are harmless; none is ClientError 'no-message'.
   */
  deleteHistory(msgIds: string | string[], opts?: CallOptions): Promise<void>;
  upload(blob: Blob, opts?: { name?: string; contentType?: string; signal?: AbortSignal }): Promise<UploadResult>;
  download(ref: string, opts?: CallOptions): Promise<Blob>;
  createGroup(name: string, open?: boolean, opts?: CallOptions): Promise<Group>;
  groups(opts?: CallOptions): Promise<Group[]>;
  group(gid: string, opts?: CallOptions): Promise<Group>;
  groupMembers(gid: string, opts?: CallOptions & { after?: string; limit?: number }): Promise<User[]>;
  joinGroup(gid: string, opts?: CallOptions): Promise<Group>;
  inviteToGroup(gid: string, users: string | string[], opts?: CallOptions): Promise<string[]>;
  /** POST /groups/:gid/leave: the owner cannot (ApiError 4030) before it hands the group on (transferGroup) or dissolves it. */
  leaveGroup(gid: string, opts?: CallOptions): Promise<void>;
  kickFromGroup(gid: string, user: string, opts?: CallOptions): Promise<void>;
  renameGroup(gid: string, name: string, opts?: CallOptions): Promise<Group>;
  /**
   * POST /groups/:gid/owner {userId} (bearer, the owner only): hands the
   * group to another member, by user id or name; resolves to the group,
   * owner that member now (naming oneself changes nothing). Not the
   * owner, or a user not a member, is ApiError 4030 (HTTP 403); an unknown
   * user 9100; no user is ClientError 'no-recipient', no group 'no-group'.
   * Nobody is told live: members learn the owner from group() or groups().
   */
  transferGroup(gid: string, user: string, opts?: CallOptions): Promise<Group>;
  dissolveGroup(gid: string, opts?: CallOptions): Promise<void>;
  groupReceipts(msgIds: string | string[], opts?: CallOptions): Promise<Record<string, GroupCount>>;
  delay(to: string, text: string, delaySeconds: number, opts?: CallOptions): Promise<DelayResult>;
  /** GET /blocks (bearer): the users the caller blocked, by user id (at most 1000). */
  blocks(opts?: CallOptions): Promise<User[]>;
  /**
   * POST /blocks (bearer), user by id or name: their private messages to
   * the caller are answered SENT to them but never stored nor delivered;
   * the caller's to them fail with GatewayError 4030; typing between the
   * two is dropped; groups are unaffected. Blocked already is no error. An
   * unknown user is ApiError 9100, oneself 3000, more than 1000 blocked
   * 4293 (HTTP 429); no user at all is ClientError 'no-recipient'.
   */
  block(user: string, opts?: CallOptions): Promise<User>;
  /** DELETE /blocks/:user (bearer), by id or name; not blocked is no error, an unknown user ApiError 9100. */
  unblock(user: string, opts?: CallOptions): Promise<User>;
  /** GET /mutes (bearer): the muted conversations in force (expired ones left out), users first, then groups, each by id (at most 1000). */
  mutes(opts?: CallOptions): Promise<Mute[]>;
  /**
   * POST /mutes {user, forSeconds} (bearer), user by id or name: mutes the
   * conversation with that user for seconds, rounded up (0 or absent, or
   * more than 366 days: until unmuted); muting again replaces the end.
   * Messages still come and are stored: apps only notify less. Oneself is
   * ApiError 3000, an unknown user 9100, more than 1000 mutes 4293 (HTTP
   * 429); no user at all is ClientError 'no-recipient', seconds negative or
   * not a number ClientError 'bad-duration' (nothing sent).
   */
  muteUser(user: string, seconds?: number, opts?: CallOptions): Promise<Mute>;
  /**
   * POST /mutes {group, forSeconds} (bearer): muteUser() for a group the
   * caller is in; one it is not in is ApiError 4030, one that does not
   * exist 9200 (HTTP 404); no group is ClientError 'no-group'.
   */
  muteGroup(gid: string, seconds?: number, opts?: CallOptions): Promise<Mute>;
  /** DELETE /mutes?user= (bearer), by id or name: the conversation, untilMs 0; not muted is no error. */
  unmuteUser(user: string, opts?: CallOptions): Promise<Mute>;
  /** DELETE /mutes?group= (bearer): the group, untilMs 0; not muted is no error. */
  unmuteGroup(gid: string, opts?: CallOptions): Promise<Mute>;
}

export type ClientState = 'idle' | 'connecting' | 'online' | 'reconnecting' | 'stopped' | 'closed';

export interface ClientOptions {
  /** The route's base URL, e.g. "http://127.0.0.1:8080"; "" (default) for the page's own origin. */
  routeUrl?: string;
  /** The account's name, or its decimal user id. */
  userName: string;
  /** Required unless resumeToken is given; without it a refused resumeToken is final. */
  password?: string;
  /**
   * A resume token from an earlier login (a 'resume' event of an earlier
   * page or process): the first login uses it instead of the password.
   * Each works once; close() (POST /offLine), a password login, a password
   * reset, a ban or a kick revoke it. When the route refuses it and there
   * is no password, start() rejects with that ApiError (4010 or 3000), and
   * a reconnect stops the client ('kicked').
   */
  resumeToken?: string;
  /** The kind of client the login names (default "web"; "" for none): presence events and webhooks report it. */
  platform?: Platform | string;
  /** Where the position, outbox and statuses are kept per route and user (default localStorage, else memory; false: memory). */
  storage?: StorageLike | false | null;
  /** fetch for the route calls (default the global one). */
  fetch?: typeof fetch;
  /** The WebSocket constructor (default the global one). */
  WebSocket?: { new (url: string, protocols?: string | string[]): WebSocket };
  /** An Api to use instead of a new one. */
  api?: Api;
  /** Where warnings go (default console); null for none. */
  logger?: Pick<Console, 'warn' | 'error' | 'info'> | null;
  /** Random numbers in [0, 1) for the backoff's jitter (tests). */
  random?: () => number;

  /** PING after this long without writing or reading (default 60 s; <= 0: no heartbeat). */
  heartbeatMs?: number;
  /** After a PING, how long the gateway has to show life before the link counts as dead (default 10 s). */
  pongTimeoutMs?: number;
  /** Bounds of the jittered exponential backoff between logins (defaults 500 ms, 30 s). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** WebSocket open + LOGIN → LOGIN_ACK (default 10 s). */
  connectTimeoutMs?: number;
  /** How long start() keeps trying transient failures (default 30 s; <= 0: until its signal). */
  startTimeoutMs?: number;
  /** A sent message unanswered this long is written again (default 5 s, doubling per try, at most 16×). */
  resendTimeoutMs?: number;
  /** Tries per message (default 5); writes on a new link do not count. */
  resendMax?: number;
  /** How many sent messages status() and recent() remember (default 1000): the oldest answered are forgotten first; one still unanswered is kept beyond it. */
  sentKept?: number;
  /** ACK this long after showing an inbox entry (default 100 ms), but no sooner than ackIntervalMs after the previous ACK, or at once when ackEvery wait (default 100). Both waits are scaled by a factor of 0.5–1.5 drawn for each ACK, so that clients that connected together do not acknowledge together. */
  ackDelayMs?: number;
  /** Least time between two inbox ACKs (default 500 ms; 0: none): a busy inbox is acknowledged about twice a second. */
  ackIntervalMs?: number;
  ackEvery?: number;
  /** ackDelayMs for large groups' timelines (default 1 s). */
  groupAckDelayMs?: number;
  /** A SYNC unanswered this long is asked again (default 10 s). */
  syncTimeoutMs?: number;
  /** An entry ahead of its predecessor is held this long before a SYNC asks for the missing one (default 200 ms; 0: at once). */
  gapWaitMs?: number;
  /** gapWaitMs for large groups' timelines, where every member sees the same gap (default 1 s). */
  groupGapWaitMs?: number;
  /** Largest frame sent (default 64 KiB, as the gateways'). */
  maxFrame?: number;
  /** Bound of one route call (default 10 s). */
  httpTimeoutMs?: number;
}

export interface ClientInfo {
  userId: string;
  userName: string;
  sessionId: string;
  gateway: string;
  connected: boolean;
  state: ClientState;
}

/** The events of a Client, by name, with their detail. */
export interface ClientEventMap {
  state: { state: ClientState };
  connected: { gateway: string };
  disconnected: { reason: string; gateway: string };
  /** The inbox caught up with the server after a (re)connect. */
  synced: { lastSeq: number };
  /**
   * Exactly once and in order per inbox (and per group timeline). With op
   * set ('recall', 'edit', or one not known) it is a change of the message
   * refMsgId, not a message to show: see MessageOp.
   */
  message: Message;
  /**
   * A reaction to a message (or one taken back), from the peer, a group's
   * member or this user's other device (self); exactly once and in order
   * with the messages. This client's own come as 'status' events only.
   */
  reaction: ReactionEvent;
  /** Once per status for a message sent by this client; every time for others. */
  receipt: Receipt;
  /** The user read these messages on another device: clear their conversation's unread state. */
  readelsewhere: ReadElsewhere;
  /** One of this client's messages changed (queued, answered, delivered, read, failed). */
  status: SentMessage;
  /** An ERROR frame: the final answer to a send (clientMsgId set) or about the link. */
  error: GatewayError;
  /** A send was rate limited and will be written again (once per message). */
  retrying: GatewayError;
  /** Watched users' states: a subscribe's snapshot (also after each reconnect) or changes (newer than what the client had, of watched users only). */
  presence: PresenceEvent;
  /** A user is typing to this user or in one of its groups (stopped: no more). */
  typing: TypingEvent;
  /** Stopped for good: a KICK (logged in elsewhere, logged off, account deleted) or a refused login. */
  kicked: { reason: string; error: GatewayError | null; gateway: string };
  /**
   * The resume token to keep changed: a login handed out a new one (every
   * login, resumes included, since each token works once; changePassword()
   * and logoutOthers(), which revoke every earlier one), or token is ""
   * when there is none to keep any more (the route refused it, close()
   * logged the session off, or deleteAccount() deleted the account). A
   * page that stays signed in saves it and passes it as
   * ClientOptions.resumeToken after a reload.
   */
  resume: ResumeEvent;
  /**
   * The muted conversations as the client last read them changed: its own
   * mute or unmute, a mutes() answer (other devices' changes), a mute that
   * ended; also once when the list is first read (after the first login).
   */
  mutes: MutesEvent;
  /** close(), disconnect() or deleteAccount() finished. */
  closed: Record<string, never>;
}

export interface ResumeEvent {
  /** The token, "" for none. A credential: store it only when the user asked to stay signed in. */
  token: string;
  /** When it expires, unix seconds; 0 when unknown or no token. */
  expiresAt: number;
}

export type ClientEventType = keyof ClientEventMap;

/** Options of send() and sendGroup(). */
export interface SendOptions {
  /**
   * The msgId of the earlier message of this conversation the new one
   * answers (a reply): 32 lowercase hex digits, else ClientError
   * 'bad-reply'. Kept with the message until the route answers (across
   * reloads too); recipients get it as Message.replyTo.
   */
  replyTo?: string;
  /**
   * sendGroup() and sendGroupFile() only: the members the text mentions,
   * at most MAX_MENTIONS user ids or names, each a non-empty string, else
   * ClientError 'bad-mentions' (also for any on send(), sendFile(), or
   * sendMsg() of a broadcast, a recall, an edit or a reaction; null or []
   * is none). The route keeps the group's members among them (others are
   * dropped, the message sent anyway). Kept with the message until the
   * route answers (across reloads too); members get the ids as
   * Message.mentions.
   */
  mentions?: string[];
}

export interface SendFileOptions extends SendOptions {
  name?: string;
  contentType?: string;
  signal?: AbortSignal;
}

/** A message to send with sendMsg. */
export interface OutgoingMessage {
  /** A user id or name; or group; or broadcast. */
  to?: string;
  group?: string;
  broadcast?: boolean;
  /** Kept when given: sending the same id again is the same message to the route. */
  clientMsgId?: string;
  kind?: MessageKind;
  text?: string;
  file?: FileInfo;
  /** A file's inline bytes. */
  data?: Uint8Array | null;
  /** A change of the earlier message refMsgId (to or group as that one's; text: an edit's new text, a reaction's emoji or "" to take it back). */
  op?: 'recall' | 'edit' | 'react';
  refMsgId?: string;
  /** A new message to a user or a group only (not with op, nor a broadcast): see SendOptions.replyTo. */
  replyTo?: string;
  /** A new group message only (not with op, nor to a user, nor a broadcast): see SendOptions.mentions. */
  mentions?: string[];
}

/** Keeps one user's connection to a gocim cluster. Events: see ClientEventMap. */
export declare class Client extends EventTarget {
  constructor(options: ClientOptions);
  readonly api: Api;
  readonly routeUrl: string;
  readonly state: ClientState;
  readonly info: ClientInfo;
  /** The highest inbox seq shown in order. */
  readonly lastSeq: number;
  /** Whether the inbox caught up with the server since the last (re)connect. */
  readonly caughtUp: boolean;
  /** How many sent messages wait for the route's answer. */
  readonly pending: number;
  /** The presence subscription in force (as given), or null. */
  readonly subscription: { users: string[]; groups: string[] } | null;

  /** Calls fn(detail) for each event of type; returns a function that stops it. */
  on<K extends ClientEventType>(type: K, fn: (detail: ClientEventMap[K], event: CustomEvent<ClientEventMap[K]>) => void): () => void;
  addEventListener<K extends ClientEventType>(type: K, listener: (event: CustomEvent<ClientEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends ClientEventType>(type: K, listener: (event: CustomEvent<ClientEventMap[K]>) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;

  /**
   * Logs in and connects; rejects for a permanent reason (ApiError 9100,
   * 3000, 5000; a refused session; the resumeToken refused when there is
   * no password: that ApiError, 4010 or 3000) or when nothing worked within
   * timeoutMs (default 30 s). Afterwards the client reconnects by itself.
   */
  start(opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<void>;
  /**
   * Acknowledges, logs off (POST /offLine, revoking the resume token: a
   * 'resume' event with token ""), closes, saves; pending messages stay
   * saved for the next login. The log-out.
   */
  close(): Promise<void>;
  /**
   * Ends the client like close() (ACKs, link closed, state saved, state
   * 'closed', the 'closed' event) but without POST /offLine: the last
   * resume token stays usable for a later page or process (resumeToken).
   */
  disconnect(): Promise<void>;
  /** Reconnect now instead of at the end of the backoff wait (or probe the live link). */
  reconnectNow(): void;

  /**
   * Each returns the clientMsgId at once; the message is written when a
   * link is up and kept until answered. opts.replyTo makes it a reply (see
   * SendOptions); a malformed one throws ClientError 'bad-reply'.
   * sendGroup()'s opts.mentions names the members the text mentions; a
   * malformed list, or any on send(), throws ClientError 'bad-mentions'.
   */
  send(to: string, text: string, opts?: SendOptions): string;
  sendGroup(gid: string, text: string, opts?: SendOptions): string;
  broadcast(text: string): string;
  sendMsg(m: OutgoingMessage): string;
  /**
   * Changes one of this user's messages (msgId: the route's) within the
   * route's --edit-window (default 15 min): recall takes it back, edit
   * replaces its text (text messages only; not once recalled). Sent, kept
   * and resent like a message (SentMessage.op set); the route refuses with
   * an 'error' (GatewayError 3000). Each returns the clientMsgId.
   */
  recall(to: string, msgId: string): string;
  recallInGroup(gid: string, msgId: string): string;
  edit(to: string, msgId: string, text: string): string;
  editInGroup(gid: string, msgId: string, text: string): string;
  /**
   * Sets this user's reaction to a message (msgId: the route's; anybody's
   * in that conversation, one's own too): emoji replaces any earlier one,
   * "" takes it back. The emoji is 1..32 bytes of UTF-8 without whitespace
   * or control characters and msgId 32 lowercase hex digits, else
   * ClientError 'bad-reaction' (no msgId: 'no-message'). Sent, kept
   * (across reloads) and resent like an edit (SentMessage.op 'react', text
   * the emoji); the route refuses with an 'error' (GatewayError 3000).
   * Others get it as a 'reaction' event. Each returns the clientMsgId.
   */
  react(to: string, msgId: string, emoji: string): string;
  reactInGroup(gid: string, msgId: string, emoji: string): string;
  /** A file message for blob: inline when it fits one frame, else uploaded first (replyTo and mentions are not part of it). */
  prepareFile(blob: Blob, opts?: SendFileOptions): Promise<OutgoingMessage>;
  /**
   * opts.replyTo as send()'s; a malformed one rejects (ClientError
   * 'bad-reply') before any upload, as do mentions (ClientError
   * 'bad-mentions': sendGroupFile() takes them, as sendGroup()).
   */
  sendFile(to: string, blob: Blob, opts?: SendFileOptions): Promise<string>;
  sendGroupFile(gid: string, blob: Blob, opts?: SendFileOptions): Promise<string>;
  /** The file of a file message: its inline bytes, or the route's copy. */
  downloadFile(message: Pick<Message, 'kind' | 'file' | 'data'>, opts?: CallOptions): Promise<Blob>;

  status(clientMsgId: string): SentMessage | null;
  statusByMsgId(msgId: string): SentMessage | null;
  /** The n most recently sent (all remembered when n <= 0), oldest first. */
  recent(n?: number): SentMessage[];

  /**
   * READ receipts for messages (objects from events or history, or msgIds
   * shown lately), after an ACK of what was shown; offline they wait for
   * the next link. Returns how many messages it named.
   */
  markRead(items: Array<Message | Pick<Message, 'msgId' | 'seq' | 'from' | 'group'> | string> | Message | string): number;

  /**
   * Watches users (ids or names) and the members of groups (this user must
   * be a member), replacing the previous subscription (none of either: ends
   * it). Resolves to every watched user's state (groups' members after the
   * users, this user left out); changes then come as 'presence' events. It
   * waits for a link when offline and is sent again after every reconnect.
   * A refusal rejects with the GatewayError (9100 unknown user, 4030 not a
   * member, 9200 no such group, 3000 too many) and the previous
   * subscription stays; a later subscribe before this one went out rejects
   * it with ClientError 'superseded'.
   */
  subscribe(users?: string | string[], groups?: string | string[], opts?: CallOptions): Promise<PresenceState[]>;
  /** The latest state of a watched user, by id (null when not watched); lastSeen when offline and known. */
  presenceOf(userId: string): PresenceState | null;
  /**
   * Tells a user (id or name) that this user is typing, or stopped (the
   * draft was cleared or sent). Live only: false when there is no link to
   * write it on. Send one when typing starts and at most every few seconds.
   */
  typing(to: string, stopped?: boolean): boolean;
  /** typing() to a group's online members (groups of at most 200). */
  typingInGroup(gid: string, stopped?: boolean): boolean;

  onlineUsers(opts?: CallOptions & { after?: string; limit?: number }): Promise<User[]>;
  history(q?: HistoryQuery, opts?: CallOptions): Promise<HistoryPage>;
  historyFill(q?: HistoryQuery, n?: number, opts?: CallOptions): Promise<HistoryPage>;
  /** Removes messages from this user's own history (Api.deleteHistory). */
  deleteHistory(msgIds: string | string[], opts?: CallOptions): Promise<void>;
  /**
   * Changes the password (Api.changePassword) and stays logged in: later
   * password logins (reconnects) use next, and the session's new resume
   * token comes as a 'resume' event. Resolves to how many other sessions
   * ended; a refusal (ApiError 4030, 3000, 4291) changes nothing.
   */
  changePassword(current: string, next: string, opts?: CallOptions): Promise<number>;
  /**
   * Ends the user's other sessions and remembered logins
   * (Api.logoutOthers); this session's new resume token comes as a
   * 'resume' event. Resolves to how many other sessions ended.
   */
  logoutOthers(password: string, opts?: CallOptions): Promise<number>;
  /**
   * Deletes the user's account (Api.deleteAccount) and ends this client for
   * good: no POST /offLine (the session went with the account), a 'resume'
   * event with token "", the state saved for the user forgotten and
   * messages still waiting dropped; resolves to the account deleted once
   * the client is closed ('closed'). The route kicks the sessions before
   * it answers, so the KICK usually comes first and the client stops
   * before this resolves ('kicked', reason "account deleted"); when the
   * answer wins there is no 'kicked'. A refusal (ApiError 4030, 3000,
   * 4291) changes nothing.
   */
  deleteAccount(password: string, opts?: CallOptions): Promise<User>;
  createGroup(name: string, open?: boolean, opts?: CallOptions): Promise<Group>;
  groups(opts?: CallOptions): Promise<Group[]>;
  group(gid: string, opts?: CallOptions): Promise<Group>;
  groupMembers(gid: string, opts?: CallOptions & { after?: string; limit?: number }): Promise<User[]>;
  joinGroup(gid: string, opts?: CallOptions): Promise<Group>;
  inviteToGroup(gid: string, users: string | string[], opts?: CallOptions): Promise<string[]>;
  leaveGroup(gid: string, opts?: CallOptions): Promise<void>;
  kickFromGroup(gid: string, user: string, opts?: CallOptions): Promise<void>;
  renameGroup(gid: string, name: string, opts?: CallOptions): Promise<Group>;
  /** Hands the group to another member (Api.transferGroup); owner only. */
  transferGroup(gid: string, user: string, opts?: CallOptions): Promise<Group>;
  dissolveGroup(gid: string, opts?: CallOptions): Promise<void>;
  /** Also raises the statuses this client reports for those messages. */
  groupReceipts(msgIds: string | string[], opts?: CallOptions): Promise<Record<string, GroupCount>>;
  delay(to: string, text: string, delaySeconds: number, opts?: CallOptions): Promise<DelayResult>;
  /** The users this user blocked (Api.blocks), by user id. */
  blocks(opts?: CallOptions): Promise<User[]>;
  /**
   * Blocks a user by id or name (Api.block): their private messages no
   * longer arrive, and this user's to them fail with GatewayError 4030 (an
   * 'error' event; status 'failed').
   */
  block(user: string, opts?: CallOptions): Promise<User>;
  /** Unblocks a user by id or name (Api.unblock). */
  unblock(user: string, opts?: CallOptions): Promise<User>;
  /**
   * The muted conversations (Api.mutes). The answer replaces the list
   * muted() consults (a 'mutes' event when it changed): call it to learn
   * other devices' changes; the client reads it by itself once after its
   * first login. A read never undoes a change of this client's answered
   * after it was asked; of reads at the same time the last asked wins.
   */
  mutes(opts?: CallOptions): Promise<Mute[]>;
  /** Mutes the conversation with a user, by id or name, for seconds (0 or absent: until unmuted) (Api.muteUser); muted() knows it at once. */
  muteUser(user: string, seconds?: number, opts?: CallOptions): Promise<Mute>;
  /** Mutes a group this user is in (Api.muteGroup); muted() knows it at once. */
  muteGroup(gid: string, seconds?: number, opts?: CallOptions): Promise<Mute>;
  /** Unmutes the conversation with a user (Api.unmuteUser); muted() knows at once. */
  unmuteUser(user: string, opts?: CallOptions): Promise<Mute>;
  /** Unmutes a group (Api.unmuteGroup); muted() knows at once. */
  unmuteGroup(gid: string, opts?: CallOptions): Promise<Mute>;
  /** The muted conversations as last read (ended ones left out), users first, then groups, each by id; [] before any is known. */
  readonly muteList: Mute[];
  /**
   * Whether to stay quiet about a message (no sound, badge or desktop
   * notification): its conversation (from, or to for the user's own
   * outgoing copy; group) is muted per the list last read, the mute not
   * ended, and it does not mention the user (mentionsMe). A broadcast:
   * never. False before any list is known.
   */
  muted(message: Partial<Pick<Message, 'from' | 'to' | 'group' | 'broadcast' | 'mentions' | 'mentionsMe' | 'outgoing'>>): boolean;

  /** Forgets this user's saved state in the storage. */
  forgetSavedState(): void;
}
