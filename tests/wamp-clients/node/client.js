// Drives a running sprocket's WAMP v1 broker with npm `wamp1` (0.0.3), a
// client this project did not write, over npm `ws`. Three sessions check
// prefix, call, call errors, subscribe, every publish form, unsubscribe and
// a push from the backend (POST /publish),
// asserting exactly which session receives what.
//
// Usage: PUBLISH_URL=http://127.0.0.1:PORT/publish PUBLISH_SECRET=S \
//        node client.js ws://127.0.0.1:PORT/wamp
// Exit status: 0 when everything matched; 1 with a FAIL line otherwise.
//
// About wamp1: it sends URIs and CURIEs as given (the server expands
// CURIEs), passes publish()'s extra arguments through verbatim (so
// excludeMe is sent only when given), routes an EVENT to the listeners of
// its topic and of that topic's CURIE under a known prefix, and takes a
// socket object with send() and a 'message' event instead of a URL.
"use strict";

const { EventEmitter } = require("node:events");
const assert = require("node:assert/strict");
const util = require("node:util");
const WebSocket = require("ws");
const Wamp = require("wamp1");

const URL_ = process.argv[2];
// POST /publish of the binary's admin listener, and its bearer secret.
const PUBLISH_URL = process.env.PUBLISH_URL;
const PUBLISH_SECRET = process.env.PUBLISH_SECRET;
const TOPIC = "http://example.com/wamp1/topic";
const MARK = "http://example.com/wamp1/marker";
const QUIET_MS = 200;
const WAIT_MS = 5000;

let checks = 0;
function ok(what) {
  checks += 1;
  console.log(`ok ${checks} - ${what}`);
}

function fail(message) {
  console.error(`FAIL (wamp1 client): ${message}`);
  process.exit(1);
}

/** Polls `cond` every few ms; fails with `what` after WAIT_MS. */
function waitFor(what, cond) {
  const deadline = Date.now() + WAIT_MS;
  return new Promise((resolve, reject) => {
    (function poll() {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 5);
    })();
  });
}

/**
 * The EventEmitter wamp1 expects in place of its own socket: a `ws`
 * WebSocket offering the "wamp" subprotocol. Counts raw EVENTs per topic
 * (what the server sent, whatever the client does with them).
 */
function wampSocket(url, name) {
  const socket = new EventEmitter();
  const ws = new WebSocket(url, ["wamp"]);
  socket.rawEvents = new Map();
  socket.send = (text) => ws.send(text);
  socket.close = () => ws.close(1000);
  ws.on("open", () => {
    if (ws.protocol !== "wamp") fail(`${name}: server chose subprotocol ${JSON.stringify(ws.protocol)}, not "wamp"`);
  });
  ws.on("message", (data, isBinary) => {
    if (isBinary) fail(`${name}: binary message from the server`);
    const text = data.toString("utf8");
    const msg = JSON.parse(text);
    if (msg[0] === 8) socket.rawEvents.set(msg[1], (socket.rawEvents.get(msg[1]) || 0) + 1);
    socket.emit("message", text);
  });
  ws.on("close", (code, reason) => {
    if (!socket.closing) fail(`${name}: connection closed by the server (${code} ${reason})`);
  });
  ws.on("error", (e) => fail(`${name}: socket error: ${e.message}`));
  return socket;
}

/** Opens a session; resolves once WELCOME has arrived. */
function open(name) {
  return new Promise((resolve) => {
    const socket = wampSocket(URL_, name);
    const s = new Wamp(socket, {}, (welcome) => {
      s.welcome = welcome;
      resolve(s);
    });
    s.name = name;
    s.socket = socket;
    s.got = []; // [topic as the listener saw it, event]
    s.marks = 0;
    s.on("error", (e) => fail(`${name}: wamp1 reported: ${e.message}`));
  });
}

/** wamp1's call(uri, args…, cb(err, result)) as a promise of {result} or {error}. */
function call(s, uri, ...args) {
  return new Promise((resolve) => {
    s.call(uri, ...args, (error, result) => resolve(error ? { error } : { result }));
  });
}

async function sync(s) {
  const { result } = await call(s, "urn:sprocket:echo", "sync");
  assert.equal(result, "sync", `${s.name}: sync call`);
}

async function main() {
  if (!URL_ || !PUBLISH_URL || !PUBLISH_SECRET) {
    fail("usage: PUBLISH_URL=http://HOST:PORT/publish PUBLISH_SECRET=S node client.js ws://HOST:PORT/wamp");
  }
  const [a, b, c] = await Promise.all([open("a"), open("b"), open("c")]);
  const all = [a, b, c];

  // WELCOME
  for (const s of all) {
    assert.match(s.sessionId, /^[0-9a-f]{32}$/, `${s.name}: session id`);
    assert.equal(s.welcome.version, 1, `${s.name}: WAMP version`);
    assert.match(s.welcome.server, /^sprocket\//, `${s.name}: server ident`);
  }
  assert.equal(new Set(all.map((s) => s.sessionId)).size, 3, "distinct session ids");
  ok("WELCOME: three sessions, distinct 128-bit ids, version 1, sprocket ident");

  // prefix + call
  a.prefix("sp", "urn:sprocket:");
  assert.deepEqual(await call(a, "sp:add", 1, 2, 3.5), { result: 6.5 });
  assert.deepEqual(await call(a, "urn:sprocket:add", 40, 2), { result: 42 });
  assert.deepEqual(await call(a, "sp:echo", { deep: [1, null, "x"] }), { result: { deep: [1, null, "x"] } });
  assert.deepEqual(await call(a, "sp:echo", "one", 2), { result: ["one", 2] });
  ok("prefix + call: CURIE and full-URI calls of urn:sprocket:add and urn:sprocket:echo return their results");

  // call errors: wamp1 gives an Error with message = description, .uri, .details
  const bad = (await call(a, "sp:add", 1, "x")).error;
  assert.ok(bad instanceof Error, "add with a string fails");
  assert.equal(bad.uri, "urn:sprocket:error:invalid-argument");
  assert.equal(bad.message, "arguments must be numbers");
  assert.equal(bad.details, undefined);
  const missing = (await call(b, "urn:sprocket:nope", 1)).error;
  assert.equal(missing.uri, "urn:sprocket:error:no-such-procedure");
  assert.equal(missing.message, "no procedure urn:sprocket:nope");
  const curieMissing = (await call(b, "sp:add", 1)).error;
  assert.equal(curieMissing.uri, "urn:sprocket:error:no-such-procedure",
    "b defined no prefix sp, so sp:add is not urn:sprocket:add for b");
  assert.equal(curieMissing.message, "no procedure sp:add");
  ok("call errors: CALLERROR invalid-argument and no-such-procedure; prefixes are per session");

  // subscribe: a by CURIE, b and c by full URI; everybody to the marker topic.
  a.prefix("ev", "http://example.com/wamp1/");
  a.subscribe("ev:topic", (event) => a.got.push(["ev:topic", event]));
  for (const s of [b, c]) s.subscribe(TOPIC, (event) => s.got.push([TOPIC, event]));
  for (const s of all) {
    s.subscribe(MARK, () => { s.marks += 1; });
    await sync(s);
  }
  ok("subscribe: a with a CURIE, b and c with the full URI");

  let marks = 0;
  // `publisher` publishes with `args`, then a marker everybody gets: once a
  // session has the marker it would have had the event (one socket, in order).
  const step = async (publisher, args, receivers, what) => {
    publisher.publish(...args);
    publisher.publish(MARK, null);
    marks += 1;
    await waitFor(`the marker after ${what}`, () => all.every((s) => s.marks >= marks));
    for (const s of all) {
      const expected = receivers.includes(s) ? [[s === a ? "ev:topic" : TOPIC, args[1]]] : [];
      assert.deepEqual(s.got.splice(0), expected, `${s.name} after ${what}`);
    }
    ok(`publish ${what}: received by ${receivers.map((s) => s.name).join(", ") || "nobody"}`);
  };
  const [ida, idb, idc] = all.map((s) => s.sessionId);
  await step(a, [TOPIC, { n: 1 }], [a, b, c], "without excludeMe (the publisher too, as in Ratchet)");
  await step(a, [TOPIC, 2, false], [a, b, c], "excludeMe = false");
  await step(a, [TOPIC, 3, true], [b, c], "excludeMe = true");
  await step(b, [TOPIC, 4, [idb, idc]], [a], "exclude = [b, c]");
  await step(a, [TOPIC, 5, [], [idc]], [c], "eligible = [c]");
  await step(a, [TOPIC, 6, [], [ida, idb]], [a, b], "eligible = [a, b]");
  await step(c, [TOPIC, 7, [], []], [a, b, c], "eligible = [] (everybody, as in Ratchet)");
  await step(c, [TOPIC, 8, [idc], []], [a, b], "exclude = [c], eligible = []");
  await step(a, [TOPIC, 9, [ida], [ida, idb]], [b], "exclude = [a], eligible = [a, b]");
  await step(a, ["ev:topic", "curie"], [a, b, c], "to a CURIE topic");

  // unsubscribe: b stops getting events, from the server's side too.
  const rawB = b.socket.rawEvents.get(TOPIC);
  b.unsubscribe(TOPIC);
  await sync(b);
  await step(a, [TOPIC, "after"], [a, c], "after b unsubscribed");
  await step(c, [TOPIC, "again", [], []], [a, c], "again after b unsubscribed");
  assert.equal(b.socket.rawEvents.get(TOPIC), rawB, "the server sent b no EVENT after UNSUBSCRIBE");
  ok("unsubscribe: the server sends b nothing more on the topic");

  // A push from the backend (POST /publish), excluding c by session id.
  const PUSH = "urn:sprocket:pushed";
  for (const s of all) {
    s.subscribe(PUSH, (event) => s.got.push([PUSH, event]));
    await sync(s);
  }
  const res = await fetch(PUBLISH_URL, {
    method: "POST",
    headers: { Authorization: `Bearer ${PUBLISH_SECRET}`, "Content-Type": "application/json" },
    body: JSON.stringify({ topic: PUSH, data: { from: "backend", n: [1, 2] }, exclude: [idc] }),
  });
  assert.equal(res.status, 200, "POST /publish status");
  assert.deepEqual(await res.json(), { delivered: 2 }, "POST /publish answer");
  await waitFor("the pushed event", () => a.got.length >= 1 && b.got.length >= 1);
  await sync(c);
  for (const s of all) {
    const expected = s === c ? [] : [[PUSH, { from: "backend", n: [1, 2] }]];
    assert.deepEqual(s.got.splice(0), expected, `${s.name} after the push`);
  }
  ok("push from the backend: POST /publish reaches a and b, not the excluded c; delivered 2");

  // A quiet period: nothing else arrives anywhere.
  const before = all.map((s) => JSON.stringify([...s.socket.rawEvents]));
  await new Promise((r) => setTimeout(r, QUIET_MS));
  for (const [i, s] of all.entries()) {
    assert.deepEqual(s.got, [], `${s.name}: no stray events`);
    assert.equal(JSON.stringify([...s.socket.rawEvents]), before[i], `${s.name}: no stray EVENTs`);
  }
  ok(`quiet for ${QUIET_MS} ms: no stray events`);

  for (const s of all) {
    s.socket.closing = true;
    s.socket.close();
  }
  console.log(`wamp1 client: ${checks} passed, 0 failed`);
}

setTimeout(() => fail("timed out after 30 s"), 30000).unref();
main().catch((e) => {
  if (e.code === "ERR_ASSERTION") {
    const show = (v) => util.inspect(v, { depth: 6 });
    fail(`${e.message}\n  actual:   ${show(e.actual)}\n  expected: ${show(e.expected)}`);
  }
  fail(e.stack || String(e));
});
