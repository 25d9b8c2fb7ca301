#!/usr/bin/env node
// WAMP v2 interop suite: AutobahnJS 22.11.1 (npm autobahn, over npm ws) on
// Node 20 against a router.
//
// Usage: node suite.js URL REALM [CASE_PREFIX...]
//
// Every case runs once per serializer (json, msgpack) in fresh sessions and
// prints one JSON line {"case": "js/json/...", "ok": ..., "got": ..., "info": ...}
// with the same meaning as in suite.py: `got` should be equal on every
// router, `info` holds router-specific values and is never compared. The
// exit status is 1 if any case failed.
'use strict';

const autobahn = require('autobahn');

const STEP = 5000; // ms to wait for any one expected message
const QUIET = 500; // ms to wait to be sure something does NOT arrive
const CASE_TIMEOUT = 20000;

// AutobahnJS logs protocol problems with console.log; keep stdout for the
// JSON lines.
const log = console.log.bind(console);
console.log = (...a) => console.error(...a);

class Failed extends Error {}

function check(cond, what) {
  if (!cond) throw new Failed(what);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function within(promise, what, ms = STEP) {
  let timer;
  return Promise.race([
    Promise.resolve(promise),
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Failed(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

let counter = 0;
const uid = () => `${Date.now() % 100000000}${process.pid}${counter++}`;

function serializer(name) {
  if (name === 'json') return new autobahn.serializer.JSONSerializer();
  check(autobahn.serializer.MsgpackSerializer, 'AutobahnJS has no MsgpackSerializer');
  return new autobahn.serializer.MsgpackSerializer();
}

class Ctx {
  constructor(url, realm, ser) {
    Object.assign(this, { url, realm, ser });
    this.connections = [];
    this.info = {};
  }

  // Opens a session; resolves to {session, details, conn, closed} or, for
  // expectJoin=false, to {abort: {reason, details}}.
  open(realm, expectJoin = true) {
    const conn = new autobahn.Connection({
      url: this.url,
      realm: realm || this.realm,
      serializers: [serializer(this.ser)],
      max_retries: 0,
      retry_if_unreachable: false,
    });
    this.connections.push(conn);
    let closedResolve;
    const closed = new Promise((r) => (closedResolve = r));
    const p = new Promise((resolve, reject) => {
      conn.onopen = (session, details) => resolve({ session, details, conn, closed });
      conn.onclose = (reason, details) => {
        closedResolve({ reason, details });
        if (expectJoin) reject(new Failed(`session closed before joining: ${reason} ${JSON.stringify(details)}`));
        else resolve({ abort: { reason, details } });
        return true; // no reconnect
      };
    });
    conn.open();
    return within(p, 'WELCOME or ABORT');
  }

  async close() {
    for (const c of this.connections) {
      try {
        if (c.isOpen) c.close();
      } catch (e) { /* already closed */ }
    }
    await sleep(50);
  }
}

const CASES = [];
const kase = (name, fn) => CASES.push([name, fn]);

async function expectError(promise, what) {
  let r;
  try {
    r = await within(promise, what);
  } catch (e) {
    if (e instanceof Failed) throw e;
    return e;
  }
  throw new Failed(`${what}: expected an error, got ${JSON.stringify(r)}`);
}

// An event collector for one subscription.
class Inbox {
  constructor() {
    this.events = [];
    this.waiters = [];
    this.handler = (args, kwargs, details) => {
      this.events.push({ args: args || [], kwargs: kwargs || {}, details });
      this.waiters.splice(0).forEach((w) => w());
    };
  }

  async one(what) {
    if (!this.events.length) {
      await within(new Promise((r) => this.waiters.push(r)), `EVENT: ${what}`);
    }
    return this.events.shift();
  }

  async none(what) {
    await sleep(QUIET);
    check(!this.events.length, `unexpected EVENT: ${what}: ${JSON.stringify(this.events.map((e) => e.args))}`);
  }
}

// --- session ----------------------------------------------------------------

kase('join', async (ctx) => {
  const { session, details, conn } = await ctx.open();
  const sub = conn.transport && conn.transport.info && conn.transport.info.protocol;
  check(sub === `wamp.2.${ctx.ser}`, `negotiated subprotocol ${sub}`);
  check(Number.isInteger(session.id) && session.id > 0, `session id ${session.id}`);
  check(details.realm === ctx.realm, `realm ${details.realm}`);
  check(typeof details.authid === 'string' && details.authid, `authid ${details.authid}`);
  check(typeof details.authrole === 'string' && details.authrole, `authrole ${details.authrole}`);
  const roles = Object.keys(details.roles || {}).sort();
  check(roles.includes('broker') && roles.includes('dealer'), `roles ${roles}`);
  ctx.info = { session: session.id, authid: details.authid, authrole: details.authrole };
  return { realm: details.realm, roles, authid: true, authrole: true, subprotocol: sub };
});

kase('abort.no_such_realm', async (ctx) => {
  const { abort } = await ctx.open('nosuchrealm', false);
  check(abort, 'joined a realm that does not exist');
  check(abort.details && abort.details.reason === 'wamp.error.no_such_realm',
    `ABORT: ${abort.reason} ${JSON.stringify(abort.details)}`);
  ctx.info.message = abort.details.message;
  return { reason: abort.details.reason };
});

// --- RPC --------------------------------------------------------------------

kase('call.args_kwargs', async (ctx) => {
  const callee = await ctx.open();
  const caller = await ctx.open();
  const p = `com.example.echo${uid()}`;
  await callee.session.register(p, (args, kwargs) =>
    new autobahn.Result(args.slice().reverse(), { n: args.length, ...kwargs }));
  const r = await within(caller.session.call(p, [1, 'two', [3], { four: 4 }], { x: 1.5, y: 'why', z: null }), 'RESULT');
  check(r instanceof autobahn.Result, `expected a Result, got ${JSON.stringify(r)}`);
  const got = { args: r.args, kwargs: r.kwargs };
  check(JSON.stringify(got.args) === JSON.stringify([{ four: 4 }, [3], 'two', 1]), `args ${JSON.stringify(got.args)}`);
  const kw = Object.keys(got.kwargs).sort().map((k) => [k, got.kwargs[k]]);
  check(JSON.stringify(kw) === JSON.stringify([['n', 4], ['x', 1.5], ['y', 'why'], ['z', null]]), `kwargs ${JSON.stringify(kw)}`);
  return { args: got.args, kwargs: Object.fromEntries(kw) };
});

kase('call.single', async (ctx) => {
  const callee = await ctx.open();
  const caller = await ctx.open();
  const p = `com.example.add${uid()}`;
  await callee.session.register(p, (args) => args[0] + args[1]);
  const r = await within(caller.session.call(p, [2, 3]), 'RESULT');
  check(r === 5, `add(2, 3) = ${JSON.stringify(r)}`);
  return { add: r };
});

kase('error.no_such_procedure', async (ctx) => {
  const { session } = await ctx.open();
  const e = await expectError(session.call(`com.example.nobody${uid()}`), 'call of an unregistered procedure');
  check(e.error === 'wamp.error.no_such_procedure', `error ${e.error}`);
  return { error: e.error };
});

kase('error.application', async (ctx) => {
  const callee = await ctx.open();
  const caller = await ctx.open();
  const p = `com.example.fails${uid()}`;
  await callee.session.register(p, () => {
    throw new autobahn.Error('com.example.error.custom', [1, 2], { foo: 'bar' });
  });
  const e = await expectError(caller.session.call(p), 'a throwing procedure');
  const got = { error: e.error, args: e.args, kwargs: e.kwargs };
  check(JSON.stringify(got) === JSON.stringify({ error: 'com.example.error.custom', args: [1, 2], kwargs: { foo: 'bar' } }),
    `got ${JSON.stringify(got)}`);
  return got;
});

kase('error.procedure_already_exists', async (ctx) => {
  const a = await ctx.open();
  const b = await ctx.open();
  const p = `com.example.taken${uid()}`;
  await a.session.register(p, () => 1);
  const e = await expectError(b.session.register(p, () => 2), 'second register');
  check(e.error === 'wamp.error.procedure_already_exists', `error ${e.error}`);
  return { error: e.error };
});

kase('call.progressive', async (ctx) => {
  const callee = await ctx.open();
  const caller = await ctx.open();
  const p = `com.example.progress${uid()}`;
  await callee.session.register(p, async (args, kwargs, details) => {
    check(details.progress, 'the caller did not ask for progressive results');
    for (let i = 0; i < args[0]; i++) {
      details.progress([i], { step: i });
      await sleep(20);
    }
    return new autobahn.Result(['done'], { total: args[0] });
  });
  const seen = [];
  const r = await within(caller.session.call(p, [3], {}, { receive_progress: true })
    .then((x) => x, (e) => { throw e; }, (prog) => seen.push(prog)), 'RESULT');
  const progress = seen.map((x) => (x instanceof autobahn.Result ? [x.args, x.kwargs] : x));
  check(JSON.stringify(progress) === JSON.stringify([[[0], { step: 0 }], [[1], { step: 1 }], [[2], { step: 2 }]]),
    `progress ${JSON.stringify(progress)}`);
  const final = [r.args, r.kwargs];
  check(JSON.stringify(final) === JSON.stringify([['done'], { total: 3 }]), `final ${JSON.stringify(final)}`);
  return { progress, final };
});

// AutobahnJS 22.11.1 cannot be interrupted as a callee (it announces no
// call_canceling and has no INTERRUPT handler), and as a caller it rejects a
// non-"kill" cancel at once by itself. So this checks the router side that
// matters to it: after CANCEL (killnowait), the callee's late YIELD must not
// reach the caller (AutobahnJS would call that a protocol violation and
// close), and the session keeps working.
kase('call.cancel.killnowait', async (ctx) => {
  const callee = await ctx.open();
  const caller = await ctx.open();
  const p = `com.example.long${uid()}`;
  let started;
  const invoked = new Promise((r) => (started = r));
  await callee.session.register(p, async () => {
    started();
    await sleep(800);
    return 'late';
  });
  await callee.session.register(`${p}.after`, () => 'after');
  const call = caller.session.call(p);
  await within(invoked, 'the INVOCATION');
  call.cancel({ mode: 'killnowait' });
  const e = await expectError(call, 'the cancelled call');
  await sleep(1200); // the callee's YIELD has come and gone
  check(caller.session.isOpen, 'the caller session closed after the late YIELD');
  const after = await within(caller.session.call(`${p}.after`), 'a call after the cancel');
  check(after === 'after', `after: ${JSON.stringify(after)}`);
  ctx.info.rejection = String(e && (e.error || e.message));
  return { rejected: true, session_still_open: true };
});

kase('shared.roundrobin', async (ctx) => {
  const p = `com.example.shared${uid()}`;
  for (const i of [1, 2, 3]) {
    const c = await ctx.open();
    await c.session.register(p, () => i, { invoke: 'roundrobin' });
  }
  const caller = await ctx.open();
  const answers = [];
  for (let k = 0; k < 6; k++) answers.push(await within(caller.session.call(p), 'RESULT'));
  check(JSON.stringify(answers) === '[1,2,3,1,2,3]', `answers ${answers}`);
  return { answers };
});

kase('call.disclose_me', async (ctx) => {
  const callee = await ctx.open();
  const caller = await ctx.open();
  const p = `com.example.whocalls${uid()}`;
  await callee.session.register(p, (args, kwargs, details) => [details.caller, details.caller_authid]);
  const r = await within(caller.session.call(p, [], {}, { disclose_me: true }), 'RESULT');
  check(Array.isArray(r) && r[0] === caller.session.id, `details.caller ${JSON.stringify(r)}, caller ${caller.session.id}`);
  check(r[1] === caller.details.authid, `details.caller_authid ${r[1]}, caller's ${caller.details.authid}`);
  return { caller_is_caller: true, caller_authid_is_callers: true };
});

// --- pub/sub -----------------------------------------------------------------

async function subscribers(ctx, topic, n, options) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await ctx.open();
    c.box = new Inbox();
    await c.session.subscribe(topic, c.box.handler, options);
    out.push(c);
  }
  return out;
}

const publishAck = (pub, topic, args, kwargs, options) =>
  within(pub.session.publish(topic, args, kwargs, { ...(options || {}), acknowledge: true }), 'PUBLISHED');

kase('pubsub.args_kwargs', async (ctx) => {
  const t = `com.example.topic${uid()}`;
  const [sub] = await subscribers(ctx, t, 1);
  const pub = await ctx.open();
  await publishAck(pub, t, [1, 'two', [3]], { k: { v: true }, n: null });
  const ev = await sub.box.one('args/kwargs');
  const got = { args: ev.args, kwargs: ev.kwargs };
  check(JSON.stringify(got) === JSON.stringify({ args: [1, 'two', [3]], kwargs: { k: { v: true }, n: null } }),
    `got ${JSON.stringify(got)}`);
  return got;
});

kase('pubsub.exclude_me', async (ctx) => {
  const t = `com.example.me${uid()}`;
  const [s] = await subscribers(ctx, t, 1);
  await publishAck(s, t, ['default']);
  await s.box.none('the publisher got its own event with exclude_me unset');
  await publishAck(s, t, ['false'], {}, { exclude_me: false });
  const ev = await s.box.one('exclude_me: false');
  check(JSON.stringify(ev.args) === '["false"]', `args ${JSON.stringify(ev.args)}`);
  return { default: 'excluded', exclude_me_false: ev.args };
});

kase('pubsub.exclude_eligible', async (ctx) => {
  const t = `com.example.lists${uid()}`;
  const subs = await subscribers(ctx, t, 3);
  const pub = await ctx.open();
  const ids = subs.map((c) => c.session.id);
  await publishAck(pub, t, ['ex'], {}, { exclude: [ids[1]] });
  await publishAck(pub, t, ['el'], {}, { eligible: [ids[0], ids[1]] });
  await publishAck(pub, t, ['both'], {}, { eligible: [ids[0], ids[1]], exclude: [ids[0]] });
  await sleep(QUIET);
  const seen = subs.map((c) => c.box.events.map((e) => e.args[0]));
  check(JSON.stringify(seen) === JSON.stringify([['ex', 'el'], ['el', 'both'], ['ex']]), `per subscriber ${JSON.stringify(seen)}`);
  return { per_subscriber: seen };
});

kase('pubsub.exclude_eligible_authid', async (ctx) => {
  const t = `com.example.authids${uid()}`;
  const subs = await subscribers(ctx, t, 2);
  const pub = await ctx.open();
  const authids = subs.map((c) => c.details.authid);
  ctx.info.authids = authids;
  check(authids[0] !== authids[1], `both subscribers have authid ${authids[0]}: cannot tell them apart`);
  await publishAck(pub, t, ['ex'], {}, { exclude_authid: [authids[0]] });
  await publishAck(pub, t, ['el'], {}, { eligible_authid: [authids[0]] });
  await sleep(QUIET);
  const seen = subs.map((c) => c.box.events.map((e) => e.args[0]));
  check(JSON.stringify(seen) === JSON.stringify([['el'], ['ex']]), `per subscriber ${JSON.stringify(seen)}`);
  return { per_subscriber: seen };
});

kase('pubsub.acknowledge', async (ctx) => {
  const pub = await ctx.open();
  const p = await publishAck(pub, `com.example.ack${uid()}`, ['x']);
  check(p && Number.isInteger(p.id) && p.id > 0, `publication ${JSON.stringify(p)}`);
  ctx.info.publication = p.id;
  return { publication_id: 'int' };
});

kase('pubsub.disclose_me', async (ctx) => {
  const t = `com.example.who${uid()}`;
  const [sub] = await subscribers(ctx, t, 1);
  const pub = await ctx.open();
  const p = await publishAck(pub, t, ['x'], {}, { disclose_me: true });
  const ev = await sub.box.one('disclose_me');
  check(ev.details.publisher === pub.session.id, `details.publisher ${ev.details.publisher}, publisher ${pub.session.id}`);
  check(ev.details.publication === p.id, `details.publication ${ev.details.publication}, PUBLISHED ${p.id}`);
  return { publisher_is_publisher: true, publication_matches: true };
});

kase('pubsub.prefix', async (ctx) => {
  const base = `com.example${uid()}`;
  const [sub] = await subscribers(ctx, base, 1, { match: 'prefix' });
  const pub = await ctx.open();
  await publishAck(pub, `${base}.a.b`, ['deep']);
  await publishAck(pub, base, ['self']);
  await publishAck(pub, 'org.other.a', ['other']);
  await sleep(QUIET);
  const seen = sub.box.events.map((e) => [e.args[0], e.details.topic]);
  check(JSON.stringify(seen) === JSON.stringify([['deep', `${base}.a.b`], ['self', base]]), `events ${JSON.stringify(seen)}`);
  return { events: seen.map(([a, t]) => [a, t.replace(base, 'BASE')]) };
});

kase('pubsub.wildcard', async (ctx) => {
  const u = uid();
  const [sub] = await subscribers(ctx, `com${u}..event`, 1, { match: 'wildcard' });
  const pub = await ctx.open();
  await publishAck(pub, `com${u}.x.event`, ['hit']);
  await publishAck(pub, `com${u}.x.y.event`, ['too deep']);
  await publishAck(pub, `com${u}.event`, ['too shallow']);
  await sleep(QUIET);
  const seen = sub.box.events.map((e) => [e.args[0], e.details.topic]);
  check(JSON.stringify(seen) === JSON.stringify([['hit', `com${u}.x.event`]]), `events ${JSON.stringify(seen)}`);
  return { events: seen.map(([a, t]) => [a, t.replace(u, '')]) };
});

// --- meta API ----------------------------------------------------------------

kase('meta.session', async (ctx) => {
  const me = await ctx.open();
  const other = await ctx.open();
  const n = await within(me.session.call('wamp.session.count'), 'wamp.session.count');
  const ids = await within(me.session.call('wamp.session.list'), 'wamp.session.list');
  const got = await within(me.session.call('wamp.session.get', [me.session.id]), 'wamp.session.get');
  check(Number.isInteger(n) && n >= 2, `count ${n}`);
  check(Array.isArray(ids) && ids.includes(me.session.id) && ids.includes(other.session.id), `list ${JSON.stringify(ids)}`);
  check(got && got.session === me.session.id, `get: session ${got && got.session}`);
  check(got.authid === me.details.authid && got.authrole === me.details.authrole, `get: ${JSON.stringify(got)}`);
  ctx.info.count = n;
  return { count_int: true, list_has_both: true, get_keys: ['authid', 'authrole', 'session'] };
});

kase('goodbye', async (ctx) => {
  const c = await ctx.open();
  c.conn.close();
  const { reason, details } = await within(c.closed, 'GOODBYE');
  check(reason === 'closed', `close reason ${reason} ${JSON.stringify(details)}`);
  check(['wamp.close.goodbye_and_out', 'wamp.close.normal'].includes(details.reason), `GOODBYE ${JSON.stringify(details)}`);
  return { reply: details.reason };
});

// --- runner -------------------------------------------------------------------

async function runOne(url, realm, ser, name, fn) {
  const ctx = new Ctx(url, realm, ser);
  const line = { case: `js/${ser}/${name}` };
  try {
    const got = await within(fn(ctx), 'the whole case', CASE_TIMEOUT);
    Object.assign(line, { ok: true, got });
  } catch (e) {
    const what = e instanceof Failed ? e.message : `${e && e.name}: ${e && (e.message || e.error || JSON.stringify(e))}`;
    Object.assign(line, { ok: false, error: what });
  } finally {
    await ctx.close();
  }
  if (Object.keys(ctx.info).length) line.info = ctx.info;
  log(JSON.stringify(line));
  return line.ok;
}

async function main() {
  const [url, realm, ...prefixes] = process.argv.slice(2);
  if (!url || !realm) {
    console.error('usage: suite.js URL REALM [CASE_PREFIX...]');
    process.exit(2);
  }
  let total = 0;
  let failed = 0;
  for (const ser of ['json', 'msgpack']) {
    for (const [name, fn] of CASES) {
      if (prefixes.length && !prefixes.some((p) => name.startsWith(p))) continue;
      total++;
      if (!(await runOne(url, realm, ser, name, fn))) failed++;
    }
  }
  console.error(`suite.js: ${total - failed}/${total} cases passed`);
  process.exit(failed || !total ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
