// Tests of gocim.js against a scripted gateway and route (node --test;
// web_test.go runs them when node is installed). The fakes speak the
// contract: POST /login answers a token and a wsUrl, the WebSocket carries
// one protojson Frame per text message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError, Client, ClientError, GatewayError, MemoryStorage, Codes, MAX_MENTIONS, base64ToBytes, bytesToBase64, lastSeenText, utf8Decode, utf8Encode } from '../static/gocim.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, what, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(5);
  }
}

// Cluster is a fake route (fetch) and gateway (WebSocket).
class Cluster {
  constructor() {
    this.logins = 0;
    this.sockets = [];
    this.calls = [];
    this.loginError = null; // {status, code, message} for the next /login
    this.loginGate = null; // a promise the next /login waits for before it is answered
    this.resumes = 0; // logins with a resume token
    this.latestResume = ''; // the resume token the next resume must carry
    this.historyAnswer = null; // the data of GET /history instead of the default
    this.password = 'secret1'; // what a password login must carry (POST /account/password changes it)
    this.secured = 0; // POST /account/password and /account/logout-others answered
    this.sessionsEnded = 0; // what they answer as the other sessions ended
    this.blocked = new Map(); // GET/POST/DELETE /blocks: user id → name, of ann's blocks
    this.blockLimit = 1000; // the most /blocks keeps
    this.muted = new Map(); // GET/POST/DELETE /mutes: 'u:<id>' or 'g:<gid>' → the mute's JSON, of ann's mutes
    this.muteLimit = 1000; // the most /mutes keeps
    this.mutesGate = null; // a promise the next GET /mutes waits for, after it read the list
    this.mutesError = null; // {status, code, message} for the next GET /mutes
    this.deleteGate = null; // a promise POST /account/delete waits for before it is answered
    this.deleteRefusal = null; // {status, code, message, retryAfter} for the next POST /account/delete
    this.accountsDeleted = 0; // POST /account/delete answered OK
    // GET /groups/:gid and POST /groups/:gid/owner: ann (7) owns group 5,
    // bob and carol in it too; bob owns group 6, ann not in it.
    this.groups = new Map([
      ['5', { name: 'crew', owner: '7', open: false, members: ['7', '8', '9'] }],
      ['6', { name: 'other', owner: '8', open: true, members: ['8'] }],
    ]);
    const cluster = this;
    this.fetch = async (url, init = {}) => {
      const u = new URL(url, 'http://route');
      cluster.calls.push({ method: init.method || 'GET', path: u.pathname, search: u.search, headers: init.headers || {}, body: init.body });
      const reply = (status, code, data, message = '') => new Response(JSON.stringify({ code, message, data }), { status, headers: { 'Content-Type': 'application/json' } });
      if (u.pathname === '/login') {
        if (cluster.loginGate) {
          const gate = cluster.loginGate;
          cluster.loginGate = null;
          await gate;
        }
        if (cluster.loginError) {
          const e = cluster.loginError;
          cluster.loginError = null;
          return reply(e.status, e.code, null, e.message);
        }
        const req = JSON.parse(init.body || '{}');
        if (req.resumeToken) {
          if (req.resumeToken !== cluster.latestResume) return reply(401, 4010, null, 'resume token used or revoked');
          cluster.resumes++;
        } else if (req.password !== cluster.password) {
          return reply(401, 9100, null, 'bad account');
        }
        cluster.logins++;
        const n = cluster.logins;
        cluster.latestResume = `res${n}`;
        return reply(200, 9000, {
          userId: '7', userName: 'ann', sessionId: `s${n}`, token: `tok${n}`, expiresAt: 0, accessToken: `acc${n}`, accessExpiresAt: 0,
          resumeToken: `res${n}`, resumeExpiresAt: 1,
          server: { id: 'gw:1:2', host: '127.0.0.1', tcpPort: 1, httpPort: 2, wsUrl: `ws://gw/ws?login=${n}` },
        });
      }
      if (u.pathname === '/offLine') return reply(200, 9000, null);
      if (u.pathname === '/account/password' || u.pathname === '/account/logout-others') {
        // As the route: the latest session's bearer and the password; then
        // every resume token is revoked and the caller gets a new one.
        if (init.headers?.Authorization !== `Bearer acc${cluster.logins}`) return reply(401, 4010, null, 'unauthorized');
        const req = JSON.parse(init.body || '{}');
        if (req.password !== cluster.password) return reply(403, 4030, null, 'forbidden: wrong password');
        if (u.pathname === '/account/password') {
          if (typeof req.newPassword !== 'string' || req.newPassword.length < 6) return reply(400, 3000, null, 'bad argument: password too short');
          cluster.password = req.newPassword;
        }
        cluster.secured++;
        cluster.latestResume = `sec${cluster.secured}`;
        return reply(200, 9000, { sessionsEnded: cluster.sessionsEnded, resumeToken: cluster.latestResume, resumeExpiresAt: 1700000000 + cluster.secured });
      }
      if (u.pathname === '/account/delete') {
        // As the route: the latest session's bearer and the password.
        if (cluster.deleteGate) {
          const gate = cluster.deleteGate;
          cluster.deleteGate = null;
          await gate;
        }
        if (init.headers?.Authorization !== `Bearer acc${cluster.logins}`) return reply(401, 4010, null, 'unauthorized');
        if (cluster.deleteRefusal) {
          const e = cluster.deleteRefusal;
          cluster.deleteRefusal = null;
          const headers = { 'Content-Type': 'application/json' };
          if (e.retryAfter) headers['Retry-After'] = String(e.retryAfter);
          return new Response(JSON.stringify({ code: e.code, message: e.message, data: null }), { status: e.status, headers });
        }
        const req = JSON.parse(init.body || '{}');
        if (req.password !== cluster.password) return reply(403, 4030, null, 'forbidden: wrong password');
        cluster.accountsDeleted++;
        return reply(200, 9000, { userId: '7', userName: 'ann' });
      }
      if (u.pathname === '/presence') {
        const users = (u.searchParams.get('users') || '').split(',');
        // The first online, the others offline: the second never seen,
        // the third last seen at 1700000005000.
        const last = (i) => (i === 2 ? { lastSeen: 1700000005000 } : {});
        return reply(200, 9000, { users: users.map((n, i) => (i === 0 ? { userId: '8', userName: n, online: true, since: 1700000000000 } : { userId: String(9 + i), userName: n, online: false, ...last(i) })) });
      }
      if (u.pathname === '/blocks' || u.pathname.startsWith('/blocks/')) {
        // As the route: the latest session's bearer; users by id or name.
        if (init.headers?.Authorization !== `Bearer acc${cluster.logins}`) return reply(401, 4010, null, 'unauthorized');
        const method = init.method || 'GET';
        if (u.pathname === '/blocks' && method === 'GET') {
          const users = [...cluster.blocked].sort((a, b) => Number(a[0]) - Number(b[0])).map(([id, name]) => ({ userId: id, userName: name }));
          return reply(200, 9000, { users });
        }
        const named = method === 'POST' ? JSON.parse(init.body || '{}').user : decodeURIComponent(u.pathname.slice('/blocks/'.length));
        const who = cluster.users.find(([id, name]) => named === id || named === name);
        if (!who) return reply(404, 9100, null, 'bad account: no such user');
        if (method === 'POST' && u.pathname === '/blocks') {
          if (who[0] === '7') return reply(400, 3000, null, 'bad argument: cannot block yourself');
          if (!cluster.blocked.has(who[0]) && cluster.blocked.size >= cluster.blockLimit) return reply(429, 4293, null, 'quota exceeded: too many blocked users');
          cluster.blocked.set(who[0], who[1]);
        } else if (method === 'DELETE') {
          cluster.blocked.delete(who[0]);
        } else {
          return reply(405, 3000, null, 'method not allowed');
        }
        return reply(200, 9000, { userId: who[0], userName: who[1] });
      }
      if (u.pathname === '/mutes') {
        // As the route: the latest session's bearer; users by id or name,
        // ann's groups 5 (a member) and 6 (not); ends in unix ms.
        if (init.headers?.Authorization !== `Bearer acc${cluster.logins}`) return reply(401, 4010, null, 'unauthorized');
        const method = init.method || 'GET';
        const now = Date.now();
        if (method === 'GET') {
          const inForce = [...cluster.muted.values()].filter((m) => m.untilMs === 0 || m.untilMs > now);
          const key = (m) => [m.group ? 1 : 0, Number(m.group || m.userId)];
          const mutes = inForce.sort((a, b) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1]).map((m) => ({ ...m }));
          if (cluster.mutesGate) {
            const gate = cluster.mutesGate;
            cluster.mutesGate = null;
            await gate;
          }
          if (cluster.mutesError) {
            const e = cluster.mutesError;
            cluster.mutesError = null;
            return reply(e.status, e.code, null, e.message);
          }
          return reply(200, 9000, { mutes });
        }
        const req = method === 'POST' ? JSON.parse(init.body || '{}') : Object.fromEntries(u.searchParams);
        if (!req.user === !req.group) return reply(400, 3000, null, 'bad argument: a user or a group');
        let m;
        if (req.group) {
          if (req.group === '6') return reply(403, 4030, null, 'forbidden: not a member of the group');
          if (req.group !== '5') return reply(404, 9200, null, 'no such group');
          m = { group: req.group, untilMs: 0 };
        } else {
          const who = cluster.users.find(([id, name]) => req.user === id || req.user === name);
          if (!who) return reply(401, 9100, null, 'bad account: no such user');
          if (who[0] === '7') return reply(400, 3000, null, 'bad argument: cannot mute yourself');
          m = { userId: who[0], userName: who[1], untilMs: 0 };
        }
        const k = m.group ? `g:${m.group}` : `u:${m.userId}`;
        if (method === 'DELETE') {
          cluster.muted.delete(k);
          return reply(200, 9000, m);
        }
        if (method !== 'POST') return reply(405, 3000, null, 'method not allowed');
        if (req.forSeconds < 0) return reply(400, 3000, null, 'bad argument: a mute lasts 0 (until unmuted) or more');
        if (!cluster.muted.has(k) && cluster.muted.size >= cluster.muteLimit) return reply(429, 4293, null, 'quota exceeded: too many mutes');
        if (req.forSeconds > 0 && req.forSeconds <= 366 * 86400) m.untilMs = now + req.forSeconds * 1000;
        cluster.muted.set(k, m);
        return reply(200, 9000, m);
      }
      if (u.pathname.startsWith('/groups/')) {
        // As the route: the latest session's bearer; users by id or name.
        if (init.headers?.Authorization !== `Bearer acc${cluster.logins}`) return reply(401, 4010, null, 'unauthorized');
        const [gid, what = ''] = u.pathname.slice('/groups/'.length).split('/').map(decodeURIComponent);
        const g = cluster.groups.get(gid);
        if (!g) return reply(404, 9200, null, 'no such group');
        const method = init.method || 'GET';
        const answer = () => reply(200, 9000, { groupId: gid, name: g.name, owner: g.owner, open: g.open, members: g.members.length });
        if (method === 'GET' && what === '') {
          if (!g.open && !g.members.includes('7')) return reply(403, 4030, null, `forbidden: not a member of group ${gid}`);
          return answer();
        }
        if (method === 'POST' && what === 'owner') {
          const req = JSON.parse(init.body || '{}');
          if (!req.userId) return reply(400, 3000, null, 'bad argument: userId required');
          const who = cluster.users.find(([id, name]) => req.userId === id || req.userId === name);
          if (!who) return reply(401, 9100, null, `bad account: unknown user "${req.userId}"`);
          if (g.owner !== '7') return reply(403, 4030, null, `forbidden: only the owner of group ${gid} may do this`);
          if (!g.members.includes(who[0])) return reply(403, 4030, null, `forbidden: ${who[1]} is not a member of group ${gid}`);
          g.owner = who[0];
          return answer();
        }
        return reply(404, 3000, null, 'no such endpoint');
      }
      if (u.pathname === '/history/delete') return reply(200, 9000, null);
      if (u.pathname === '/history' && cluster.historyAnswer) return reply(200, 9000, cluster.historyAnswer);
      if (u.pathname === '/history') {
        return reply(200, 9000, { messages: [{ msgId: 'h1', seq: 4, from: '8', fromName: 'bob', to: '7', kind: 0, body: 'old', file: null, timestampMs: 5 }, { msgId: 'h2', seq: 9, from: '8', fromName: 'bob', to: '7', group: '5', groupSeq: 9, kind: 1, body: bytesToBase64(utf8Encode('xy')), file: { ref: '', size: 2, name: 'a.txt', contentType: 'text/plain' }, timestampMs: 6 }], next: '' });
      }
      return reply(404, 3000, null, 'no such endpoint');
    };
    this.WebSocket = class FakeSocket {
      constructor(url, protocol) {
        this.url = url;
        this.protocol = '';
        this.asked = protocol;
        this.readyState = 0;
        this.sent = [];
        cluster.sockets.push(this);
        setTimeout(() => {
          if (this.readyState !== 0) return;
          this.readyState = 1;
          this.protocol = protocol;
          this.onopen?.({});
        }, 0);
      }
      send(data) {
        if (this.readyState !== 1) throw new Error('not open');
        this.sent.push(JSON.parse(data));
      }
      close(code = 1000) {
        if (this.readyState >= 2) return;
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code, reason: '' }), 0);
      }
      // The gateway's side:
      push(frame) {
        this.onmessage?.({ data: JSON.stringify(frame) });
      }
      drop() {
        if (this.readyState >= 2) return;
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: '' });
      }
      of(type) {
        return this.sent.filter((f) => f.type === type);
      }
    };
  }
  get ws() {
    return this.sockets[this.sockets.length - 1];
  }
  // users are the accounts the fake route knows: [id, name].
  get users() {
    return [['7', 'ann'], ['8', 'bob'], ['9', 'carol'], ['12', 'd.e-f_g']];
  }
  // login waits for a LOGIN on a socket not answered yet.
  async login() {
    const ws = await until(() => this.sockets.find((s) => !s.answered && s.readyState === 1 && s.of('LOGIN').length > 0), 'LOGIN');
    ws.answered = true;
    return ws;
  }
  // accept waits for the next LOGIN and answers LOGIN_ACK.
  async accept() {
    const ws = await this.login();
    ws.push({ type: 'LOGIN_ACK', reqId: '1', loginAck: { userId: '7', userName: 'ann', sessionId: `s${this.logins}`, gatewayId: 'gw:1:2', serverTimeMs: '1' } });
    return ws;
  }
}

function newClient(cluster, opts = {}) {
  const c = new Client({
    routeUrl: 'http://route',
    userName: 'ann',
    password: 'secret1',
    fetch: cluster.fetch,
    WebSocket: cluster.WebSocket,
    storage: opts.storage || new MemoryStorage(),
    logger: null,
    random: () => 0,
    reconnectMinMs: 10,
    reconnectMaxMs: 40,
    ackDelayMs: 20,
    ackIntervalMs: 0,
    groupAckDelayMs: 30,
    syncTimeoutMs: 500,
    resendTimeoutMs: 1000,
    heartbeatMs: 0,
    ...opts,
  });
  const events = [];
  for (const t of ['state', 'connected', 'disconnected', 'synced', 'message', 'reaction', 'receipt', 'readelsewhere', 'status', 'error', 'retrying', 'presence', 'typing', 'kicked', 'resume', 'mutes', 'closed']) {
    c.on(t, (d) => events.push({ t, d }));
  }
  c.events = events;
  c.of = (t) => events.filter((e) => e.t === t).map((e) => e.d);
  return c;
}

async function started(cluster, opts) {
  const c = newClient(cluster, opts);
  const p = c.start();
  await cluster.accept();
  await p;
  return c;
}

function msg(seq, text, extra = {}) {
  return { type: 'MSG', msg: { msgId: `m${seq}`, seq: String(seq), from: '8', fromName: 'bob', to: '7', body: bytesToBase64(utf8Encode(text)), timestampMs: String(1000 + seq), ...extra } };
}

function syncAnswer(after, last, head, extra = {}) {
  return { type: 'SYNC', sync: { afterSeq: String(after), lastSeq: String(last), headSeq: String(head), firstSeq: '1', ...extra } };
}

test('logs in over the gocim.json subprotocol and goes online', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  assert.equal(ws.asked, 'gocim.json');
  assert.equal(ws.url, 'ws://gw/ws?login=1');
  const login = ws.of('LOGIN')[0];
  assert.equal(login.reqId, '1');
  assert.equal(login.login.token, 'tok1');
  assert.equal(login.login.lastSeq, undefined); // 0 is omitted, as protojson does
  assert.equal(c.state, 'online');
  assert.deepEqual(c.of('connected'), [{ gateway: 'gw:1:2' }]);
  assert.equal(c.info.sessionId, 's1');
  assert.equal(c.api.accessToken, 'acc1');
  await c.close();
  assert.equal(c.state, 'closed');
  assert.ok(cl.calls.some((x) => x.path === '/offLine' && x.headers.Authorization === 'Bearer acc1'));
});

test('shows inbox entries once and in order, fills gaps with SYNC, acknowledges cumulatively', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0)); // the login SYNC's answer: nothing new
  assert.equal(c.of('synced').length, 1);
  ws.push(msg(1, 'one'));
  ws.push(msg(3, 'three'));
  assert.deepEqual(c.of('message').map((m) => m.text), ['one']);
  await until(() => ws.of('SYNC').length === 1, 'a SYNC for the gap');
  assert.equal(ws.of('SYNC')[0].sync.afterSeq, '1');
  ws.push(msg(2, 'two'));
  ws.push(msg(2, 'two again'));
  ws.push(msg(3, 'three again'));
  assert.deepEqual(c.of('message').map((m) => m.text), ['one', 'two', 'three']);
  ws.push(syncAnswer(1, 3, 3));
  assert.equal(c.lastSeq, 3);
  await until(() => ws.of('ACK').length > 0, 'an ACK');
  await sleep(60);
  const acks = ws.of('ACK');
  assert.equal(acks[acks.length - 1].ack.seq, '3');
  assert.ok(acks.length <= 2, `ACKs coalesce: ${JSON.stringify(acks)}`);
  const m = c.of('message')[0];
  assert.equal(m.msgId, 'm1');
  assert.equal(m.seq, 1);
  assert.equal(m.from, '8');
  assert.equal(m.kind, 'text');
  // A repeated msgId under a new seq (a group send fanned out again) is
  // not shown again, but its seq counts.
  ws.push(msg(4, 'repeat', { msgId: 'm3' }));
  assert.equal(c.of('message').length, 3);
  assert.equal(c.lastSeq, 4);
  await c.close();
});

test('a swapped pair is shown in order without a SYNC; a gap still open after gapWaitMs is asked for', async () => {
  const cl = new Cluster();
  const c = await started(cl, { gapWaitMs: 30 });
  try {
    const ws = cl.ws;
    ws.push(syncAnswer(0, 0, 0));
    ws.push(msg(2, 'two')); // ahead of 1: held, no SYNC yet
    ws.push(msg(1, 'one'));
    assert.deepEqual(c.of('message').map((m) => m.text), ['one', 'two']);
    await until(() => ws.of('ACK').length > 0, 'an ACK');
    assert.equal(ws.of('SYNC').length, 0, 'the swap asked nothing');
    ws.push(msg(4, 'four')); // 3 got lost
    await until(() => ws.of('SYNC').length === 1, 'a SYNC for the gap after the wait');
    assert.equal(ws.of('SYNC')[0].sync.afterSeq, '2');
    ws.push(msg(3, 'three'));
    ws.push(syncAnswer(2, 4, 4));
    assert.deepEqual(c.of('message').map((m) => m.text), ['one', 'two', 'three', 'four']);
  } finally {
    await c.close(); // a failed assertion must not leave the client's timers running
  }
});

test('a SYNC answer that starts past a trimmed hole moves on', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push(msg(5, 'five')); // 1..4 were trimmed
  ws.push(syncAnswer(0, 5, 6, { firstSeq: '5' }));
  assert.deepEqual(c.of('message').map((m) => m.text), ['five']);
  // The head is further: the next page is asked for.
  await until(() => ws.of('SYNC').some((f) => f.sync.afterSeq === '5'), 'the next page');
  ws.push(msg(6, 'six'));
  ws.push(syncAnswer(5, 6, 6, { firstSeq: '5' }));
  assert.deepEqual(c.of('message').map((m) => m.text), ['five', 'six']);
  assert.equal(c.lastSeq, 6);
  await c.close();
});

test('sentKept bounds the sent messages status() and recent() remember; an unanswered one stays', async () => {
  const cl = new Cluster();
  const c = await started(cl, { sentKept: 2, resendTimeoutMs: 3_600_000 });
  try {
    const ws = cl.ws;
    const waiting = c.send('bob', 'unanswered');
    const ids = [];
    for (let i = 0; i < 4; i++) {
      const id = c.send('bob', `m${i}`);
      ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: `X${i}`, clientMsgId: id } });
      assert.equal(c.status(id).status, 'sent');
      ids.push(id);
    }
    assert.deepEqual(c.recent().map((m) => m.clientMsgId), [waiting, ids[3]]);
    assert.equal(c.status(ids[2]), null);
    assert.equal(c.statusByMsgId('X2'), null);
    assert.equal(c.status(waiting).status, 'pending');
  } finally {
    await c.close();
  }
});

test('keeps a message until SENT, resends it with the same clientMsgId on a new link', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws1 = cl.ws;
  const id = c.send('bob', 'héllo');
  const up = ws1.of('MSG')[0];
  assert.equal(up.msg.clientMsgId, id);
  assert.equal(up.msg.to, 'bob');
  assert.equal(utf8Decode(base64ToBytes(up.msg.body)), 'héllo');
  assert.equal(c.status(id).status, 'pending');
  ws1.drop(); // the link dies before the answer
  await until(() => c.state === 'reconnecting', 'reconnecting');
  assert.equal(c.of('disconnected').length, 1);
  const id2 = c.send('bob', 'while down');
  const ws2 = await cl.accept();
  await until(() => ws2.of('MSG').length === 2, 'the replay');
  assert.deepEqual(ws2.of('MSG').map((f) => f.msg.clientMsgId), [id, id2]);
  assert.equal(ws2.of('LOGIN')[0].login.token, 'tok2'); // a new login through the route
  ws2.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: id } });
  ws2.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X2', clientMsgId: id2 } });
  assert.equal(c.status(id).status, 'sent');
  assert.equal(c.statusByMsgId('X2').clientMsgId, id2);
  // One receipt entry for both (items): one event each.
  ws2.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_DELIVERED', by: '8', seq: '1', items: [{ msgId: 'X1', clientMsgId: id }, { msgId: 'X2', clientMsgId: id2 }] } });
  assert.equal(c.status(id).status, 'delivered');
  assert.equal(c.status(id2).status, 'delivered');
  const delivered = c.of('receipt').filter((r) => r.status === 'delivered');
  assert.deepEqual(delivered.map((r) => r.clientMsgId), [id, id2]);
  // A receipt repeated is not told twice.
  ws2.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: id } });
  assert.equal(c.of('receipt').filter((r) => r.clientMsgId === id && r.status === 'sent').length, 1);
  assert.deepEqual(c.of('status').filter((s) => s.clientMsgId === id).map((s) => s.status), ['pending', 'sent', 'delivered']);
  await c.close();
});

test('resends after the resend timeout, then gives up', async () => {
  const cl = new Cluster();
  const c = await started(cl, { resendTimeoutMs: 20, resendMax: 2 });
  const ws = cl.ws;
  const id = c.send('bob', 'x');
  await until(() => ws.of('MSG').length === 2, 'a resend');
  assert.equal(ws.of('MSG')[1].msg.clientMsgId, id);
  await until(() => c.status(id).status === 'failed', 'failure');
  assert.equal(c.of('error').at(-1).code, Codes.Unavailable);
  assert.equal(c.of('error').at(-1).clientMsgId, id);
  await c.close();
});

test('final and retryable ERRORs for a send', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const a = c.send('nobody', 'x');
  ws.push({ type: 'ERROR', error: { code: Codes.BadAccount, text: 'unknown user', clientMsgId: a } });
  assert.equal(c.status(a).status, 'failed');
  assert.equal(c.status(a).error.code, Codes.BadAccount);
  const b = c.send('bob', 'y');
  ws.push({ type: 'ERROR', error: { code: Codes.RateLimited, clientMsgId: b } });
  assert.equal(c.status(b).status, 'pending');
  assert.equal(c.of('retrying').length, 1);
  assert.equal(c.state, 'online'); // an ERROR with a clientMsgId leaves the link alone
  await c.close();
});

test('a broadcast is never written twice', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  c.broadcast('hi all');
  cl.ws.drop();
  const ws2 = await cl.accept();
  await sleep(30);
  assert.equal(ws2.of('MSG').length, 0);
  await c.close();
});

test('group timeline messages: in order per group, SYNC{group} for gaps, ACK.groups', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const g = (gseq, text) => ({ type: 'MSG', msg: { msgId: `g${gseq}`, from: '8', group: '5', groupSeq: String(gseq), body: bytesToBase64(utf8Encode(text)), timestampMs: '9' } });
  // The login SYNC's answer names group 5 as having news.
  ws.push(syncAnswer(0, 0, 0, { groups: [{ group: '5', seq: '2' }] }));
  await until(() => ws.of('SYNC').some((f) => f.sync.group === '5'), 'SYNC{group}');
  const ask = ws.of('SYNC').find((f) => f.sync.group === '5');
  assert.equal(ask.sync.fromAcked, true); // no known position yet
  ws.push(g(1, 'a'));
  ws.push(g(2, 'b'));
  ws.push({ type: 'SYNC', sync: { group: '5', afterSeq: '0', lastSeq: '2', headSeq: '2', firstSeq: '1' } });
  ws.push(g(4, 'd')); // a gap: 3 is missing
  assert.deepEqual(c.of('message').map((m) => m.text), ['a', 'b']);
  await until(() => ws.of('SYNC').filter((f) => f.sync.group === '5').length === 2, 'a SYNC{group} for the gap');
  const gap = ws.of('SYNC').filter((f) => f.sync.group === '5')[1];
  assert.equal(gap.sync.afterSeq, '2');
  assert.equal(gap.sync.fromAcked, undefined);
  ws.push(g(3, 'c'));
  assert.deepEqual(c.of('message').map((m) => m.text), ['a', 'b', 'c', 'd']);
  assert.equal(c.of('message')[3].groupSeq, 4);
  await until(() => ws.of('ACK').some((f) => f.ack.groups), 'ACK.groups');
  await sleep(50);
  const last = ws.of('ACK').filter((f) => f.ack.groups).at(-1);
  assert.deepEqual(last.ack.groups, [{ group: '5', seq: '4' }]);
  assert.equal(c.lastSeq, 0); // the inbox is untouched
  await c.close();
});

test('markRead acknowledges first, then READ with the inbox seqs, per sender and group', async () => {
  const cl = new Cluster();
  const c = await started(cl, { ackDelayMs: 10_000 });
  const ws = cl.ws;
  ws.push(msg(1, 'p'));
  ws.push(msg(2, 'q', { group: '5' }));
  const n = c.markRead(c.of('message'));
  assert.equal(n, 2);
  const tail = ws.sent.slice(-3);
  assert.equal(tail[0].type, 'ACK');
  assert.equal(tail[0].ack.seq, '2');
  assert.deepEqual(tail[1], { type: 'READ', read: { msgIds: ['m1'], seqs: ['1'], peer: '8' } });
  assert.deepEqual(tail[2], { type: 'READ', read: { msgIds: ['m2'], seqs: ['2'], peer: '8', group: '5' } });
  await c.close();
});

test('state survives a reload: position and the messages still waiting', async () => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c1 = await started(cl, { storage });
  const ws1 = cl.ws;
  ws1.push(msg(1, 'one'));
  ws1.push(msg(2, 'two'));
  const id = c1.send('bob', 'unanswered');
  ws1.drop();
  await until(() => c1.state === 'reconnecting', 'reconnecting');
  c1._saveNow(); // what pagehide does
  // The page goes away without closing; a new page loads the state.
  c1._closing = true;
  c1._life.abort();

  const c2 = newClient(cl, { storage });
  const p = c2.start();
  const ws2 = await cl.accept();
  await p;
  assert.equal(ws2.of('LOGIN')[0].login.lastSeq, '2');
  assert.equal(ws2.of('LOGIN')[0].login.lastTsMs, '1002');
  await until(() => ws2.of('MSG').length === 1, 'the replay');
  assert.equal(ws2.of('MSG')[0].msg.clientMsgId, id);
  assert.equal(c2.status(id).text, 'unanswered');
  ws2.push(msg(2, 'two')); // shown before the reload: a duplicate
  ws2.push(msg(3, 'three'));
  assert.deepEqual(c2.of('message').map((m) => m.text), ['three']);
  await c2.close();
});

test('an expired token makes it log in again; a session taken over stops it', async () => {
  const cl = new Cluster();
  const c = newClient(cl);
  const p = c.start();
  const ws1 = await cl.login();
  ws1.push({ type: 'ERROR', reqId: '1', error: { code: Codes.Unauthorized, text: 'token: expired' } });
  await cl.accept();
  await p;
  assert.equal(cl.logins, 2);
  assert.equal(c.state, 'online');
  // Now the session is taken over: the gateway refuses the next login.
  cl.ws.drop();
  const ws3 = await cl.login();
  ws3.push({ type: 'ERROR', reqId: '1', error: { code: Codes.Unauthorized } });
  await until(() => c.state === 'stopped', 'stopped');
  assert.equal(c.of('kicked').length, 1);
  assert.throws(() => c.send('bob', 'x'), /stopped/);
  await c.close();
});

test('KICK stops reconnecting; start refuses a bad account', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  cl.ws.push({ type: 'KICK', kick: { reason: 'logged in elsewhere' } });
  await until(() => c.state === 'stopped', 'stopped');
  assert.equal(c.of('kicked')[0].reason, 'logged in elsewhere');
  await sleep(50);
  assert.equal(cl.sockets.length, 1);
  await c.close();

  cl.loginError = { status: 401, code: Codes.BadAccount, message: 'bad account' };
  const c2 = newClient(cl);
  await assert.rejects(c2.start(), (e) => e.name === 'ApiError' && e.code === Codes.BadAccount && e.httpStatus === 401);
  assert.equal(c2.state, 'idle');
});

test('start retries while the route has no gateway', async () => {
  const cl = new Cluster();
  cl.loginError = { status: 503, code: Codes.NoServer, message: 'no gateway available' };
  const c = newClient(cl);
  const p = c.start();
  await cl.accept();
  await p;
  assert.equal(c.state, 'online');
  await c.close();
});

test('a reconnect logs in with the resume token; a refused one falls back to the password', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const logins = () => cl.calls.filter((x) => x.path === '/login').map((x) => JSON.parse(x.body));
  cl.ws.drop();
  await cl.accept();
  assert.equal(cl.resumes, 1);
  const second = logins()[1];
  assert.equal(second.resumeToken, 'res1');
  assert.equal(second.userName, undefined);
  cl.latestResume = 'revoked';
  cl.ws.drop();
  await cl.accept();
  const tail = logins().slice(2);
  assert.deepEqual(tail.map((b) => Boolean(b.resumeToken)), [true, false], 'a refused resume, then the password');
  assert.equal(tail[1].password, c.opts.password);
  cl.ws.drop();
  await cl.accept();
  assert.equal(cl.resumes, 2);
  await c.close();
});

// loginBodies are the requests of the /login calls made so far.
function loginBodies(cl) {
  return cl.calls.filter((x) => x.path === '/login').map((x) => JSON.parse(x.body));
}

test('a client given a resumeToken and no password logs in with it, and resumes again after a drop', async () => {
  const cl = new Cluster();
  cl.latestResume = 'kept';
  const c = await started(cl, { password: undefined, resumeToken: 'kept' });
  assert.equal(c.state, 'online');
  cl.ws.drop();
  await cl.accept();
  await until(() => c.state === 'online', 'online again');
  const bodies = loginBodies(cl);
  assert.deepEqual(bodies.map((b) => b.resumeToken), ['kept', 'res1']);
  assert.ok(bodies.every((b) => !b.password && b.userName === undefined), 'never a password login');
  assert.equal(cl.resumes, 2);
  await c.close();
});

test('resume events carry each new token, and "" once close() logs off', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  assert.deepEqual(c.of('resume'), [{ token: 'res1', expiresAt: 1 }]);
  cl.ws.drop();
  await cl.accept();
  await until(() => c.of('resume').length === 2, 'the rotated token');
  assert.deepEqual(c.of('resume')[1], { token: 'res2', expiresAt: 1 });
  await c.close();
  assert.deepEqual(c.of('resume').map((r) => r.token), ['res1', 'res2', '']);
  assert.equal(c.of('resume')[2].expiresAt, 0);
  assert.equal(cl.calls.filter((x) => x.path === '/offLine').length, 1);
});

test('disconnect() ends the client without /offLine and keeps the token usable', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  await c.disconnect();
  assert.equal(c.state, 'closed');
  assert.equal(c.of('closed').length, 1);
  assert.equal(ws.readyState, 3);
  await c.close(); // waits for the disconnect: no log-off after all
  assert.equal(cl.calls.filter((x) => x.path === '/offLine').length, 0);
  assert.deepEqual(c.of('resume').map((r) => r.token), ['res1']);
  // The next page logs in with it.
  const c2 = await started(cl, { password: undefined, resumeToken: 'res1' });
  assert.equal(cl.resumes, 1);
  await c2.close();
});

test('a refused resumeToken without a password: start() rejects with the ApiError at once', async () => {
  const cl = new Cluster();
  cl.latestResume = 'newer';
  const c = newClient(cl, { password: undefined, resumeToken: 'stale' });
  const t0 = Date.now();
  await assert.rejects(c.start({ timeoutMs: 10_000 }), (e) => e.name === 'ApiError' && e.code === Codes.Unauthorized && e.httpStatus === 401);
  assert.ok(Date.now() - t0 < 2000, `rejected after ${Date.now() - t0} ms`);
  assert.equal(loginBodies(cl).length, 1, 'one try, no retries');
  assert.equal(c.state, 'idle');
  assert.deepEqual(c.of('resume'), [{ token: '', expiresAt: 0 }]);
  assert.throws(() => new Client({ userName: 'ann', fetch: cl.fetch, WebSocket: cl.WebSocket, storage: false }), /password or a resumeToken/);
});

test('a reconnect whose token is refused, without a password, stops the client', async () => {
  const cl = new Cluster();
  cl.latestResume = 'kept';
  const c = await started(cl, { password: undefined, resumeToken: 'kept' });
  cl.latestResume = 'revoked';
  cl.ws.drop();
  await until(() => c.state === 'stopped', 'stopped');
  assert.equal(c.of('kicked').length, 1);
  assert.match(c.of('kicked')[0].reason, /login refused/);
  assert.equal(c.of('resume').at(-1).token, '');
  await sleep(50);
  assert.equal(loginBodies(cl).length, 2, 'no retries');
  await c.close();
});

// accountCalls are the POST /account/... calls made so far.
function accountCalls(cl) {
  return cl.calls.filter((x) => x.path.startsWith('/account/'));
}

test('Api.changePassword and logoutOthers: POST /account/... with the bearer, the answer\'s numbers', async () => {
  const cl = new Cluster();
  cl.sessionsEnded = 2;
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  const res = await api.changePassword('secret1', 'secret2');
  assert.deepEqual(res, { sessionsEnded: 2, resumeToken: 'sec1', resumeExpiresAt: 1700000001 });
  const call = accountCalls(cl)[0];
  assert.equal(call.method, 'POST');
  assert.equal(call.path, '/account/password');
  assert.equal(call.headers.Authorization, 'Bearer acc1');
  assert.equal(call.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(call.body), { password: 'secret1', newPassword: 'secret2' });

  cl.sessionsEnded = 0;
  assert.deepEqual(await api.logoutOthers('secret2'), { sessionsEnded: 0, resumeToken: 'sec2', resumeExpiresAt: 1700000002 });
  const out = accountCalls(cl)[1];
  assert.equal(out.path, '/account/logout-others');
  assert.equal(out.headers.Authorization, 'Bearer acc1');
  assert.deepEqual(JSON.parse(out.body), { password: 'secret2' });

  // Refusals are ApiErrors with the route's code.
  await assert.rejects(api.logoutOthers('nope'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && e.httpStatus === 403);
  await assert.rejects(api.changePassword('secret2', 'short'), (e) => e instanceof ApiError && e.code === Codes.BadArgument);
});

test('Client.changePassword: a new resume token, and later password logins use the new password', async (t) => {
  const cl = new Cluster();
  cl.sessionsEnded = 2;
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  assert.equal(await c.changePassword('secret1', 'secret2'), 2);
  const call = accountCalls(cl)[0];
  assert.equal(call.headers.Authorization, `Bearer ${c.api.accessToken}`);
  assert.deepEqual(JSON.parse(call.body), { password: 'secret1', newPassword: 'secret2' });
  assert.deepEqual(c.of('resume').at(-1), { token: 'sec1', expiresAt: 1700000001 });
  assert.equal(c.state, 'online');

  // A reconnect resumes with the token the change handed out…
  cl.ws.drop();
  await cl.accept();
  assert.equal(loginBodies(cl).at(-1).resumeToken, 'sec1');
  // …and when the route refuses the resume token, the password login
  // carries the new password (the old one is a bad account now).
  cl.latestResume = 'revoked';
  cl.ws.drop();
  await cl.accept();
  await until(() => c.state === 'online', 'online again');
  const tail = loginBodies(cl).slice(-2);
  assert.deepEqual(tail.map((b) => Boolean(b.resumeToken)), [true, false], 'a refused resume, then the password');
  assert.equal(tail[1].password, 'secret2');
  assert.equal(c.of('kicked').length, 0);
  await c.close();
});

test('a password changed while a reconnect logs in: that login is tried again with the new credentials', async (t) => {
  const cl = new Cluster();
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  let open;
  cl.loginGate = new Promise((resolve) => { open = resolve; });
  const before = loginBodies(cl).length;
  cl.ws.drop();
  await until(() => loginBodies(cl).length === before + 1, "the reconnect's login");
  assert.equal(await c.changePassword('secret1', 'secret2'), 0);
  open();
  await cl.accept();
  await until(() => c.state === 'online', 'online again');
  const tail = loginBodies(cl).slice(before);
  // The held resume (res1, revoked by the change) and its password
  // fallback (the old password) are refused; then the change's token.
  assert.deepEqual(tail.map((b) => b.resumeToken || b.password), ['res1', 'secret1', 'sec1']);
  assert.equal(c.of('kicked').length, 0);
  assert.equal(c.of('resume').at(-1).token, 'res2');
  await c.close();
});

test('Client.logoutOthers: the new resume token comes as a resume event and the next reconnect uses it', async (t) => {
  const cl = new Cluster();
  cl.sessionsEnded = 1;
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  assert.equal(await c.logoutOthers('secret1'), 1);
  const call = accountCalls(cl)[0];
  assert.equal(call.path, '/account/logout-others');
  assert.equal(call.headers.Authorization, `Bearer ${c.api.accessToken}`);
  assert.deepEqual(JSON.parse(call.body), { password: 'secret1' });
  assert.deepEqual(c.of('resume').map((r) => r.token), ['res1', 'sec1']);
  assert.equal(c.of('resume')[1].expiresAt, 1700000001);
  assert.equal(c.opts.password, 'secret1');
  cl.ws.drop();
  await cl.accept();
  assert.equal(loginBodies(cl).at(-1).resumeToken, 'sec1');
  assert.equal(cl.resumes, 1);
  await c.close();
});

test('a wrong password (4030) rejects changePassword and logoutOthers with the ApiError and changes nothing', async (t) => {
  const cl = new Cluster();
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  const forbidden = (e) => e instanceof ApiError && e.code === Codes.Forbidden && e.httpStatus === 403;
  await assert.rejects(c.changePassword('wrong1', 'secret2'), forbidden);
  await assert.rejects(c.logoutOthers('wrong1'), forbidden);
  await assert.rejects(c.changePassword('secret1', 'short'), (e) => e instanceof ApiError && e.code === Codes.BadArgument);
  assert.equal(accountCalls(cl).length, 3);
  assert.equal(c.opts.password, 'secret1');
  assert.deepEqual(c.of('resume').map((r) => r.token), ['res1']);
  assert.equal(c.state, 'online');
  // The token and the password are the ones of the login.
  cl.ws.drop();
  await cl.accept();
  assert.equal(loginBodies(cl).at(-1).resumeToken, 'res1');
  cl.latestResume = 'revoked';
  cl.ws.drop();
  await cl.accept();
  assert.equal(loginBodies(cl).at(-1).password, 'secret1');
  await c.close();
});

test('Api.deleteAccount: POST /account/delete with the bearer and the password, the account answered', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  assert.deepEqual(await api.deleteAccount('secret1'), { userId: '7', userName: 'ann' });
  const call = accountCalls(cl)[0];
  assert.equal(call.method, 'POST');
  assert.equal(call.path, '/account/delete');
  assert.equal(call.headers.Authorization, 'Bearer acc1');
  assert.equal(call.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(call.body), { password: 'secret1' });
  assert.equal(cl.accountsDeleted, 1);
});

test('Api.deleteAccount: refusals are ApiErrors with the route\'s code', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  await assert.rejects(api.deleteAccount('wrong1'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && e.httpStatus === 403 && e.detail === 'forbidden: wrong password');
  cl.deleteRefusal = { status: 403, code: 4030, message: 'forbidden: passwords and sessions are managed by ldap' };
  await assert.rejects(api.deleteAccount('secret1'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && /managed by ldap/.test(e.detail));
  cl.deleteRefusal = { status: 429, code: 4291, message: 'rate limited', retryAfter: 7 };
  await assert.rejects(api.deleteAccount('secret1'), (e) => e instanceof ApiError && e.code === Codes.RateLimited && e.httpStatus === 429 && e.retryAfter === 7);
  // No bearer: the route refuses the session.
  const anon = new Api('http://route', { fetch: cl.fetch });
  await assert.rejects(anon.deleteAccount('secret1'), (e) => e instanceof ApiError && e.code === Codes.Unauthorized && e.httpStatus === 401);
  assert.equal(accountCalls(cl).length, 4);
  assert.equal(accountCalls(cl)[3].headers.Authorization, undefined);
  assert.equal(cl.accountsDeleted, 0);
});

// stateKeys are the keys of the saved client states in storage.
function stateKeys(storage) {
  return [...storage._m.keys()].filter((k) => k.startsWith('gocim:'));
}

test('Client.deleteAccount: the account answered, the client closed for good without /offLine, resume "", nothing saved', async (t) => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c = await started(cl, { storage });
  t.after(() => c.close()); // a failed assertion leaves no client running
  const ws = cl.ws;
  ws.push(msg(1, 'hi'));
  await until(() => stateKeys(storage).length === 1 && JSON.parse(storage.getItem(stateKeys(storage)[0])).lastSeq === 1, 'the state saved');
  c.send('bob', 'never answered'); // waits in the outbox

  assert.deepEqual(await c.deleteAccount('secret1'), { userId: '7', userName: 'ann' });
  const call = accountCalls(cl)[0];
  assert.equal(call.path, '/account/delete');
  assert.equal(call.headers.Authorization, `Bearer ${c.api.accessToken}`);
  assert.deepEqual(JSON.parse(call.body), { password: 'secret1' });
  assert.equal(c.state, 'closed');
  assert.equal(c.of('closed').length, 1);
  assert.equal(c.of('kicked').length, 0, 'the answer came first: no kick to report');
  assert.deepEqual(c.of('resume'), [{ token: 'res1', expiresAt: 1 }, { token: '', expiresAt: 0 }]);
  assert.equal(ws.readyState, 3);
  assert.deepEqual(stateKeys(storage), [], 'the saved state of the deleted account is forgotten');
  await c.close(); // waits for the deletion's end: no log-off after all
  assert.equal(cl.calls.filter((x) => x.path === '/offLine').length, 0);
  assert.equal(loginBodies(cl).length, 1, 'no login after the deletion');
  assert.throws(() => c.send('bob', 'x'), /closed/);
  assert.deepEqual(stateKeys(storage), []);
});

test('Client.deleteAccount: a KICK that beats the answer stops the client first ("kicked"), then it closes; still no /offLine', async (t) => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c = await started(cl, { storage });
  t.after(() => c.close()); // a failed assertion leaves no client running
  await until(() => stateKeys(storage).length === 1, 'the state saved');
  // As the page does: a kick ends the chat with close().
  c.on('kicked', () => c.close());
  let open;
  cl.deleteGate = new Promise((resolve) => { open = resolve; });
  const p = c.deleteAccount('secret1');
  await until(() => accountCalls(cl).length === 1, 'the request');
  cl.ws.push({ type: 'KICK', kick: { reason: 'account deleted' } });
  await until(() => c.state !== 'online', 'the kick');
  open();
  assert.deepEqual(await p, { userId: '7', userName: 'ann' });
  assert.deepEqual(c.of('kicked').map((k) => k.reason), ['account deleted']);
  assert.deepEqual(c.of('state').map((s) => s.state).slice(-2), ['stopped', 'closed']);
  assert.equal(c.of('closed').length, 1);
  assert.deepEqual(c.of('resume').map((r) => r.token), ['res1', '']);
  assert.equal(cl.calls.filter((x) => x.path === '/offLine').length, 0);
  assert.deepEqual(stateKeys(storage), []);
  assert.equal(loginBodies(cl).length, 1, 'no reconnect after the kick');
});

test('a wrong password (4030) rejects Client.deleteAccount and changes nothing', async (t) => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c = await started(cl, { storage });
  t.after(() => c.close()); // a failed assertion leaves no client running
  await until(() => stateKeys(storage).length === 1, 'the state saved');
  await assert.rejects(c.deleteAccount('wrong1'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && e.httpStatus === 403);
  assert.equal(c.state, 'online');
  assert.deepEqual(c.of('resume').map((r) => r.token), ['res1']);
  assert.equal(c.of('closed').length, 0);
  assert.equal(stateKeys(storage).length, 1);
  // Still a working client: a drop reconnects with the kept token.
  cl.ws.drop();
  await cl.accept();
  await until(() => c.state === 'online', 'online again');
  assert.equal(loginBodies(cl).at(-1).resumeToken, 'res1');
  await c.close();
  assert.equal(cl.calls.filter((x) => x.path === '/offLine').length, 1);
});

test('a missing PONG ends the link and the client reconnects', async () => {
  const cl = new Cluster();
  const c = await started(cl, { heartbeatMs: 30, pongTimeoutMs: 30 });
  const ws1 = cl.ws;
  await until(() => ws1.of('PING').length === 1, 'PING');
  await until(() => c.of('disconnected').length === 1, 'the link given up');
  assert.match(c.of('disconnected')[0].reason, /no PONG/);
  const ws2 = await cl.accept();
  await until(() => ws2.of('PING').length === 1, 'PING on the new link');
  ws2.push({ type: 'PONG' });
  assert.equal(c._cur?.ws, ws2);
  assert.equal(c._cur.pinged, false); // the PONG settled it
  assert.equal(c.of('disconnected').length, 1);
  await c.close();
});

test('history normalizes the route\'s entries', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const page = await c.history({ peer: 'bob', limit: 5 });
  const call = cl.calls.find((x) => x.path === '/history');
  assert.equal(call.search, '?peer=bob&limit=5');
  assert.equal(call.headers.Authorization, 'Bearer acc1');
  assert.equal(page.messages[0].text, 'old');
  assert.equal(page.messages[0].seq, 4);
  const f = page.messages[1];
  assert.equal(f.kind, 'file');
  assert.equal(f.seq, 0);
  assert.equal(f.groupSeq, 9);
  assert.equal(utf8Decode(f.data), 'xy');
  const blob = await c.downloadFile(f);
  assert.equal(await blob.text(), 'xy');
  await c.close();
});

test('a message too large for one frame is refused at once', async () => {
  const cl = new Cluster();
  const c = await started(cl, { maxFrame: 100 });
  assert.throws(() => c.send('bob', 'x'.repeat(200)), /frame limit/);
  c.send('bob', 'short');
  await c.close();
});

// ------------------------------------------------------------ presence and typing

const SUB_BASE = 2 ** 40;

// settled is 'pending' when p is not settled after the pending callbacks ran.
function settled(p) {
  return Promise.race([p.then(() => 'resolved', () => 'rejected'), sleep(5).then(() => 'pending')]);
}

function state(userId, online, atMs, extra = {}) {
  return { userId, userName: `u${userId}`, online, platform: 'web', atMs: String(atMs), ...extra };
}

function snapshot(reqId, states) {
  return { type: 'PRESENCE', reqId: String(reqId), presence: { snapshot: true, states } };
}

function changes(states) {
  return { type: 'PRESENCE', presence: { states } };
}

test('the login names the platform: web by default, or the option', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const body = JSON.parse(cl.calls.find((x) => x.path === '/login').body);
  assert.equal(body.platform, 'web');
  assert.equal(body.userName, 'ann');
  await c.close();

  const cl2 = new Cluster();
  const c2 = await started(cl2, { platform: 'desktop' });
  assert.equal(JSON.parse(cl2.calls.find((x) => x.path === '/login').body).platform, 'desktop');
  await c2.close();

  const cl3 = new Cluster();
  const c3 = await started(cl3, { platform: '' });
  assert.equal(JSON.parse(cl3.calls.find((x) => x.path === '/login').body).platform, undefined);
  await c3.close();
});

test('subscribe: the snapshot answers it; newer changes of watched users are kept, stale and unwatched ones ignored', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const p = c.subscribe(['bob'], ['5']);
  const up = ws.of('SUBSCRIBE');
  assert.equal(up.length, 1);
  assert.deepEqual(up[0].subscribe, { users: ['bob'], groups: ['5'] });
  const req = Number(up[0].reqId);
  assert.ok(req > SUB_BASE, `reqId ${up[0].reqId} above 2^40`);
  assert.equal(typeof up[0].reqId, 'string'); // uint64 in protojson

  // A snapshot answering another request does not settle this one.
  ws.push(snapshot(req + 1000, []));
  ws.push(snapshot(req, [state('8', false, 100, { userName: 'bob', platform: '' }), state('9', true, 100, { platform: 'mobile' })]));
  const states = await p;
  assert.deepEqual(states, [
    { userId: '8', userName: 'bob', online: false, platform: '', atMs: 100, lastSeen: 100 },
    { userId: '9', userName: 'u9', online: true, platform: 'mobile', atMs: 100, lastSeen: 0 },
  ]);
  assert.deepEqual(c.presenceOf('9'), { userId: '9', userName: 'u9', online: true, platform: 'mobile', atMs: 100, lastSeen: 0 });
  assert.equal(c.presenceOf('10'), null);
  const snaps = c.of('presence').filter((e) => e.snapshot);
  assert.equal(snaps.at(-1).states.length, 2);

  // bob comes online: kept and reported.
  ws.push(changes([state('8', true, 200, { userName: 'bob' })]));
  assert.equal(c.presenceOf('8').online, true);
  assert.deepEqual(c.of('presence').at(-1), { states: [{ userId: '8', userName: 'bob', online: true, platform: 'web', atMs: 200, lastSeen: 0 }], snapshot: false });
  const n = c.of('presence').length;

  // An older change that passed it on the way: ignored, not reported.
  ws.push(changes([state('8', false, 150)]));
  assert.equal(c.presenceOf('8').online, true);
  assert.equal(c.presenceOf('8').atMs, 200);
  assert.equal(c.of('presence').length, n);

  // A user not in the snapshot: ignored.
  ws.push(changes([state('42', true, 300)]));
  assert.equal(c.presenceOf('42'), null);
  assert.equal(c.of('presence').length, n);

  // A mixed frame reports only what it kept.
  ws.push(changes([state('42', true, 300), state('9', false, 300), state('8', false, 100)]));
  assert.deepEqual(c.of('presence').at(-1).states.map((s) => [s.userId, s.online]), [['9', false]]);
  assert.equal(c.presenceOf('9').online, false);
  await c.close();
});

test('a refused subscribe rejects with the GatewayError; the previous subscription stays', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const p1 = c.subscribe('bob');
  const r1 = ws.of('SUBSCRIBE')[0].reqId;
  ws.push(snapshot(r1, [state('8', true, 100)]));
  await p1;

  const p2 = c.subscribe(['nobody-here'], []);
  const r2 = ws.of('SUBSCRIBE')[1].reqId;
  assert.notEqual(r2, r1);
  ws.push({ type: 'ERROR', reqId: r2, error: { code: Codes.BadAccount, text: 'unknown user nobody-here' } });
  await assert.rejects(p2, (e) => e instanceof GatewayError && e.code === Codes.BadAccount && /nobody-here/.test(e.text));
  assert.equal(c.of('error').length, 0); // the answer to a call: not an event
  assert.equal(c.state, 'online'); // and not about the link
  assert.deepEqual(c.subscription, { users: ['bob'], groups: [] });
  assert.equal(c.presenceOf('8').online, true); // what it knew stays

  // The next link subscribes to what is in force: bob.
  ws.drop();
  const ws2 = await cl.accept();
  await until(() => ws2.of('SUBSCRIBE').length === 1, 'the resubscribe');
  assert.deepEqual(ws2.of('SUBSCRIBE')[0].subscribe, { users: ['bob'] });
  await c.close();
});

test('subscribes again after a reconnect; a subscribe made offline or cut off goes on the next link', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws1 = cl.ws;
  const p = c.subscribe(['bob', 'carol'], ['5']);
  ws1.push(snapshot(ws1.of('SUBSCRIBE')[0].reqId, [state('8', true, 100), state('9', false, 100)]));
  await p;

  ws1.drop();
  await until(() => c.state === 'reconnecting', 'reconnecting');
  const ws2 = await cl.accept();
  await until(() => ws2.of('SUBSCRIBE').length === 1, 'the resubscribe');
  const again = ws2.of('SUBSCRIBE')[0];
  assert.deepEqual(again.subscribe, { users: ['bob', 'carol'], groups: ['5'] });
  assert.ok(Number(again.reqId) > SUB_BASE);
  assert.notEqual(again.reqId, ws1.of('SUBSCRIBE')[0].reqId);
  // Its snapshot replaces what the client knew and comes as an event.
  ws2.push(snapshot(again.reqId, [state('8', false, 500), state('9', true, 500)]));
  assert.deepEqual(c.of('presence').at(-1), {
    snapshot: true,
    states: [
      { userId: '8', userName: 'u8', online: false, platform: 'web', atMs: 500, lastSeen: 500 },
      { userId: '9', userName: 'u9', online: true, platform: 'web', atMs: 500, lastSeen: 0 },
    ],
  });
  assert.equal(c.presenceOf('8').online, false);

  // A subscribe whose link dies before the answer, and one made while
  // offline that replaces it: the first is superseded, the second goes on
  // the next link with its own req_id and settles with that snapshot.
  const cut = c.subscribe(['dave']);
  assert.equal(ws2.of('SUBSCRIBE').length, 2);
  ws2.drop();
  await until(() => c.state === 'reconnecting', 'reconnecting again');
  const offline = c.subscribe(['erin']);
  assert.equal(await settled(cut), 'pending'); // until a link decides
  const ws3 = await cl.accept();
  await assert.rejects(cut, (e) => e instanceof ClientError && e.reason === ClientError.SUPERSEDED);
  await until(() => ws3.of('SUBSCRIBE').length === 1, 'the offline subscribe');
  const sent = ws3.of('SUBSCRIBE')[0];
  assert.deepEqual(sent.subscribe, { users: ['erin'] });
  ws3.push(snapshot(sent.reqId, [state('11', true, 900)]));
  assert.deepEqual((await offline).map((s) => s.userId), ['11']);
  await c.close();
});

test('without a subscription nothing is sent on a new link; pending subscribes fail on close', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  cl.ws.drop();
  const ws2 = await cl.accept();
  await until(() => c.state === 'online', 'online');
  assert.equal(ws2.of('SUBSCRIBE').length, 0);
  const p = c.subscribe(['bob']);
  await c.close();
  await assert.rejects(p, (e) => e instanceof ClientError && e.reason === ClientError.CLOSED);
  await assert.rejects(c.subscribe(['bob']), (e) => e instanceof ClientError);
});

test('typing frames: to a user or a group, stopped only when set', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  assert.equal(c.typing('bob'), true);
  assert.equal(c.typing('8', true), true);
  assert.equal(c.typingInGroup('5'), true);
  assert.equal(c.typingInGroup(5, true), true);
  assert.deepEqual(ws.of('TYPING'), [
    { type: 'TYPING', typing: { to: 'bob' } },
    { type: 'TYPING', typing: { to: '8', stopped: true } },
    { type: 'TYPING', typing: { group: '5' } },
    { type: 'TYPING', typing: { group: '5', stopped: true } },
  ]);
  assert.throws(() => c.typing(''), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
  assert.throws(() => c.typingInGroup(''), (e) => e instanceof ClientError && e.reason === ClientError.NO_GROUP);
  // Live only: offline it is dropped, never replayed.
  ws.drop();
  await until(() => c.state === 'reconnecting', 'reconnecting');
  assert.equal(c.typing('bob'), false);
  const ws2 = await cl.accept();
  await until(() => c.state === 'online', 'online');
  assert.equal(ws2.of('TYPING').length, 0);
  await c.close();
});

test('typing from others comes as an event', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push({ type: 'TYPING', typing: { from: '8', fromName: 'bob', to: '7' } });
  ws.push({ type: 'TYPING', typing: { from: '9', fromName: 'carol', group: '5', stopped: true } });
  assert.deepEqual(c.of('typing'), [
    { from: '8', fromName: 'bob', to: '7', group: '', stopped: false },
    { from: '9', fromName: 'carol', to: '', group: '5', stopped: true },
  ]);
  assert.equal(c.of('message').length, 0);
  await c.close();
});

test('Api.presence asks GET /presence with the bearer', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  assert.deepEqual(await api.presence([]), []);
  assert.equal(cl.calls.filter((x) => x.path === '/presence').length, 0);
  const out = await api.presence(['bob', 'carol', 'dave']);
  const call = cl.calls.find((x) => x.path === '/presence');
  assert.equal(call.method, 'GET');
  assert.equal(call.search, '?users=bob%2Ccarol%2Cdave');
  assert.equal(call.headers.Authorization, 'Bearer acc1');
  assert.deepEqual(out, [
    { userId: '8', userName: 'bob', online: true, since: 1700000000000, lastSeen: 0 },
    { userId: '10', userName: 'carol', online: false, since: 0, lastSeen: 0 }, // never seen: no lastSeen
    { userId: '11', userName: 'dave', online: false, since: 0, lastSeen: 1700000005000 },
  ]);
});

test('last seen: an offline state\'s atMs, from a snapshot or a live change; 0 never seen, and once online', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const p = c.subscribe(['bob', 'carol', 'dave']);
  // bob offline since 1000, carol never seen (or hiding: at_ms 0, as
  // protojson leaves it out), dave online.
  const never = { userId: '9', userName: 'carol', online: false, platform: '' };
  ws.push(snapshot(ws.of('SUBSCRIBE')[0].reqId, [state('8', false, 1000, { platform: '' }), never, state('10', true, 1500)]));
  const states = await p;
  assert.deepEqual(states.map((s) => [s.userId, s.online, s.lastSeen]), [['8', false, 1000], ['9', false, 0], ['10', true, 0]]);
  assert.equal(c.presenceOf('8').lastSeen, 1000);
  assert.equal(c.presenceOf('9').lastSeen, 0);
  assert.equal(c.presenceOf('10').lastSeen, 0);
  assert.deepEqual(c.of('presence').at(-1).states.map((s) => s.lastSeen), [1000, 0, 0]);

  // bob comes online: no last seen any more.
  ws.push(changes([state('8', true, 2000)]));
  assert.equal(c.presenceOf('8').online, true);
  assert.equal(c.presenceOf('8').lastSeen, 0);
  assert.equal(c.of('presence').at(-1).states[0].lastSeen, 0);
  // and goes: the change's time is his last seen, in the event too.
  ws.push(changes([state('8', false, 3000)]));
  assert.deepEqual(c.presenceOf('8'), { userId: '8', userName: 'u8', online: false, platform: 'web', atMs: 3000, lastSeen: 3000 });
  assert.deepEqual(c.of('presence').at(-1), { states: [{ userId: '8', userName: 'u8', online: false, platform: 'web', atMs: 3000, lastSeen: 3000 }], snapshot: false });
  // An older offline change that passed the later ones: it moves nothing back.
  ws.push(changes([state('8', false, 2500)]));
  assert.equal(c.presenceOf('8').lastSeen, 3000);
  // carol, never seen, comes and goes.
  ws.push(changes([state('9', true, 4000), state('9', false, 4100)]));
  assert.equal(c.presenceOf('9').lastSeen, 4100);
  // A later snapshot (a reconnect's) replaces what was known.
  ws.drop();
  const ws2 = await cl.accept();
  await until(() => ws2.of('SUBSCRIBE').length === 1, 'the resubscribe');
  ws2.push(snapshot(ws2.of('SUBSCRIBE')[0].reqId, [state('8', false, 3000), state('9', true, 5000), state('10', false, 5200)]));
  assert.deepEqual(['8', '9', '10'].map((u) => c.presenceOf(u).lastSeen), [3000, 0, 5200]);
  await c.close();
});

test('lastSeenText words a last seen relative to now, in local time', () => {
  const at = (y, mo, d, h, mi, s = 0) => new Date(y, mo - 1, d, h, mi, s).getTime();
  const now = at(2026, 12, 7, 15, 30);
  assert.equal(lastSeenText(0, now), '');
  assert.equal(lastSeenText(undefined, now), '');
  assert.equal(lastSeenText(now, now), 'last seen just now');
  assert.equal(lastSeenText(now - 59_999, now), 'last seen just now');
  assert.equal(lastSeenText(now + 5000, now), 'last seen just now'); // this clock a little behind the route's
  assert.equal(lastSeenText(now - 60_000, now), 'last seen 1 min ago');
  assert.equal(lastSeenText(now - 5 * 60_000 - 30_000, now), 'last seen 5 min ago');
  assert.equal(lastSeenText(now - 3600_000 + 1, now), 'last seen 59 min ago');
  assert.equal(lastSeenText(now - 3600_000, now), 'last seen today at 14:30');
  assert.equal(lastSeenText(at(2026, 12, 7, 0, 2), now), 'last seen today at 00:02');
  assert.equal(lastSeenText(at(2026, 12, 6, 23, 59), now), 'last seen yesterday at 23:59');
  assert.equal(lastSeenText(at(2026, 12, 6, 9, 5), now), 'last seen yesterday at 09:05');
  assert.equal(lastSeenText(at(2026, 12, 5, 14, 2), now), 'last seen 5 Dec at 14:02');
  assert.equal(lastSeenText(at(2026, 1, 3, 8, 0), now), 'last seen 3 Jan at 08:00');
  assert.equal(lastSeenText(at(2025, 12, 31, 22, 15), now), 'last seen 31 Dec 2025 at 22:15');
  // Under an hour wins over the day: 00:10, seen at 23:50 the day before.
  assert.equal(lastSeenText(at(2026, 12, 6, 23, 50), at(2026, 12, 7, 0, 10)), 'last seen 20 min ago');
  // Yesterday across a month's and a year's end.
  assert.equal(lastSeenText(at(2026, 11, 30, 12, 0), at(2026, 12, 1, 12, 0)), 'last seen yesterday at 12:00');
  assert.equal(lastSeenText(at(2025, 12, 31, 12, 0), at(2026, 1, 1, 12, 0)), 'last seen yesterday at 12:00');
  // A protojson string (64-bit) reads as its number; Date.now() by default.
  assert.equal(lastSeenText(String(now - 120_000), now), 'last seen 2 min ago');
  assert.equal(lastSeenText(Date.now() - 1000), 'last seen just now');
});

// ------------------------------------------------------------ recall, edit, delete

test('recall and edit go as MSGs with op and refMsgId, to a user or a group, kept like any send', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const r1 = c.recall('bob', 'M1');
  const r2 = c.recallInGroup('5', 'M2');
  const e1 = c.edit('8', 'M3', 'fixed typo');
  const e2 = c.editInGroup(5, 'M4', 'héllo again');
  const ups = ws.of('MSG').map((f) => f.msg);
  assert.equal(ups.length, 4);
  assert.deepEqual(ups[0], { clientMsgId: r1, to: 'bob', op: 'MSG_OP_RECALL', refMsgId: 'M1' }); // no body, no kind
  assert.deepEqual(ups[1], { clientMsgId: r2, group: '5', op: 'MSG_OP_RECALL', refMsgId: 'M2' });
  assert.deepEqual(ups[2], { clientMsgId: e1, to: '8', op: 'MSG_OP_EDIT', refMsgId: 'M3', body: bytesToBase64(utf8Encode('fixed typo')) });
  assert.deepEqual(ups[3], { clientMsgId: e2, group: '5', op: 'MSG_OP_EDIT', refMsgId: 'M4', body: bytesToBase64(utf8Encode('héllo again')) });
  assert.equal(new Set([r1, r2, e1, e2]).size, 4); // each its own clientMsgId

  // Statuses name the change.
  const st = c.status(e1);
  assert.equal(st.status, 'pending');
  assert.equal(st.op, 'edit');
  assert.equal(st.refMsgId, 'M3');
  assert.equal(st.text, 'fixed typo');
  assert.equal(c.status(r1).op, 'recall');
  assert.equal(c.status(r1).text, '');
  assert.deepEqual(c.of('status').filter((s) => s.clientMsgId === r2).map((s) => [s.status, s.op, s.refMsgId, s.group]), [['pending', 'recall', 'M2', '5']]);

  // RECEIPT_SENT answers them as any message; a refusal is final.
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: r1 } });
  assert.equal(c.status(r1).status, 'sent');
  assert.equal(c.statusByMsgId('X1').refMsgId, 'M1');
  ws.push({ type: 'ERROR', error: { code: Codes.BadArgument, text: 'too old to change', clientMsgId: r2 } });
  assert.equal(c.status(r2).status, 'failed');
  assert.equal(c.of('error').at(-1).clientMsgId, r2);

  // Unanswered ones are written again, unchanged, on a new link.
  ws.drop();
  const ws2 = await cl.accept();
  await until(() => ws2.of('MSG').length === 2, 'the replay');
  assert.deepEqual(ws2.of('MSG').map((f) => f.msg), [ups[2], ups[3]]);

  // Misuse is refused at once.
  assert.throws(() => c.recall('', 'M1'), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
  assert.throws(() => c.editInGroup('', 'M1', 'x'), (e) => e instanceof ClientError && e.reason === ClientError.NO_GROUP);
  assert.throws(() => c.edit('bob', '', 'x'), (e) => e instanceof ClientError && e.reason === ClientError.NO_MESSAGE);
  assert.throws(() => c.sendMsg({ broadcast: true, op: 'recall', refMsgId: 'M1' }), (e) => e instanceof ClientError && e.reason === 'bad-op');
  assert.throws(() => c.sendMsg({ to: 'bob', op: 'delete', refMsgId: 'M1' }), (e) => e instanceof ClientError && e.reason === 'bad-op');
  assert.equal(ws2.of('MSG').length, 2);
  await c.close();
});

test('a recall or an edit that waits survives a reload', async () => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c1 = await started(cl, { storage });
  cl.ws.drop();
  await until(() => c1.state === 'reconnecting', 'reconnecting');
  const id = c1.edit('bob', 'M9', 'later');
  c1._saveNow();
  c1._closing = true;
  c1._life.abort();

  const c2 = newClient(cl, { storage });
  const p = c2.start();
  const ws2 = await cl.accept();
  await p;
  await until(() => ws2.of('MSG').length === 1, 'the replay');
  assert.deepEqual(ws2.of('MSG')[0].msg, { clientMsgId: id, to: 'bob', op: 'MSG_OP_EDIT', refMsgId: 'M9', body: bytesToBase64(utf8Encode('later')) });
  assert.equal(c2.status(id).op, 'edit');
  assert.equal(c2.status(id).refMsgId, 'M9');
  await c2.close();
});

test('an incoming recall or edit is a message event with op and refMsgId, in seq order', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  ws.push(msg(1, 'helo'));
  // The recall (seq 3) passes the edit (seq 2) on the way: held back.
  ws.push(msg(3, '', { op: 'MSG_OP_RECALL', refMsgId: 'm1' }));
  assert.equal(c.of('message').length, 1);
  ws.push(msg(2, 'hello', { op: 'MSG_OP_EDIT', refMsgId: 'm1' }));
  const got = c.of('message').map((m) => [m.seq, m.msgId, m.op, m.refMsgId, m.text]);
  assert.deepEqual(got, [
    [1, 'm1', '', '', 'helo'],
    [2, 'm2', 'edit', 'm1', 'hello'],
    [3, 'm3', 'recall', 'm1', ''],
  ]);
  assert.equal(c.of('message')[2].from, '8');
  // A group timeline's changes, and an op this client does not know (kept
  // by name, or by number as protojson writes an enum value it has no name for).
  ws.push({ type: 'MSG', msg: { msgId: 'g1', from: '8', group: '5', groupSeq: '1', op: 'MSG_OP_EDIT', refMsgId: 'g0', body: bytesToBase64(utf8Encode('new')), timestampMs: '9' } });
  ws.push(msg(4, '', { op: 'MSG_OP_PIN', refMsgId: 'm1' }));
  ws.push(msg(5, '', { op: 1, refMsgId: 'm1' }));
  ws.push(msg(6, '', { op: 9, refMsgId: 'm1' }));
  assert.deepEqual(c.of('message').slice(3).map((m) => [m.msgId, m.op, m.refMsgId, m.group]), [
    ['g1', 'edit', 'g0', '5'],
    ['m4', 'MSG_OP_PIN', 'm1', ''],
    ['m5', 'recall', 'm1', ''],
    ['m6', '9', 'm1', ''],
  ]);
  await until(() => ws.of('ACK').some((f) => f.ack.seq === '6'), 'the ACK covering them');
  await c.close();
});

test('history carries each message\'s state as op', async () => {
  const cl = new Cluster();
  cl.historyAnswer = {
    messages: [
      { msgId: 'h3', seq: 7, from: '8', fromName: 'bob', to: '7', kind: 0, body: 'plain', file: null, timestampMs: 7 },
      { msgId: 'h2', seq: 6, from: '8', fromName: 'bob', to: '7', kind: 0, body: 'latest text', file: null, timestampMs: 6, op: 'edited' },
      { msgId: 'h1', seq: 5, from: '8', fromName: 'bob', to: '7', kind: 0, body: '', file: null, timestampMs: 5, op: 'recalled' },
    ],
    next: '',
  };
  const c = await started(cl);
  const page = await c.history({ peer: 'bob' });
  assert.deepEqual(page.messages.map((m) => [m.msgId, m.op, m.refMsgId, m.text, m.kind]), [
    ['h3', '', '', 'plain', 'text'],
    ['h2', 'edited', '', 'latest text', 'text'],
    ['h1', 'recalled', '', '', 'text'],
  ]);
  await c.close();
});

test('deleteHistory: POST /history/delete with the bearer, at most 100 ids a call', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  await api.deleteHistory('a1');
  const calls = () => cl.calls.filter((x) => x.path === '/history/delete');
  assert.equal(calls().length, 1);
  const call = calls()[0];
  assert.equal(call.method, 'POST');
  assert.equal(call.headers.Authorization, 'Bearer acc1');
  assert.equal(call.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(call.body), { msgIds: ['a1'] });

  const ids = Array.from({ length: 250 }, (_, i) => `id${i}`);
  await api.deleteHistory(ids);
  const sent = calls().slice(1).map((x) => JSON.parse(x.body).msgIds);
  assert.deepEqual(sent.map((l) => l.length), [100, 100, 50]);
  assert.deepEqual(sent.flat(), ids);

  await assert.rejects(api.deleteHistory([]), (e) => e instanceof ClientError && e.reason === ClientError.NO_MESSAGE);
  assert.equal(calls().length, 4);

  // Through a Client, with its session's bearer; a refusal is an ApiError.
  const c = await started(cl);
  await c.deleteHistory(['b1', 'b2']);
  assert.deepEqual(JSON.parse(calls().at(-1).body), { msgIds: ['b1', 'b2'] });
  assert.equal(calls().at(-1).headers.Authorization, `Bearer ${c.api.accessToken}`);
  const orig = cl.fetch;
  c.api._fetch = async () => new Response(JSON.stringify({ code: Codes.RateLimited, message: 'too many history requests', data: null }), { status: 429, headers: { 'Retry-After': '2' } });
  await assert.rejects(c.deleteHistory('b3'), (e) => e.name === 'ApiError' && e.code === Codes.RateLimited && e.retryAfter === 2);
  c.api._fetch = orig;
  await c.close();
});

test('a busy inbox is acknowledged no sooner than ackIntervalMs (times the spread) after the previous ACK', async () => {
  const cl = new Cluster();
  // random 0.999: every ACK wait is scaled by 1.499.
  const c = await started(cl, { ackDelayMs: 10, ackIntervalMs: 200, random: () => 0.999 });
  const ws = cl.ws;
  const ackTimes = []; // when each ACK was written, for the gap between them
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    if (JSON.parse(data).type === 'ACK') ackTimes.push(Date.now());
    send(data);
  };
  ws.push(syncAnswer(0, 0, 0));
  ws.push(msg(1, 'one'));
  await until(() => ws.of('ACK').some((f) => f.ack.seq === '1'), 'an ACK of 1');
  ws.push(msg(2, 'two'));
  ws.push(msg(3, 'three'));
  await until(() => ws.of('ACK').some((f) => f.ack.seq === '3'), 'an ACK of 3');
  const gap = ackTimes[1] - ackTimes[0];
  assert.ok(gap >= 295, `the second ACK was written ${gap} ms after the first, want 200 × 1.499`);
  assert.deepEqual(ws.of('ACK').map((f) => f.ack.seq), ['1', '3']);
  await c.close();
});

// Several devices (route --login-policy platform): ann is user 7, bob 8.

test('the echo of our own send is acknowledged, not shown', async () => {
  const cl = new Cluster();
  const c = await started(cl, { ackDelayMs: 10 });
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const id = c.send('8', 'hi bob');
  const appId = 'app-chosen-1';
  c.sendMsg({ to: '8', clientMsgId: appId, text: 'mine too' });
  ws.push(msg(1, 'hi bob', { from: '7', fromName: 'ann', to: '8', clientMsgId: id }));
  ws.push(msg(2, 'mine too', { from: '7', fromName: 'ann', to: '8', clientMsgId: appId }));
  ws.push(msg(3, 'recall', { from: '7', fromName: 'ann', to: '8', clientMsgId: c.sendMsg({ to: '8', op: 'recall', refMsgId: 'm1' }), op: 'MSG_OP_RECALL', refMsgId: 'm1' }));
  ws.push(msg(4, 'hi ann'));
  assert.deepEqual(c.of('message').map((m) => m.msgId), ['m4']);
  assert.equal(c.of('message')[0].outgoing, false);
  assert.equal(c.lastSeq, 4);
  await until(() => ws.of('ACK').some((f) => f.ack.seq === '4'), 'an ACK of 4');
  await c.close();
});

test('a copy sent from another device is outgoing and never marked read; a message to oneself is not', async () => {
  const cl = new Cluster();
  const c = await started(cl, { ackDelayMs: 10_000 });
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  ws.push(msg(1, 'from my phone', { from: '7', fromName: 'ann', to: '8', clientMsgId: '0123456789abcdef-1' }));
  ws.push(msg(2, 'hi', { from: '8', to: '7' }));
  ws.push(msg(3, 'note to self', { from: '7', fromName: 'ann', to: '7', clientMsgId: '0123456789abcdef-2' }));
  ws.push(msg(4, '', { from: '7', fromName: 'ann', group: '5', to: '', clientMsgId: '0123456789abcdef-3', op: 'MSG_OP_EDIT', refMsgId: 'g1' }));
  const ms = c.of('message');
  assert.deepEqual(ms.map((m) => [m.msgId, m.outgoing]), [['m1', true], ['m2', false], ['m3', false], ['m4', true]]);
  assert.equal(ms[0].to, '8');
  assert.equal(ms[3].op, 'edit');
  assert.equal(c.markRead([ms[0], ms[3]]), 0);
  assert.equal(c.markRead(ms[1]), 1);
  assert.deepEqual(ws.of('READ').map((f) => f.read.msgIds), [['m2']]);
  await c.close();
});

test('a READ made on another device is readelsewhere, not a receipt; READs not yet written for those messages are dropped', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  let ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const id = c.send('8', 'hello');
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: id } });
  ws.push(msg(1, 'one'));
  ws.push(msg(2, 'two'));
  ws.drop();
  await until(() => c.state === 'reconnecting', 'reconnecting');
  assert.equal(c.markRead(c.of('message')), 2); // waits for a link
  // The new link's login sync brings, before the READs go out, that
  // another device read m1 (and names X1, ann's own message, to prove it
  // is not taken for a receipt).
  ws = await cl.login();
  ws.push({ type: 'LOGIN_ACK', reqId: '1', loginAck: { userId: '7', userName: 'ann', sessionId: 's2', gatewayId: 'gw:1:2', serverTimeMs: '1' } });
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_READ', by: '7', peer: '8', seq: '3', items: [{ msgId: 'm1' }, { msgId: 'X1' }] } });
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_READ', by: '7', group: '5', seq: '4', msgId: 'g1' } });
  ws.push(syncAnswer(2, 4, 4));
  await until(() => c.state === 'online', 'online again');
  assert.deepEqual(c.of('readelsewhere'), [
    { peer: '8', group: '', msgIds: ['m1', 'X1'], timestampMs: 0, seq: 3 },
    { peer: '', group: '5', msgIds: ['g1'], timestampMs: 0, seq: 4 },
  ]);
  assert.equal(c.of('receipt').filter((r) => r.status === 'read').length, 0);
  assert.equal(c.status(id).status, 'sent');
  await until(() => ws.of('READ').length > 0, 'the READ left');
  await sleep(20);
  assert.deepEqual(ws.of('READ').map((f) => f.read.msgIds), [['m2']]);
  assert.equal(c.lastSeq, 4);
  // A READ by ann without a peer or group (her message to herself) stays a receipt.
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_READ', by: '7', seq: '5', msgId: 'n1' } });
  assert.equal(c.of('receipt').filter((r) => r.status === 'read' && r.msgId === 'n1').length, 1);
  await c.close();
});

test('a large group\'s timeline: our echo is not shown, a copy from another device is outgoing', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const id = c.sendMsg({ group: '5', text: 'here' });
  const g = (gseq, from, clientMsgId) => ({ type: 'MSG', msg: { msgId: `g${gseq}`, from, group: '5', groupSeq: String(gseq), clientMsgId, body: bytesToBase64(utf8Encode('x')), timestampMs: '9' } });
  ws.push(g(1, '7', id));
  ws.push(g(2, '7', '0123456789abcdef-1'));
  ws.push(g(3, '8', 'fedcba9876543210-1'));
  assert.deepEqual(c.of('message').map((m) => [m.msgId, m.outgoing]), [['g2', true], ['g3', false]]);
  await until(() => ws.of('ACK').some((f) => f.ack.groups), 'ACK.groups');
  await sleep(50);
  assert.deepEqual(ws.of('ACK').filter((f) => f.ack.groups).at(-1).ack.groups, [{ group: '5', seq: '3' }]);
  await c.close();
});

// ------------------------------------------------------------ blocking users

// blockCalls are the /blocks calls made so far.
function blockCalls(cl) {
  return cl.calls.filter((x) => x.path === '/blocks' || x.path.startsWith('/blocks/'));
}

test('Api.block, unblock and blocks: /blocks with the bearer, by id or name, the answers parsed', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');

  assert.deepEqual(await api.block('bob'), { userId: '8', userName: 'bob' });
  const post = blockCalls(cl)[0];
  assert.equal(post.method, 'POST');
  assert.equal(post.path, '/blocks');
  assert.equal(post.search, '');
  assert.equal(post.headers.Authorization, 'Bearer acc1');
  assert.equal(post.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(post.body), { user: 'bob' });
  // By id, and a block of one blocked already is no error.
  assert.deepEqual(await api.block('12'), { userId: '12', userName: 'd.e-f_g' });
  assert.deepEqual(JSON.parse(blockCalls(cl)[1].body), { user: '12' });
  assert.deepEqual(await api.block(' 8 '), { userId: '8', userName: 'bob' });
  assert.deepEqual(JSON.parse(blockCalls(cl)[2].body), { user: '8' });

  // The list, as the route sorts it (ids as strings even when numbers).
  assert.deepEqual(await api.blocks(), [{ userId: '8', userName: 'bob' }, { userId: '12', userName: 'd.e-f_g' }]);
  const get = blockCalls(cl)[3];
  assert.equal(get.method, 'GET');
  assert.equal(get.path, '/blocks');
  assert.equal(get.headers.Authorization, 'Bearer acc1');
  assert.equal(get.body, undefined);
  api._fetch = async () => new Response(JSON.stringify({ code: 9000, message: '', data: { users: [{ userId: 21, userName: 'zed' }, { userId: '3' }] } }), { status: 200 });
  assert.deepEqual(await api.blocks(), [{ userId: '21', userName: 'zed' }, { userId: '3', userName: '' }]);
  api._fetch = async () => new Response(JSON.stringify({ code: 9000, message: '', data: null }), { status: 200 });
  assert.deepEqual(await api.blocks(), []);
  api._fetch = cl.fetch;

  // Unblock: DELETE /blocks/<user, escaped>; not blocked is no error.
  assert.deepEqual(await api.unblock('d.e-f_g'), { userId: '12', userName: 'd.e-f_g' });
  const del = blockCalls(cl).at(-1);
  assert.equal(del.method, 'DELETE');
  assert.equal(del.path, '/blocks/d.e-f_g');
  assert.equal(del.headers.Authorization, 'Bearer acc1');
  assert.equal(del.body, undefined);
  assert.deepEqual(await api.unblock('8'), { userId: '8', userName: 'bob' });
  assert.equal(blockCalls(cl).at(-1).path, '/blocks/8');
  assert.deepEqual(await api.unblock('8'), { userId: '8', userName: 'bob' });
  assert.deepEqual(await api.blocks(), []);
  // A name that needs escaping is one path segment.
  await assert.rejects(api.unblock('a/b c?d'), (e) => e instanceof ApiError && e.code === Codes.BadAccount);
  assert.equal(blockCalls(cl).at(-1).path, '/blocks/a%2Fb%20c%3Fd');
  assert.equal(blockCalls(cl).at(-1).search, '');
});

test('Api.block and unblock: refusals are ApiErrors with the route\'s code; no user is refused at once', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  await assert.rejects(api.block('nobody'), (e) => e instanceof ApiError && e.code === Codes.BadAccount && e.httpStatus === 404);
  await assert.rejects(api.unblock('nobody'), (e) => e instanceof ApiError && e.code === Codes.BadAccount);
  await assert.rejects(api.block('ann'), (e) => e instanceof ApiError && e.code === Codes.BadArgument && e.httpStatus === 400);
  await assert.rejects(api.block('7'), (e) => e instanceof ApiError && e.code === Codes.BadArgument);
  cl.blockLimit = 1;
  await api.block('bob');
  await assert.rejects(api.block('carol'), (e) => e instanceof ApiError && e.code === Codes.QuotaExceeded && e.httpStatus === 429);
  assert.deepEqual(await api.block('bob'), { userId: '8', userName: 'bob' }, 'blocked already: no quota needed');
  assert.deepEqual(await api.blocks(), [{ userId: '8', userName: 'bob' }]);
  const made = blockCalls(cl).length;
  for (const none of ['', '  ', null, undefined]) {
    await assert.rejects(api.block(none), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
    await assert.rejects(api.unblock(none), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
  }
  assert.equal(blockCalls(cl).length, made, 'no call without a user');
  // Without a login: the route refuses the missing bearer.
  const anon = new Api('http://route', { fetch: cl.fetch });
  await assert.rejects(anon.blocks(), (e) => e instanceof ApiError && e.code === Codes.Unauthorized && e.httpStatus === 401);
  assert.equal(blockCalls(cl).at(-1).headers.Authorization, undefined);
});

test('Client.block, unblock and blocks go through its Api with the session\'s bearer', async (t) => {
  const cl = new Cluster();
  const idle = newClient(cl);
  assert.throws(() => idle.blocks(), (e) => e instanceof ClientError && e.reason === ClientError.NOT_LOGGED_IN);
  assert.throws(() => idle.block('bob'), (e) => e instanceof ClientError && e.reason === ClientError.NOT_LOGGED_IN);
  assert.throws(() => idle.unblock('bob'), (e) => e instanceof ClientError && e.reason === ClientError.NOT_LOGGED_IN);
  assert.equal(blockCalls(cl).length, 0);

  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  assert.deepEqual(await c.block('carol'), { userId: '9', userName: 'carol' });
  assert.deepEqual(await c.blocks(), [{ userId: '9', userName: 'carol' }]);
  assert.deepEqual(await c.unblock('9'), { userId: '9', userName: 'carol' });
  assert.deepEqual(await c.blocks(), []);
  const calls = blockCalls(cl);
  assert.deepEqual(calls.map((x) => `${x.method} ${x.path}`), ['POST /blocks', 'GET /blocks', 'DELETE /blocks/9', 'GET /blocks']);
  for (const x of calls) assert.equal(x.headers.Authorization, `Bearer ${c.api.accessToken}`);
  await assert.rejects(c.block('me-nobody'), (e) => e instanceof ApiError && e.code === Codes.BadAccount);
  assert.equal(c.state, 'online');
  await c.close();
});

test('a message to a user one blocked: ERROR 4030 makes it failed, with the route\'s text, as an error event', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const text = 'you blocked this user: unblock them to write to them';
  const id = c.send('8', 'hi bob');
  ws.push({ type: 'ERROR', error: { code: Codes.Forbidden, text, clientMsgId: id } });
  const st = c.status(id);
  assert.equal(st.status, 'failed');
  assert.ok(st.error instanceof GatewayError);
  assert.equal(st.error.code, Codes.Forbidden);
  assert.equal(st.error.text, text);
  const errs = c.of('error');
  assert.equal(errs.length, 1);
  assert.equal(errs[0].clientMsgId, id);
  assert.equal(errs[0].text, text);
  assert.equal(c.of('status').at(-1).status, 'failed');
  assert.equal(c.of('retrying').length, 0);
  // Final: not written again on the next link.
  ws.drop();
  const ws2 = await cl.accept();
  assert.equal(ws2.of('MSG').length, 0);
  await c.close();
});

// ------------------------------------------------------------ mutes

// muteCalls are the /mutes calls made so far.
function muteCalls(cl) {
  return cl.calls.filter((x) => x.path === '/mutes');
}

// A message from bob (or as extra says) as 'message' events give it.
function muteMsg(extra = {}) {
  return { msgId: 'm1', from: '8', fromName: 'bob', to: '7', group: '', broadcast: false, mentions: [], mentionsMe: false, outgoing: false, ...extra };
}

test('Api.muteUser, muteGroup, unmuteUser, unmuteGroup and mutes: /mutes with the bearer, the answers parsed', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');

  // Until unmuted: no forSeconds.
  assert.deepEqual(await api.muteUser('bob'), { userId: '8', userName: 'bob', group: '', untilMs: 0 });
  const post = muteCalls(cl)[0];
  assert.equal(post.method, 'POST');
  assert.equal(post.path, '/mutes');
  assert.equal(post.search, '');
  assert.equal(post.headers.Authorization, 'Bearer acc1');
  assert.equal(post.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(post.body), { user: 'bob' });
  assert.deepEqual(JSON.parse(muteCalls(cl).at(-1).body), { user: 'bob' });
  await api.muteUser('bob', 0);
  assert.deepEqual(JSON.parse(muteCalls(cl).at(-1).body), { user: 'bob' }, '0: until unmuted');

  // For a while: whole seconds, rounded up; the end comes back in unix ms.
  const before = Date.now();
  const carol = await api.muteUser(' 9 ', 3600);
  assert.deepEqual(JSON.parse(muteCalls(cl).at(-1).body), { user: '9', forSeconds: 3600 });
  assert.equal(carol.userId, '9');
  assert.equal(carol.userName, 'carol');
  assert.equal(carol.group, '');
  assert.ok(carol.untilMs >= before + 3600_000 && carol.untilMs <= Date.now() + 3600_000, `untilMs ${carol.untilMs}`);
  await api.muteUser('d.e-f_g', 0.2);
  assert.deepEqual(JSON.parse(muteCalls(cl).at(-1).body), { user: 'd.e-f_g', forSeconds: 1 }, 'a fraction of a second is not 0');

  // A group, by id (a number too).
  const g = await api.muteGroup('5', 60);
  assert.deepEqual(JSON.parse(muteCalls(cl).at(-1).body), { group: '5', forSeconds: 60 });
  assert.equal(muteCalls(cl).at(-1).headers.Authorization, 'Bearer acc1');
  assert.deepEqual({ ...g, untilMs: g.untilMs > 0 }, { userId: '', userName: '', group: '5', untilMs: true });
  assert.deepEqual(await api.muteGroup(5), { userId: '', userName: '', group: '5', untilMs: 0 });
  assert.deepEqual(JSON.parse(muteCalls(cl).at(-1).body), { group: '5' });

  // The list, as the route orders it: users by id, then groups.
  const list = await api.mutes();
  const get = muteCalls(cl).at(-1);
  assert.equal(get.method, 'GET');
  assert.equal(get.search, '');
  assert.equal(get.headers.Authorization, 'Bearer acc1');
  assert.equal(get.body, undefined);
  assert.deepEqual(list.map((m) => m.userId || `g${m.group}`), ['8', '9', '12', 'g5']);
  assert.deepEqual(list[0], { userId: '8', userName: 'bob', group: '', untilMs: 0 });
  assert.deepEqual(list[1], carol);
  assert.deepEqual(list[3], { userId: '', userName: '', group: '5', untilMs: 0 });
  // Numbers as strings or numbers, fields left out: all four always there.
  api._fetch = async () => new Response(JSON.stringify({ code: 9000, message: '', data: { mutes: [{ userId: 21, userName: 'zed', untilMs: '1700000000000' }, { group: 30 }, { userId: '3' }] } }), { status: 200 });
  assert.deepEqual(await api.mutes(), [
    { userId: '21', userName: 'zed', group: '', untilMs: 1700000000000 },
    { userId: '', userName: '', group: '30', untilMs: 0 },
    { userId: '3', userName: '', group: '', untilMs: 0 },
  ]);
  api._fetch = async () => new Response(JSON.stringify({ code: 9000, message: '', data: null }), { status: 200 });
  assert.deepEqual(await api.mutes(), []);
  api._fetch = cl.fetch;

  // Unmute: DELETE /mutes?user= or ?group=, the conversation with untilMs 0;
  // not muted is no error.
  assert.deepEqual(await api.unmuteUser('9'), { userId: '9', userName: 'carol', group: '', untilMs: 0 });
  const del = muteCalls(cl).at(-1);
  assert.equal(del.method, 'DELETE');
  assert.equal(del.search, '?user=9');
  assert.equal(del.headers.Authorization, 'Bearer acc1');
  assert.equal(del.body, undefined);
  assert.deepEqual(await api.unmuteUser('9'), { userId: '9', userName: 'carol', group: '', untilMs: 0 });
  assert.deepEqual(await api.unmuteGroup('5'), { userId: '', userName: '', group: '5', untilMs: 0 });
  assert.equal(muteCalls(cl).at(-1).search, '?group=5');
  assert.deepEqual(await api.unmuteUser('d.e-f_g'), { userId: '12', userName: 'd.e-f_g', group: '', untilMs: 0 });
  assert.deepEqual((await api.mutes()).map((m) => m.userId), ['8']);
  // A name that needs escaping stays one parameter.
  await assert.rejects(api.unmuteUser('a&b c?d=e'), (e) => e instanceof ApiError && e.code === Codes.BadAccount);
  assert.equal(new URLSearchParams(muteCalls(cl).at(-1).search).get('user'), 'a&b c?d=e');
  assert.deepEqual([...new URLSearchParams(muteCalls(cl).at(-1).search).keys()], ['user']);
});

test('Api mutes: refusals are ApiErrors with the route\'s code; no user, no group or a bad duration is refused at once', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  await assert.rejects(api.muteUser('nobody'), (e) => e instanceof ApiError && e.code === Codes.BadAccount && e.httpStatus === 401);
  await assert.rejects(api.unmuteUser('nobody'), (e) => e instanceof ApiError && e.code === Codes.BadAccount);
  await assert.rejects(api.muteUser('ann'), (e) => e instanceof ApiError && e.code === Codes.BadArgument && e.httpStatus === 400);
  await assert.rejects(api.muteGroup('6'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && e.httpStatus === 403);
  await assert.rejects(api.muteGroup('99', 60), (e) => e instanceof ApiError && e.code === Codes.NoGroup && e.httpStatus === 404);
  await assert.rejects(api.unmuteGroup('99'), (e) => e instanceof ApiError && e.code === Codes.NoGroup);
  cl.muteLimit = 1;
  await api.muteUser('bob');
  await assert.rejects(api.muteUser('carol'), (e) => e instanceof ApiError && e.code === Codes.QuotaExceeded && e.httpStatus === 429);
  assert.deepEqual(await api.muteUser('bob', 60).then((m) => m.userId), '8', 'muted already: no quota needed');
  const made = muteCalls(cl).length;
  for (const none of ['', '  ', null, undefined]) {
    await assert.rejects(api.muteUser(none), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
    await assert.rejects(api.unmuteUser(none), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
    await assert.rejects(api.muteGroup(none), (e) => e instanceof ClientError && e.reason === ClientError.NO_GROUP);
    await assert.rejects(api.unmuteGroup(none), (e) => e instanceof ClientError && e.reason === ClientError.NO_GROUP);
  }
  for (const bad of [-1, -0.5, NaN, Infinity, '60', {}, true, 10n]) {
    await assert.rejects(api.muteUser('bob', bad), (e) => e instanceof ClientError && e.reason === 'bad-duration', `seconds ${typeof bad} ${String(bad)}`);
    await assert.rejects(api.muteGroup('5', bad), (e) => e instanceof ClientError && e.reason === 'bad-duration');
  }
  assert.equal(muteCalls(cl).length, made, 'nothing sent for a call refused at once');
  // Without a login: the route refuses the missing bearer.
  const anon = new Api('http://route', { fetch: cl.fetch });
  await assert.rejects(anon.mutes(), (e) => e instanceof ApiError && e.code === Codes.Unauthorized && e.httpStatus === 401);
  assert.equal(muteCalls(cl).at(-1).headers.Authorization, undefined);
});

test('the Client reads the muted conversations once after its first login and tells them as a mutes event', async (t) => {
  const cl = new Cluster();
  cl.muted.set('g:5', { group: '5', untilMs: 0 });
  cl.muted.set('u:8', { userId: '8', userName: 'bob', untilMs: 0 });
  const c = newClient(cl);
  t.after(() => c.close());
  assert.deepEqual(c.muteList, []);
  assert.equal(c.muted(muteMsg()), false, 'nothing known before the login');
  const p = c.start();
  await cl.accept();
  await p;
  await until(() => c.of('mutes').length === 1, 'the mutes event');
  const gets = muteCalls(cl);
  assert.equal(gets.length, 1);
  assert.equal(gets[0].method, 'GET');
  assert.equal(gets[0].headers.Authorization, 'Bearer acc1');
  const want = [{ userId: '8', userName: 'bob', group: '', untilMs: 0 }, { userId: '', userName: '', group: '5', untilMs: 0 }];
  assert.deepEqual(c.of('mutes')[0], { mutes: want });
  assert.deepEqual(c.muteList, want);
  assert.equal(c.muted(muteMsg()), true);
  assert.equal(c.muted(muteMsg({ group: '5', to: '' })), true);

  // Not again after a reconnect (the list is kept), nor is an unchanged
  // list told again.
  cl.ws.drop();
  await cl.accept();
  await until(() => c.state === 'online', 'online again');
  await sleep(20);
  assert.equal(muteCalls(cl).length, 1);
  assert.equal(c.muted(muteMsg()), true);
  assert.deepEqual(await c.mutes(), want);
  assert.equal(c.of('mutes').length, 1, 'the same list: no event');
  // Another device unmuted bob: the next mutes() learns it.
  cl.muted.delete('u:8');
  await c.mutes();
  assert.deepEqual(c.of('mutes').at(-1), { mutes: [want[1]] });
  assert.equal(c.muted(muteMsg()), false);
  await c.close();
});

test('the Client tells an empty list too; a first read that failed is made again after the next login', async (t) => {
  const cl = new Cluster();
  cl.mutesError = { status: 503, code: Codes.Unavailable, message: 'unavailable' };
  const c = newClient(cl);
  t.after(() => c.close());
  const p = c.start();
  await cl.accept();
  await p;
  await until(() => muteCalls(cl).length === 1, 'the first read');
  await sleep(20);
  assert.equal(c.of('mutes').length, 0, 'no list, no event');
  assert.equal(c.state, 'online', 'a failed read leaves the link alone');
  cl.ws.drop();
  await cl.accept();
  await until(() => c.of('mutes').length === 1, 'the list after the next login');
  assert.deepEqual(c.of('mutes')[0], { mutes: [] });
  assert.equal(muteCalls(cl).length, 2);
  assert.equal(muteCalls(cl)[1].headers.Authorization, 'Bearer acc2');
  cl.ws.drop();
  await cl.accept();
  await until(() => c.state === 'online', 'online again');
  await sleep(20);
  assert.equal(muteCalls(cl).length, 2, 'read: not again');
  await c.close();
});

test('Client.muteUser, muteGroup, unmuteUser and unmuteGroup: muted() knows at once, each change a mutes event', async (t) => {
  const cl = new Cluster();
  const idle = newClient(cl);
  for (const call of [() => idle.mutes(), () => idle.muteUser('bob'), () => idle.muteGroup('5'), () => idle.unmuteUser('bob'), () => idle.unmuteGroup('5')]) {
    assert.throws(call, (e) => e instanceof ClientError && e.reason === ClientError.NOT_LOGGED_IN);
  }
  assert.equal(muteCalls(cl).length, 0);

  const c = await started(cl);
  t.after(() => c.close());
  await until(() => c.of('mutes').length === 1, 'the first list');
  assert.deepEqual(c.of('mutes')[0], { mutes: [] });

  const bob = await c.muteUser('bob');
  assert.deepEqual(bob, { userId: '8', userName: 'bob', group: '', untilMs: 0 });
  assert.deepEqual(c.of('mutes').at(-1), { mutes: [bob] });
  assert.equal(c.muted(muteMsg()), true);
  assert.equal(c.muted(muteMsg({ from: '9', fromName: 'carol' })), false);
  const g = await c.muteGroup('5', 3600);
  assert.equal(g.group, '5');
  assert.ok(g.untilMs > Date.now());
  assert.deepEqual(c.of('mutes').at(-1), { mutes: [bob, g] });
  assert.deepEqual(c.muteList, [bob, g]);
  assert.equal(c.muted(muteMsg({ group: '5', to: '', from: '9' })), true);
  assert.equal(c.muted(muteMsg({ group: '4', to: '', from: '8' })), false, 'bob in another group: the group is not muted');
  // Muting again replaces the end.
  const bob2 = await c.muteUser('8', 60);
  assert.ok(bob2.untilMs > 0);
  assert.deepEqual(c.of('mutes').at(-1), { mutes: [bob2, g] });

  // A refusal changes nothing.
  const n = c.of('mutes').length;
  await assert.rejects(c.muteUser('ann'), (e) => e instanceof ApiError && e.code === Codes.BadArgument);
  await assert.rejects(c.muteGroup('6'), (e) => e instanceof ApiError && e.code === Codes.Forbidden);
  await assert.rejects(c.muteUser('bob', -5), (e) => e instanceof ClientError && e.reason === 'bad-duration');
  assert.equal(c.of('mutes').length, n);
  assert.deepEqual(c.muteList, [bob2, g]);

  assert.deepEqual(await c.unmuteUser('bob'), { userId: '8', userName: 'bob', group: '', untilMs: 0 });
  assert.deepEqual(c.of('mutes').at(-1), { mutes: [g] });
  assert.equal(c.muted(muteMsg()), false);
  assert.deepEqual(await c.unmuteGroup(5), { userId: '', userName: '', group: '5', untilMs: 0 });
  assert.deepEqual(c.of('mutes').at(-1), { mutes: [] });
  assert.equal(c.muted(muteMsg({ group: '5', to: '' })), false);
  // Unmuting what is not muted: no change, no event.
  await c.unmuteGroup('5');
  assert.equal(c.of('mutes').length, n + 2);
  assert.deepEqual(muteCalls(cl).map((x) => `${x.method} ${x.search}`), ['GET ', 'POST ', 'POST ', 'POST ', 'POST ', 'POST ', 'DELETE ?user=bob', 'DELETE ?group=5', 'DELETE ?group=5']);
  for (const x of muteCalls(cl)) assert.equal(x.headers.Authorization, `Bearer ${c.api.accessToken}`);
  assert.equal(c.state, 'online');
  await c.close();
});

test('muted(): the conversation of a message per the list, not when it mentions the user, not after the mute ended', async (t) => {
  const cl = new Cluster();
  const soon = Date.now() + 300;
  cl.muted.set('u:8', { userId: '8', userName: 'bob', untilMs: 0 });
  cl.muted.set('u:9', { userId: '9', userName: 'carol', untilMs: soon });
  cl.muted.set('g:5', { group: '5', untilMs: 0 });
  cl.muted.set('u:12', { userId: '12', userName: 'd.e-f_g', untilMs: Date.now() - 1 }); // ended: the route leaves it out
  const c = await started(cl);
  t.after(() => c.close());
  await until(() => c.of('mutes').length === 1, 'the list');
  assert.deepEqual(c.of('mutes')[0].mutes.map((m) => m.userId || `g${m.group}`), ['8', '9', 'g5']);

  // Private: the other party, from (or to for the user's own copy).
  assert.equal(c.muted(muteMsg()), true, 'from bob');
  assert.equal(c.muted(muteMsg({ from: '9', fromName: 'carol' })), true, 'from carol, until soon');
  assert.equal(c.muted(muteMsg({ from: '12' })), false, 'ended');
  assert.equal(c.muted(muteMsg({ from: '7', to: '8', outgoing: true })), true, "the user's own to bob, from another device");
  assert.equal(c.muted(muteMsg({ from: '7', to: '12', outgoing: true })), false);
  assert.equal(c.muted(muteMsg({ from: 'Bob' })), true, 'a peer by name, any case');
  assert.equal(c.muted(muteMsg({ from: '0', fromName: 'system' })), false);
  // Groups: the group, whoever sent it; a mention of the user is never muted.
  assert.equal(c.muted(muteMsg({ group: '5', to: '', from: '12' })), true);
  assert.equal(c.muted(muteMsg({ group: '5', to: '', mentions: ['9'], mentionsMe: false })), true, 'mentions somebody else');
  assert.equal(c.muted(muteMsg({ group: '5', to: '', mentions: ['9', '7'], mentionsMe: true })), false, 'mentions the user');
  assert.equal(c.muted({ group: '5', from: '8', mentions: ['7'] }), false, 'mentions the user (the ids alone)');
  assert.equal(c.muted(muteMsg({ group: '6', to: '' })), false);
  // A broadcast belongs to no conversation.
  assert.equal(c.muted(muteMsg({ broadcast: true, to: '' })), false);
  assert.equal(c.muted(null), false);

  // A live message and a reaction, as the events give them.
  cl.ws.push(syncAnswer(0, 0, 0));
  cl.ws.push(msg(1, 'hi', { msgId: 'x1' }));
  cl.ws.push(msg(2, 'lunch @ann?', { msgId: 'x2', group: '5', to: '', mentions: ['7'] }));
  cl.ws.push(msg(3, 'lunch?', { msgId: 'x3', group: '5', to: '' }));
  const [hi, lunch, plain] = c.of('message');
  assert.equal(c.muted(hi), true);
  assert.equal(lunch.mentionsMe, true);
  assert.equal(c.muted(lunch), false);
  assert.equal(c.muted(plain), true);

  // carol's mute ends: muted() says so at once, and the list drops it (a
  // mutes event) when it does.
  await until(() => Date.now() > soon, 'the end of the mute');
  assert.equal(c.muted(muteMsg({ from: '9' })), false);
  await until(() => c.of('mutes').length === 2, 'the mutes event of the end');
  assert.deepEqual(c.of('mutes')[1].mutes.map((m) => m.userId || `g${m.group}`), ['8', 'g5']);
  assert.deepEqual(c.muteList.map((m) => m.userId || `g${m.group}`), ['8', 'g5']);
  await c.close();
});

test('a read of the list asked before one of the client\'s own changes was answered does not undo it; the read asked last wins', async (t) => {
  const cl = new Cluster();
  const c = await started(cl);
  t.after(() => c.close());
  await until(() => c.of('mutes').length === 1, 'the first list');

  // A read under way (its answer taken before the mute), then a mute.
  let open;
  cl.mutesGate = new Promise((r) => (open = r));
  const read = c.mutes();
  await until(() => muteCalls(cl).length === 2, 'the read asked');
  const bob = await c.muteUser('bob');
  assert.equal(c.muted(muteMsg()), true);
  open();
  assert.deepEqual(await read, [], 'the answer as the route gave it');
  assert.equal(c.muted(muteMsg()), true, 'the mute stays');
  assert.deepEqual(c.muteList, [bob]);

  // The same for an unmute.
  cl.mutesGate = new Promise((r) => (open = r));
  const read2 = c.mutes();
  await until(() => muteCalls(cl).length === 4, 'the read asked');
  await c.unmuteUser('8');
  open();
  assert.deepEqual(await read2, [bob]);
  assert.equal(c.muted(muteMsg()), false, 'the unmute stays');
  assert.deepEqual(c.muteList, []);

  // Two reads: the one asked first answers last and is dropped.
  cl.muted.set('u:9', { userId: '9', userName: 'carol', untilMs: 0 });
  cl.mutesGate = new Promise((r) => (open = r));
  const older = c.mutes();
  await until(() => muteCalls(cl).length === 6, 'the older read asked');
  cl.muted.delete('u:9'); // another device unmuted carol meanwhile
  assert.deepEqual(await c.mutes(), []);
  open();
  assert.equal((await older).length, 1);
  assert.equal(c.muted(muteMsg({ from: '9' })), false, 'the newer read stands');
  // A later own change is not undone by a read asked even later either.
  await c.muteUser('carol');
  await c.mutes();
  assert.equal(c.muted(muteMsg({ from: '9' })), true);
  await c.close();
});

// ------------------------------------------------------------ replies

// Route msgIds: 32 lowercase hex digits.
const R1 = '0190a1b2c3d4e5f60718293a4b5c6d7e';
const R2 = '0190a1b2c3d4e5f60718293a4b5c6d7f';

const ownerCalls = (cl) => cl.calls.filter((x) => x.path.startsWith('/groups/'));

test('Api.transferGroup: POST /groups/:gid/owner with the bearer and the user, by id or name; the group answered', async () => {
  const cl = new Cluster();
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');

  // Naming herself, the owner: nothing changes.
  assert.deepEqual(await api.transferGroup('5', 'ann'), { groupId: '5', name: 'crew', owner: '7', open: false, members: 3 });
  // To bob, by name: he owns it now.
  assert.deepEqual(await api.transferGroup('5', 'bob'), { groupId: '5', name: 'crew', owner: '8', open: false, members: 3 });
  const post = ownerCalls(cl)[1];
  assert.equal(post.method, 'POST');
  assert.equal(post.path, '/groups/5/owner');
  assert.equal(post.search, '');
  assert.equal(post.headers.Authorization, 'Bearer acc1');
  assert.equal(post.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(post.body), { userId: 'bob' });
  assert.equal((await api.group('5')).owner, '8', 'the route has the new owner');

  // Not hers any more: refused, with the route's code and text.
  await assert.rejects(api.transferGroup(5, '9'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && e.httpStatus === 403 && e.detail === 'forbidden: only the owner of group 5 may do this');
  assert.equal(ownerCalls(cl).at(-1).path, '/groups/5/owner', 'a number is a group id too');
  assert.deepEqual(JSON.parse(ownerCalls(cl).at(-1).body), { userId: '9' }, 'by id');
  assert.equal(cl.groups.get('5').owner, '8');
  // A user not in the group; an unknown user; an unknown group.
  cl.groups.get('5').owner = '7';
  await assert.rejects(api.transferGroup('5', 'd.e-f_g'), (e) => e instanceof ApiError && e.code === Codes.Forbidden && /d\.e-f_g is not a member of group 5/.test(e.detail));
  await assert.rejects(api.transferGroup('5', 'nobody'), (e) => e instanceof ApiError && e.code === Codes.BadAccount && e.httpStatus === 401);
  await assert.rejects(api.transferGroup('99', 'bob'), (e) => e instanceof ApiError && e.code === Codes.NoGroup && e.httpStatus === 404);
  assert.equal(cl.groups.get('5').owner, '7', 'no refusal changed the owner');
  // A group id that needs escaping is one path segment.
  await assert.rejects(api.transferGroup('a/b', 'bob'), (e) => e instanceof ApiError && e.code === Codes.NoGroup);
  assert.equal(ownerCalls(cl).at(-1).path, '/groups/a%2Fb/owner');

  // No group or no user: refused at once, nothing sent.
  const made = ownerCalls(cl).length;
  for (const none of ['', null, undefined]) {
    await assert.rejects(api.transferGroup(none, 'bob'), (e) => e instanceof ClientError && e.reason === ClientError.NO_GROUP);
  }
  for (const none of ['', '  ', null, undefined]) {
    await assert.rejects(api.transferGroup('5', none), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
  }
  assert.equal(ownerCalls(cl).length, made, 'no call without a group or a user');
});

test('Client.transferGroup goes through its Api with the session\'s bearer', async (t) => {
  const cl = new Cluster();
  const idle = newClient(cl);
  assert.throws(() => idle.transferGroup('5', 'bob'), (e) => e instanceof ClientError && e.reason === ClientError.NOT_LOGGED_IN);
  assert.equal(ownerCalls(cl).length, 0);

  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  assert.equal((await c.group('5')).owner, '7');
  assert.deepEqual(await c.transferGroup('5', 'carol'), { groupId: '5', name: 'crew', owner: '9', open: false, members: 3 });
  assert.equal((await c.group('5')).owner, '9');
  await assert.rejects(c.transferGroup('5', 'bob'), (e) => e instanceof ApiError && e.code === Codes.Forbidden);
  const calls = ownerCalls(cl);
  assert.deepEqual(calls.map((x) => `${x.method} ${x.path}`), ['GET /groups/5', 'POST /groups/5/owner', 'GET /groups/5', 'POST /groups/5/owner']);
  for (const x of calls) assert.equal(x.headers.Authorization, `Bearer ${c.api.accessToken}`);
  assert.deepEqual(JSON.parse(calls[1].body), { userId: 'carol' });
  assert.equal(c.state, 'online');
  await c.close();
});

test('a reply goes as a MSG with replyTo, to a user or a group, and comes back decoded; kept and resent like any send', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const a = c.send('bob', 'yes', { replyTo: R1 });
  const b = c.sendGroup('5', 'me too', { replyTo: R2 });
  const plain = c.send('bob', 'no reply', {});
  const f = await c.sendFile('bob', new Blob(['xy']), { name: 'a.txt', contentType: 'text/plain', replyTo: R1 });
  const ups = ws.of('MSG').map((x) => x.msg);
  assert.deepEqual(ups[0], { clientMsgId: a, to: 'bob', body: bytesToBase64(utf8Encode('yes')), replyTo: R1 });
  assert.deepEqual(ups[1], { clientMsgId: b, group: '5', body: bytesToBase64(utf8Encode('me too')), replyTo: R2 });
  assert.deepEqual(ups[2], { clientMsgId: plain, to: 'bob', body: bytesToBase64(utf8Encode('no reply')) }); // none: omitted, as protojson does
  assert.equal(ups[3].clientMsgId, f);
  assert.equal(ups[3].kind, 'KIND_FILE');
  assert.equal(ups[3].replyTo, R1);

  // Statuses name it.
  assert.equal(c.status(a).replyTo, R1);
  assert.equal(c.status(b).replyTo, R2);
  assert.equal(c.status(plain).replyTo, '');
  assert.deepEqual(c.of('status').filter((s) => s.clientMsgId === a).map((s) => [s.status, s.replyTo]), [['pending', R1]]);

  // The route relays the frame as written (plus its own fields): the
  // recipient's client decodes replyTo onto the Message.
  ws.push({ type: 'MSG', msg: { ...ups[0], msgId: 'm1', seq: '1', from: '8', fromName: 'bob', to: '7', timestampMs: '1001' } });
  ws.push(msg(2, 'plain'));
  assert.deepEqual(c.of('message').map((m) => [m.msgId, m.text, m.op, m.replyTo]), [
    ['m1', 'yes', '', R1],
    ['m2', 'plain', '', ''],
  ]);

  // Unanswered ones are written again, unchanged, on a new link.
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: b } });
  assert.equal(c.statusByMsgId('X1').replyTo, R2);
  ws.drop();
  const ws2 = await cl.accept();
  await until(() => ws2.of('MSG').length === 3, 'the replay');
  assert.deepEqual(ws2.of('MSG').map((x) => x.msg), [ups[0], ups[2], ups[3]]);
  await c.close();
});

test('a malformed replyTo, or one on a broadcast, a recall or an edit, is refused at once', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const badReply = (e) => e instanceof ClientError && e.reason === 'bad-reply';
  for (const bad of ['M1', R1.toUpperCase(), `${R1}0`, R1.slice(1), `${R1.slice(0, 31)}g`, 12345, {}, true]) {
    assert.throws(() => c.send('bob', 'x', { replyTo: bad }), badReply, `replyTo ${JSON.stringify(bad)}`);
  }
  assert.throws(() => c.sendGroup('5', 'x', { replyTo: 'nope' }), badReply);
  assert.throws(() => c.sendMsg({ broadcast: true, text: 'x', replyTo: R1 }), badReply);
  assert.throws(() => c.sendMsg({ to: 'bob', op: 'edit', refMsgId: R2, text: 'x', replyTo: R1 }), badReply);
  assert.throws(() => c.sendMsg({ to: 'bob', op: 'recall', refMsgId: R2, replyTo: R1 }), badReply);
  await assert.rejects(c.sendFile('bob', new Blob(['xy']), { name: 'a.txt', replyTo: 'M1' }), badReply);
  await assert.rejects(c.sendGroupFile('5', new Blob(['xy']), { name: 'a.txt', replyTo: 'M1' }), badReply);
  assert.equal(ws.of('MSG').length, 0, 'nothing written');
  assert.equal(c.pending, 0, 'nothing kept');
  // '' and null are none.
  c.send('bob', 'x', { replyTo: '' });
  c.send('bob', 'y', { replyTo: null });
  assert.deepEqual(ws.of('MSG').map((f) => f.msg.replyTo), [undefined, undefined]);
  await c.close();
});

test('replyTo counts in the size of the frame', async () => {
  const cl = new Cluster();
  const c = await started(cl, { maxFrame: 120 });
  // The shortest text whose reply does not fit: without replyTo it does.
  let n = 0;
  for (;;) {
    try {
      c.send('bob', 'x'.repeat(n), { replyTo: R1 });
    } catch (e) {
      assert.match(e.message, /frame limit/);
      break;
    }
    n++;
  }
  assert.ok(n > 0 && n < 120, `${n}`);
  c.send('bob', 'x'.repeat(n));
  await c.close();
});

test('a reply that waits survives a reload with its replyTo', async () => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c1 = await started(cl, { storage });
  cl.ws.drop();
  await until(() => c1.state === 'reconnecting', 'reconnecting');
  const id = c1.send('bob', 'later', { replyTo: R1 });
  c1._saveNow();
  const saved = JSON.parse(storage.getItem(c1._stateKey));
  assert.equal(saved.outbox.length, 1);
  assert.equal(saved.outbox[0].replyTo, R1);
  c1._closing = true;
  c1._life.abort();

  const c2 = newClient(cl, { storage });
  const p = c2.start();
  const ws2 = await cl.accept();
  await p;
  await until(() => ws2.of('MSG').length === 1, 'the replay');
  assert.deepEqual(ws2.of('MSG')[0].msg, { clientMsgId: id, to: 'bob', body: bytesToBase64(utf8Encode('later')), replyTo: R1 });
  assert.equal(c2.status(id).replyTo, R1);
  // Answered, it is remembered with it (the sent list) for the next reload.
  ws2.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X9', clientMsgId: id } });
  c2._saveNow();
  assert.equal(JSON.parse(storage.getItem(c2._stateKey)).sent.find((r) => r.clientMsgId === id).replyTo, R1);
  c2._closing = true;
  c2._life.abort();
  const c3 = newClient(cl, { storage });
  const p3 = c3.start();
  await cl.accept();
  await p3;
  assert.equal(c3.statusByMsgId('X9').replyTo, R1);
  await c3.close();
});

test('history entries carry replyTo', async () => {
  const cl = new Cluster();
  cl.historyAnswer = {
    messages: [
      { msgId: 'h3', seq: 7, from: '7', fromName: 'ann', to: '8', kind: 0, body: 'good', file: null, timestampMs: 7, replyTo: R2 },
      { msgId: 'h2', seq: 6, from: '8', fromName: 'bob', to: '7', kind: 0, body: 'yes', file: null, timestampMs: 6, op: 'edited', replyTo: R1 },
      { msgId: 'h1', seq: 5, from: '8', fromName: 'bob', to: '7', kind: 0, body: 'are you there?', file: null, timestampMs: 5 },
    ],
    next: '',
  };
  const c = await started(cl);
  const page = await c.history({ peer: 'bob' });
  assert.deepEqual(page.messages.map((m) => [m.msgId, m.op, m.text, m.replyTo]), [
    ['h3', '', 'good', R2],
    ['h2', 'edited', 'yes', R1],
    ['h1', '', 'are you there?', ''],
  ]);
  await c.close();
});

// ------------------------------------------------------------ reactions

const HEART = '\u2764\uFE0F'; // ❤️, two code points
const badReaction = (e) => e instanceof ClientError && e.reason === 'bad-reaction';

test('a reaction goes as a MSG with op MSG_OP_REACT, refMsgId and the emoji, to a user or a group; kept and resent like an edit', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const a = c.react('bob', R1, '👍');
  const b = c.reactInGroup(5, R2, HEART);
  const back = c.react('8', R1, '');
  const ups = ws.of('MSG').map((f) => f.msg);
  assert.equal(ups.length, 3);
  assert.deepEqual(ups[0], { clientMsgId: a, to: 'bob', op: 'MSG_OP_REACT', refMsgId: R1, body: bytesToBase64(utf8Encode('👍')) }); // no kind: text
  assert.deepEqual(ups[1], { clientMsgId: b, group: '5', op: 'MSG_OP_REACT', refMsgId: R2, body: bytesToBase64(utf8Encode(HEART)) });
  assert.deepEqual(ups[2], { clientMsgId: back, to: '8', op: 'MSG_OP_REACT', refMsgId: R1 }); // taken back: no body
  assert.equal(new Set([a, b, back]).size, 3);

  // Statuses name it: op 'react', the emoji as text.
  const st = c.status(a);
  assert.deepEqual([st.status, st.op, st.refMsgId, st.text, st.to, st.replyTo], ['pending', 'react', R1, '👍', 'bob', '']);
  assert.deepEqual(c.of('status').filter((s) => s.clientMsgId === b).map((s) => [s.status, s.op, s.refMsgId, s.group, s.text]), [['pending', 'react', R2, '5', HEART]]);
  assert.equal(c.status(back).text, '');
  assert.equal(c.pending, 3);

  // RECEIPT_SENT answers it as any message; a refusal is final.
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: a } });
  assert.equal(c.status(a).status, 'sent');
  assert.equal(c.statusByMsgId('X1').op, 'react');
  ws.push({ type: 'ERROR', error: { code: Codes.BadArgument, text: `message ${R2} has 20 different reactions already`, clientMsgId: b } });
  assert.equal(c.status(b).status, 'failed');
  assert.equal(c.of('error').at(-1).clientMsgId, b);
  assert.equal(c.of('error').at(-1).code, Codes.BadArgument);

  // The one unanswered is written again, unchanged, on a new link.
  ws.drop();
  const ws2 = await cl.accept();
  await until(() => ws2.of('MSG').length === 1, 'the replay');
  assert.deepEqual(ws2.of('MSG')[0].msg, ups[2]);
  await c.close();
});

test('a malformed reaction is refused at once: ClientError bad-reaction, nothing written or kept', async () => {
  const cl = new Cluster();
  const c = await started(cl);
  const ws = cl.ws;
  const bad = [
    'a b', ' ', '👍\n', '\t', '\u00a0', '\u3000', '\u2028', '\u0085', 'x\u0000', '\u007f', '\u001b[31m', // whitespace, control characters
    'x'.repeat(33), '😀'.repeat(9), // more than 32 bytes
    '\ud83d', '\ude00x', // no UTF-8 form
    undefined, null, 5, {}, ['👍'], // not a string
  ];
  for (const emoji of bad) {
    assert.throws(() => c.react('bob', R1, emoji), badReaction, `emoji ${JSON.stringify(emoji)}`);
  }
  for (const ref of ['M1', R1.toUpperCase(), `${R1}0`, R1.slice(1), `${R1.slice(0, 31)}g`, 12345]) {
    assert.throws(() => c.react('bob', ref, '👍'), badReaction, `msgId ${JSON.stringify(ref)}`);
  }
  assert.throws(() => c.reactInGroup('5', 'nope', '👍'), badReaction);
  assert.throws(() => c.sendMsg({ to: 'bob', op: 'react', refMsgId: R1 }), badReaction); // no emoji: '' is how to take it back
  assert.throws(() => c.react('bob', '', '👍'), (e) => e instanceof ClientError && e.reason === ClientError.NO_MESSAGE);
  assert.throws(() => c.react('', R1, '👍'), (e) => e instanceof ClientError && e.reason === ClientError.NO_RECIPIENT);
  assert.throws(() => c.reactInGroup('', R1, '👍'), (e) => e instanceof ClientError && e.reason === ClientError.NO_GROUP);
  assert.throws(() => c.sendMsg({ broadcast: true, op: 'react', refMsgId: R1, text: '👍' }), (e) => e instanceof ClientError && e.reason === 'bad-op');
  assert.throws(() => c.sendMsg({ to: 'bob', op: 'react', refMsgId: R1, text: '👍', replyTo: R2 }), (e) => e instanceof ClientError && e.reason === 'bad-reply');
  assert.equal(ws.of('MSG').length, 0, 'nothing written');
  assert.equal(c.pending, 0, 'nothing kept');

  // What the route takes: up to 32 bytes of UTF-8 without whitespace or
  // control characters, sequences joined by U+200D and modifiers included.
  const good = ['😀'.repeat(8), '👩\u200d👩\u200d👧', '👍🏽', '🇫🇷', HEART, 'x', '+1'];
  for (const emoji of good) c.react('bob', R1, emoji);
  assert.deepEqual(ws.of('MSG').map((f) => utf8Decode(base64ToBytes(f.msg.body))), good);
  await c.close();
});

test('an incoming reaction is a reaction event, never a message: in seq order, acknowledged, never marked read', async () => {
  const cl = new Cluster();
  const c = await started(cl, { ackDelayMs: 10 });
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  ws.push(msg(1, 'hello'));
  // The reaction (seq 3) passes a message (seq 2) on the way: held back.
  ws.push(msg(3, '👍', { op: 'MSG_OP_REACT', refMsgId: R1 }));
  assert.equal(c.of('reaction').length, 0);
  ws.push(msg(2, 'hello again'));
  assert.deepEqual(c.of('reaction'), [{ from: '8', fromName: 'bob', to: '7', group: '', msgId: R1, emoji: '👍', reactionId: 'm3', timestampMs: 1003, self: false }]);
  // Taken back (the op as a number, as protojson may write it): emoji ''.
  ws.push(msg(4, '', { op: 3, refMsgId: R1 }));
  // In a large group's timeline.
  ws.push({ type: 'MSG', msg: { msgId: 'g1', from: '9', fromName: 'carol', group: '5', groupSeq: '1', op: 'MSG_OP_REACT', refMsgId: R2, body: bytesToBase64(utf8Encode(HEART)), timestampMs: '9' } });
  // The same reaction again under a new seq: not shown again.
  ws.push(msg(5, '👍', { msgId: 'm3', op: 'MSG_OP_REACT', refMsgId: R1 }));
  assert.deepEqual(c.of('reaction').slice(1).map((r) => [r.reactionId, r.from, r.to, r.group, r.msgId, r.emoji, r.self]), [
    ['m4', '8', '7', '', R1, '', false],
    ['g1', '9', '', '5', R2, HEART, false],
  ]);
  assert.deepEqual(c.of('message').map((m) => m.msgId), ['m1', 'm2'], 'reactions are no messages');
  assert.equal(c.lastSeq, 5);
  await until(() => ws.of('ACK').some((f) => f.ack.seq === '5'), 'the ACK covering them');
  await until(() => ws.of('ACK').some((f) => f.ack.groups), 'the group ACK');

  // markRead never names a reaction, by id or otherwise.
  assert.equal(c.markRead(['m3', 'm4', 'g1']), 0);
  assert.equal(c.markRead({ msgId: 'm4', seq: 4, from: '8', group: '' }), 0);
  assert.equal(c.markRead(c.of('message')), 2);
  await until(() => ws.of('READ').length > 0, 'the READ');
  assert.deepEqual(ws.of('READ').map((f) => f.read.msgIds), [['m1', 'm2']]);
  await c.close();
});

test('the copy of a reaction made on another device is a reaction event with self; the copy of this client\'s own is not shown', async () => {
  const cl = new Cluster();
  const c = await started(cl, { ackDelayMs: 10 });
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const id = c.react('8', R1, '👍');
  ws.push(msg(1, '👍', { from: '7', fromName: 'ann', to: '8', clientMsgId: id, op: 'MSG_OP_REACT', refMsgId: R1 }));
  ws.push(msg(2, HEART, { from: '7', fromName: 'ann', to: '8', clientMsgId: '0123456789abcdef-1', op: 'MSG_OP_REACT', refMsgId: R2 }));
  ws.push(msg(3, '😂', { from: '7', fromName: 'ann', to: '', group: '5', clientMsgId: '0123456789abcdef-2', op: 'MSG_OP_REACT', refMsgId: R1 }));
  assert.deepEqual(c.of('reaction'), [
    { from: '7', fromName: 'ann', to: '8', group: '', msgId: R2, emoji: HEART, reactionId: 'm2', timestampMs: 1002, self: true },
    { from: '7', fromName: 'ann', to: '', group: '5', msgId: R1, emoji: '😂', reactionId: 'm3', timestampMs: 1003, self: true },
  ]);
  assert.equal(c.of('message').length, 0);
  assert.equal(c.lastSeq, 3);
  await until(() => ws.of('ACK').some((f) => f.ack.seq === '3'), 'an ACK of 3');
  await c.close();
});

test('a reaction that waits survives a reload; reactions shown stay unreadable after it', async () => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c1 = await started(cl, { storage });
  cl.ws.push(syncAnswer(0, 0, 0));
  cl.ws.push(msg(1, '👍', { op: 'MSG_OP_REACT', refMsgId: R2 }));
  assert.equal(c1.of('reaction').length, 1);
  cl.ws.drop();
  await until(() => c1.state === 'reconnecting', 'reconnecting');
  const id = c1.react('bob', R1, '🙏');
  c1._saveNow();
  c1._closing = true;
  c1._life.abort();

  const c2 = newClient(cl, { storage });
  const p = c2.start();
  const ws2 = await cl.accept();
  await p;
  await until(() => ws2.of('MSG').length === 1, 'the replay');
  assert.deepEqual(ws2.of('MSG')[0].msg, { clientMsgId: id, to: 'bob', op: 'MSG_OP_REACT', refMsgId: R1, body: bytesToBase64(utf8Encode('🙏')) });
  assert.deepEqual([c2.status(id).op, c2.status(id).refMsgId, c2.status(id).text], ['react', R1, '🙏']);
  // The reaction shown before the reload is still known as one.
  assert.equal(c2.markRead('m1'), 0);
  await c2.close();
});

test('history passes each message\'s reactions through; live messages have none', async () => {
  const cl = new Cluster();
  cl.historyAnswer = {
    messages: [
      { msgId: 'h3', seq: 7, from: '7', fromName: 'ann', to: '8', kind: 0, body: 'lunch?', file: null, timestampMs: 7, reactions: [{ emoji: '👍', count: 2, mine: true }, { emoji: HEART, count: 1 }] },
      { msgId: 'h2', seq: 6, from: '8', fromName: 'bob', to: '7', kind: 0, body: '', file: null, timestampMs: 6, op: 'recalled' },
      { msgId: 'h1', seq: 5, from: '8', fromName: 'bob', to: '7', kind: 0, body: 'hi', file: null, timestampMs: 5, reactions: [{ emoji: '😮', count: 1, mine: false }] },
    ],
    next: '',
  };
  const c = await started(cl);
  const page = await c.history({ peer: 'bob' });
  assert.deepEqual(page.messages.map((m) => [m.msgId, m.reactions]), [
    ['h3', [{ emoji: '👍', count: 2, mine: true }, { emoji: HEART, count: 1, mine: false }]],
    ['h2', []],
    ['h1', [{ emoji: '😮', count: 1, mine: false }]],
  ]);
  cl.ws.push(syncAnswer(0, 0, 0));
  cl.ws.push(msg(1, 'live'));
  assert.deepEqual(c.of('message')[0].reactions, []);
  await c.close();
});

// ------------------------------------------------------------- mentions

const badMentions = (e) => e instanceof ClientError && e.reason === 'bad-mentions';

test('a group message goes with its mentions, as given; kept and resent with them', async (t) => {
  const cl = new Cluster();
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  assert.equal(MAX_MENTIONS, 50);
  const a = c.sendGroup('5', 'lunch @bob and @carol?', { mentions: ['bob', '9'] });
  const b = c.sendGroup(5, 'nobody', { mentions: [] });
  const r = c.sendGroup('5', '@bob yes', { replyTo: R1, mentions: ['8'] });
  const f = await c.sendGroupFile('5', new Blob(['xy']), { name: 'a.txt', contentType: 'text/plain', mentions: ['carol'] });
  const m = c.sendMsg({ group: '5', text: '@ann', mentions: ['7'] });
  const fifty = Array.from({ length: 50 }, (_, i) => `u${i}`);
  const many = c.sendGroup('5', 'everybody', { mentions: fifty });
  const ups = ws.of('MSG').map((x) => x.msg);
  assert.equal(ups.length, 6);
  assert.deepEqual(ups[0], { clientMsgId: a, group: '5', body: bytesToBase64(utf8Encode('lunch @bob and @carol?')), mentions: ['bob', '9'] });
  assert.deepEqual(ups[1], { clientMsgId: b, group: '5', body: bytesToBase64(utf8Encode('nobody')) }); // none: omitted, as protojson does
  assert.deepEqual(ups[2], { clientMsgId: r, group: '5', body: bytesToBase64(utf8Encode('@bob yes')), replyTo: R1, mentions: ['8'] });
  assert.equal(ups[3].clientMsgId, f);
  assert.equal(ups[3].kind, 'KIND_FILE');
  assert.deepEqual(ups[3].mentions, ['carol']);
  assert.deepEqual(ups[4].mentions, ['7']);
  assert.deepEqual(ups[5].mentions, fifty);
  assert.equal(ups[5].clientMsgId, many);

  // Statuses name them (a copy: changing it changes nothing).
  assert.deepEqual(c.status(a).mentions, ['bob', '9']);
  assert.deepEqual(c.status(b).mentions, []);
  assert.deepEqual(c.status(f).mentions, ['carol']);
  assert.deepEqual(c.of('status').filter((s) => s.clientMsgId === a).map((s) => [s.status, s.mentions]), [['pending', ['bob', '9']]]);
  c.status(a).mentions.push('x');
  assert.deepEqual(c.status(a).mentions, ['bob', '9']);
  // Private messages, reactions and others have none.
  const p = c.send('bob', 'hi @bob');
  assert.deepEqual(c.status(p).mentions, []);
  assert.equal(ws.of('MSG').at(-1).msg.mentions, undefined);

  // Unanswered ones are written again, unchanged (same clientMsgId, same
  // mentions), on a new link.
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X1', clientMsgId: b } });
  ws.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X2', clientMsgId: r } });
  assert.deepEqual(c.statusByMsgId('X2').mentions, ['8']);
  ws.drop();
  const ws2 = await cl.accept();
  await until(() => ws2.of('MSG').length === 5, 'the replay');
  assert.deepEqual(ws2.of('MSG').map((x) => x.msg), [ups[0], ups[3], ups[4], ups[5], { clientMsgId: p, to: 'bob', body: bytesToBase64(utf8Encode('hi @bob')) }]);
  await c.close();
});

test('malformed mentions, or mentions on anything but a new group message, are refused at once', async (t) => {
  const cl = new Cluster();
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  const tooMany = Array.from({ length: 51 }, (_, i) => String(i + 1));
  for (const bad of [tooMany, 'bob', { 0: 'bob', length: 1 }, 5, true, new Set(['bob']), [''], [' '], ['bob', ''], [null], [undefined], [8], [['bob']], [{}]]) {
    assert.throws(() => c.sendGroup('5', 'x', { mentions: bad }), badMentions, `mentions ${JSON.stringify(bad)}`);
    assert.throws(() => c.sendMsg({ group: '5', text: 'x', mentions: bad }), badMentions, `sendMsg mentions ${JSON.stringify(bad)}`);
  }
  // Only a new group message mentions anybody.
  assert.throws(() => c.send('bob', '@bob', { mentions: ['bob'] }), badMentions);
  assert.throws(() => c.sendMsg({ to: 'bob', text: '@bob', mentions: ['8'] }), badMentions);
  assert.throws(() => c.sendMsg({ broadcast: true, text: '@bob', mentions: ['bob'] }), badMentions);
  assert.throws(() => c.sendMsg({ group: '5', op: 'edit', refMsgId: R1, text: '@bob', mentions: ['bob'] }), badMentions);
  assert.throws(() => c.sendMsg({ group: '5', op: 'recall', refMsgId: R1, mentions: ['bob'] }), badMentions);
  assert.throws(() => c.sendMsg({ group: '5', op: 'react', refMsgId: R1, text: '👍', mentions: ['bob'] }), badMentions);
  await assert.rejects(c.sendFile('bob', new Blob(['xy']), { name: 'a.txt', mentions: ['bob'] }), badMentions);
  await assert.rejects(c.sendGroupFile('5', new Blob(['xy']), { name: 'a.txt', mentions: tooMany }), badMentions);
  await assert.rejects(c.sendGroupFile('5', new Blob(['xy']), { name: 'a.txt', mentions: [''] }), badMentions);
  assert.equal(ws.of('MSG').length, 0, 'nothing written');
  assert.equal(c.pending, 0, 'nothing kept');
  assert.equal(c.recent().length, 0, 'nothing remembered');
  assert.ok(!cl.calls.some((x) => x.path === '/upload'), 'nothing uploaded');
  // null and [] are none, anywhere.
  c.send('bob', 'x', { mentions: [] });
  c.send('bob', 'y', { mentions: null });
  c.sendMsg({ group: '5', op: 'edit', refMsgId: R1, text: 'z', mentions: [] });
  c.sendGroup('5', 'w', { mentions: null });
  assert.deepEqual(ws.of('MSG').map((f) => f.msg.mentions), [undefined, undefined, undefined, undefined]);
  await c.close();
});

test('mentions count in the size of the frame', async (t) => {
  const cl = new Cluster();
  const c = await started(cl, { maxFrame: 120 });
  t.after(() => c.close()); // a failed assertion leaves no client running
  // The shortest text whose mentions do not fit: without them it does.
  let n = 0;
  for (;;) {
    try {
      c.sendGroup('5', 'x'.repeat(n), { mentions: ['alice', 'bob', '12345'] });
    } catch (e) {
      assert.match(e.message, /frame limit/);
      break;
    }
    n++;
  }
  assert.ok(n > 0 && n < 120, `${n}`);
  c.sendGroup('5', 'x'.repeat(n));
  // Exact: the frame's protobuf size, each mention a field 18 (2-byte key).
  const mentions = ['alice', 'bob', '12345'];
  const extra = mentions.reduce((k, u) => k + 2 + 1 + u.length, 0);
  assert.throws(() => c.sendGroup('5', 'x'.repeat(n + extra)), /frame limit/);
  c.sendGroup('5', 'x'.repeat(n + extra - 1));
  await c.close();
});

test('a group message with mentions that waits survives a reload with them', async (t) => {
  const cl = new Cluster();
  const storage = new MemoryStorage();
  const c1 = await started(cl, { storage });
  const clients = [c1];
  t.after(() => Promise.all(clients.map((c) => c.close().catch(() => {})))); // a failed assertion leaves no client running
  cl.ws.drop();
  await until(() => c1.state === 'reconnecting', 'reconnecting');
  const id = c1.sendGroup('5', 'later @bob', { mentions: ['bob'] });
  c1._saveNow();
  const saved = JSON.parse(storage.getItem(c1._stateKey));
  assert.equal(saved.outbox.length, 1);
  assert.deepEqual(saved.outbox[0].mentions, ['bob']);
  c1._closing = true;
  c1._life.abort();

  const c2 = newClient(cl, { storage });
  clients.push(c2);
  const p = c2.start();
  const ws2 = await cl.accept();
  await p;
  await until(() => ws2.of('MSG').length === 1, 'the replay');
  assert.deepEqual(ws2.of('MSG')[0].msg, { clientMsgId: id, group: '5', body: bytesToBase64(utf8Encode('later @bob')), mentions: ['bob'] });
  assert.deepEqual(c2.status(id).mentions, ['bob']);
  // Answered, it is remembered with them (the sent list) for the next reload.
  ws2.push({ type: 'RECEIPT', receipt: { status: 'RECEIPT_SENT', msgId: 'X9', clientMsgId: id, group: '5', count: '2' } });
  c2._saveNow();
  assert.deepEqual(JSON.parse(storage.getItem(c2._stateKey)).sent.find((r) => r.clientMsgId === id).mentions, ['bob']);
  c2._closing = true;
  c2._life.abort();
  const c3 = newClient(cl, { storage });
  clients.push(c3);
  const p3 = c3.start();
  await cl.accept();
  await p3;
  assert.deepEqual(c3.statusByMsgId('X9').mentions, ['bob']);
  await c3.close();
});

test('incoming messages carry mentions, and mentionsMe when they name this user', async (t) => {
  const cl = new Cluster();
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  const ws = cl.ws;
  ws.push(syncAnswer(0, 0, 0));
  ws.push(msg(1, 'lunch @ann?', { group: '5', mentions: ['7', '9'] }));
  ws.push(msg(2, 'and @carol', { group: '5', mentions: ['9'] }));
  ws.push(msg(3, 'plain', { group: '5' }));
  ws.push(msg(4, 'private', {}));
  // A large group's timeline message.
  ws.push({ type: 'MSG', msg: { msgId: 'g1', from: '9', fromName: 'carol', group: '6', groupSeq: '1', body: bytesToBase64(utf8Encode('@ann look')), timestampMs: '9', mentions: ['7'] } });
  // The copy of one the user sent from another device, mentioning itself.
  ws.push(msg(5, 'note to @ann', { from: '7', fromName: 'ann', to: '', group: '5', clientMsgId: '0123456789abcdef-1', mentions: ['7', '8'] }));
  assert.deepEqual(c.of('message').map((m) => [m.msgId, m.mentions, m.mentionsMe]), [
    ['m1', ['7', '9'], true],
    ['m2', ['9'], false],
    ['m3', [], false],
    ['m4', [], false],
    ['g1', ['7'], true],
    ['m5', ['7', '8'], true],
  ]);
  assert.equal(c.of('message')[5].outgoing, true);
  await c.close();
});

test('history entries carry mentions and mentionsMe', async (t) => {
  const cl = new Cluster();
  cl.historyAnswer = {
    messages: [
      { msgId: 'h3', seq: 7, from: '8', fromName: 'bob', group: '5', kind: 0, body: '@ann @carol lunch?', file: null, timestampMs: 7, mentions: ['7', '9'] },
      { msgId: 'h2', seq: 6, from: '9', fromName: 'carol', group: '5', kind: 0, body: '@bob', file: null, timestampMs: 6, op: 'edited', mentions: ['8'] },
      { msgId: 'h1', seq: 5, from: '8', fromName: 'bob', group: '5', kind: 0, body: 'hi', file: null, timestampMs: 5 },
    ],
    next: '',
  };
  const c = await started(cl);
  t.after(() => c.close()); // a failed assertion leaves no client running
  const page = await c.history({ group: '5' });
  assert.deepEqual(page.messages.map((m) => [m.msgId, m.mentions, m.mentionsMe]), [
    ['h3', ['7', '9'], true],
    ['h2', ['8'], false],
    ['h1', [], false],
  ]);
  // The Api alone knows its user from its login too.
  const api = new Api('http://route', { fetch: cl.fetch });
  await api.login('ann', 'secret1');
  assert.deepEqual((await api.history({ group: '5' })).messages.map((m) => m.mentionsMe), [true, false, false]);
  await c.close();
});
