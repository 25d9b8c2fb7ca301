// WAMP v2 in headless Chromium: pages with AutobahnJS's browser build
// (npm autobahn-browser 22.11.1, from this directory's package.json),
// served with the page by a small HTTP server of the test at
// http://127.0.0.1, join realm1 on the binary's /wamp. One page speaks
// wamp.2.json and registers a procedure, the other wamp.2.msgpack; both
// subscribe to a chat topic and to the demo page's topic, so the binary's
// own demo page (WAMP v1) and the AutobahnJS pages chat with each other.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const { startSprocket, launchBrowser } = require("./lib/harness");

const BUNDLE = path.join(__dirname, "node_modules/autobahn-browser/autobahn.min.js");
const CHAT = "com.example.chat";
const ADD = "com.example.page.add";
// The demo page subscribes and publishes "demo:chat" after
// prefix("demo", "urn:sprocket:demo:") (assets/demo.html).
const DEMO_TOPIC = "urn:sprocket:demo:chat";
const QUIET_MS = 150;

let server, browser, site, a, b, demo;

/**
 * The AutobahnJS page. Query: `ser` (json or msgpack: the only serializer
 * offered), `register` (1: registers ADD). It records what it gets in
 * window.seen; window.ready resolves once every REGISTER and SUBSCRIBE is
 * acknowledged.
 */
function page(wsUrl) {
  return `<!doctype html>
<meta charset="utf-8">
<title>AutobahnJS on sprocket</title>
<script src="/js/autobahn.min.js"></script>
<script>
  "use strict";
  const params = new URLSearchParams(location.search);
  const ser = params.get("ser");
  window.seen = { chat: [], demo: [], invoked: [], closed: [] };
  const serializers = ser === "msgpack"
    ? [new autobahn.serializer.MsgpackSerializer()]
    : [new autobahn.serializer.JSONSerializer()];
  const connection = new autobahn.Connection({
    url: ${JSON.stringify(wsUrl + "/wamp")},
    realm: "realm1",
    serializers,
    max_retries: 0,
  });
  const record = (list) => (args, kwargs, details) => {
    list.push({ args, kwargs, publisher: details.publisher });
  };
  window.ready = new Promise((resolve, reject) => {
    connection.onopen = (session, details) => {
      window.session = session;
      const steps = [
        session.subscribe(${JSON.stringify(CHAT)}, record(seen.chat)),
        session.subscribe(${JSON.stringify(DEMO_TOPIC)}, record(seen.demo)),
      ];
      if (params.get("register") === "1") {
        steps.push(session.register(${JSON.stringify(ADD)}, (args, kwargs, details) => {
          seen.invoked.push({ args, kwargs, caller: details.caller });
          return args.reduce((sum, x) => sum + x, 0);
        }));
      }
      Promise.all(steps).then(() => resolve({
        id: session.id,
        authid: details.authid,
        authrole: details.authrole,
        protocol: connection.transport.info.protocol,
        broker: Object.keys(details.roles.broker.features || {}).sort(),
        dealer: Object.keys(details.roles.dealer.features || {}).sort(),
      }), reject);
    };
  });
  connection.onclose = (reason, details) => {
    seen.closed.push(reason);
    return true; // no reconnect
  };
  connection.open();
</script>
<p>AutobahnJS on sprocket</p>
`;
}

/** The test's site: the page and the bundle. */
function startSite(wsUrl) {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} missing: npm ci in tests/browser`);
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      return res.end(page(wsUrl));
    }
    if (req.method === "GET" && url.pathname === "/js/autobahn.min.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      return fs.createReadStream(BUNDLE).pipe(res);
    }
    // Chromium asks for /favicon.ico; a 404 would be a console error.
    res.writeHead(url.pathname === "/favicon.ico" ? 204 : 404);
    res.end();
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve(srv)));
}

/** Opens an AutobahnJS page and waits until it has joined and subscribed. */
async function openAutobahn(query) {
  const p = await browser.newPage(`http://127.0.0.1:${site.address().port}/?${query}`);
  p.info = await p.evaluate(() => window.ready);
  return p;
}

/** Opens the binary's demo page and waits for its WAMP v1 session. */
async function openDemo() {
  const p = await browser.newPage(server.url + "/");
  p.sessionId = await p.evaluate(() => window.demo.ready.then((s) => s.sessionId));
  return p;
}

/** Waits until `fn` is true in the page, polling on a timer (background tabs). */
function until(p, fn, arg) {
  return p.waitForFunction(fn, arg, { polling: 20 });
}

/** Publishes from an AutobahnJS page with acknowledge; resolves once the router has it. */
function publish(p, topic, args, kwargs, options = {}) {
  return p.evaluate(({ topic, args, kwargs, options }) =>
    window.session.publish(topic, args, kwargs, { ...options, acknowledge: true }).then((pub) => pub.id),
  { topic, args, kwargs, options });
}

/** Calls from an AutobahnJS page; resolves with {ok} or {error, args, kwargs}. */
function call(p, procedure, args) {
  return p.evaluate(({ procedure, args }) => window.session.call(procedure, args).then(
    (ok) => ({ ok }),
    (e) => ({ error: e.error, args: e.args, kwargs: e.kwargs })), { procedure, args });
}

before(async () => {
  server = await startSprocket();
  site = await startSite(server.wsUrl);
  browser = await launchBrowser();
  a = await openAutobahn("ser=json&register=1");
  b = await openAutobahn("ser=msgpack");
});

after(async () => {
  if (browser) await browser.close();
  if (site) await new Promise((r) => site.close(r));
  if (server) {
    const status = await server.stop();
    assert.equal(status.code, 0, `sprocket exits 0 on SIGTERM:\n${server.log()}`);
  }
});

test("AutobahnJS pages join realm1 over wamp.2.json and wamp.2.msgpack", () => {
  assert.equal(a.info.protocol, "wamp.2.json");
  assert.equal(b.info.protocol, "wamp.2.msgpack");
  for (const p of [a, b]) {
    assert.ok(Number.isSafeInteger(p.info.id) && p.info.id > 0, `session id ${p.info.id}`);
    assert.equal(p.info.authid, `anonymous-${p.info.id}`);
    assert.equal(p.info.authrole, "anonymous");
    for (const f of ["publisher_exclusion", "publisher_identification", "subscriber_blackwhite_listing"]) {
      assert.ok(p.info.broker.includes(f), `broker announces ${f}: ${p.info.broker}`);
    }
    for (const f of ["caller_identification", "progressive_call_results"]) {
      assert.ok(p.info.dealer.includes(f), `dealer announces ${f}: ${p.info.dealer}`);
    }
  }
  assert.notEqual(a.info.id, b.info.id);
});

test("a page calls the other page's procedure and gets the sum", async () => {
  assert.deepEqual(await call(b, ADD, [40, 1.5, 0.5]), { ok: 42 });
  assert.deepEqual(await call(b, ADD, [-7]), { ok: -7 });
  assert.deepEqual(await a.evaluate(() => window.seen.invoked), [
    { args: [40, 1.5, 0.5], kwargs: {}, caller: b.info.id },
    { args: [-7], kwargs: {}, caller: b.info.id },
  ]);
  // The callee may call itself through the router too.
  assert.deepEqual(await call(a, ADD, [1, 2]), { ok: 3 });
  assert.equal(await a.evaluate(() => window.seen.invoked.length), 3);
  // A page that did not register cannot be called.
  const none = await call(a, "com.example.page.nobody", [1]);
  assert.equal(none.error, "wamp.error.no_such_procedure");
});

test("a publish reaches the other page and not the publisher (exclude_me by default)", async () => {
  await publish(a, CHAT, ["hello from json"], { n: 1 });
  // b's marker goes to everybody; a's own event, had it been sent, would
  // have reached a's socket before it.
  await publish(b, CHAT, ["marker b"], {}, { exclude_me: false });
  await until(a, () => window.seen.chat.length >= 1);
  await until(b, () => window.seen.chat.length >= 2);
  assert.deepEqual(await a.evaluate(() => window.seen.chat.splice(0)), [
    { args: ["marker b"], kwargs: {}, publisher: b.info.id },
  ]);
  assert.deepEqual(await b.evaluate(() => window.seen.chat.splice(0)), [
    { args: ["hello from json"], kwargs: { n: 1 }, publisher: a.info.id },
    { args: ["marker b"], kwargs: {}, publisher: b.info.id },
  ]);
  // And the other way, msgpack to JSON, with nested values.
  await publish(b, CHAT, [{ deep: [1, null, "x"] }, 2.5], {});
  await publish(a, CHAT, ["marker a"], {}, { exclude_me: false });
  await until(b, () => window.seen.chat.length >= 1);
  await until(a, () => window.seen.chat.length >= 2);
  assert.deepEqual(await b.evaluate(() => window.seen.chat.splice(0)), [
    { args: ["marker a"], kwargs: {}, publisher: a.info.id },
  ]);
  assert.deepEqual(await a.evaluate(() => window.seen.chat.splice(0)), [
    { args: [{ deep: [1, null, "x"] }, 2.5], kwargs: {}, publisher: b.info.id },
    { args: ["marker a"], kwargs: {}, publisher: a.info.id },
  ]);
});

test("the demo page (WAMP v1) and the AutobahnJS pages chat on one topic", async () => {
  demo = await openDemo();
  const lines = demo.locator("#chat-log li:not(.system)");
  // v1 → v2: the demo page's form publishes {from, text, session}; the v2
  // pages get it as args[0].
  await demo.bringToFront();
  await demo.fill("#chat-name", "vee-one");
  await demo.fill("#chat-text", "hello from the demo page");
  await demo.click("#chat-send");
  const v1Event = { from: "vee-one", text: "hello from the demo page", session: demo.sessionId };
  for (const p of [a, b]) {
    await until(p, () => window.seen.demo.length >= 1);
    const got = await p.evaluate(() => window.seen.demo.splice(0));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0].args, [v1Event]);
    assert.deepEqual(got[0].kwargs, {});
    // A v1 session id (32 hex digits) is no WAMP v2 id: no publisher.
    assert.equal(got[0].publisher, undefined);
  }
  // v1 publishes reach the v1 publisher too (no excludeMe on the form).
  await until(demo, () => document.querySelectorAll("#chat-log li:not(.system)").length >= 1);
  assert.deepEqual(await lines.allTextContents(), ["vee-one: hello from the demo page"]);

  // v2 → v1: one positional argument arrives in the demo page as the event.
  const v2Event = { from: "autobahn", text: "hello from AutobahnJS", session: String(a.info.id) };
  await publish(a, DEMO_TOPIC, [v2Event], {});
  await until(demo, () => document.querySelectorAll("#chat-log li:not(.system)").length >= 2);
  assert.deepEqual(await lines.allTextContents(), [
    "vee-one: hello from the demo page",
    "autobahn: hello from AutobahnJS",
  ]);
  assert.equal(await demo.locator("#chat-log li.other").count(), 1);
  // The other v2 page got it, the publisher (exclude_me default) did not:
  // once a has b's marker, it would have had its own event.
  await until(b, () => window.seen.demo.length >= 1);
  await publish(b, DEMO_TOPIC, [{ from: "marker", text: "marker b", session: "" }], {}, { exclude_me: false });
  await until(a, () => window.seen.demo.length >= 1);
  assert.deepEqual((await a.evaluate(() => window.seen.demo.splice(0))).map((e) => e.args),
    [[{ from: "marker", text: "marker b", session: "" }]]);
  assert.deepEqual((await b.evaluate(() => window.seen.demo.splice(0))).map((e) => e.args), [
    [v2Event],
    [{ from: "marker", text: "marker b", session: "" }],
  ]);
  // The msgpack page's publish reaches the demo page as well.
  await until(demo, () => document.querySelectorAll("#chat-log li:not(.system)").length >= 3);
  assert.deepEqual((await lines.allTextContents()).slice(2), ["marker: marker b"]);

  // A v1 publish with excludeMe: the v2 pages still get it, the demo page not.
  await demo.bringToFront();
  await demo.check("#chat-exclude-me");
  await demo.fill("#chat-text", "only the others");
  await demo.click("#chat-send");
  for (const p of [a, b]) {
    await until(p, () => window.seen.demo.length >= 1);
    assert.deepEqual((await p.evaluate(() => window.seen.demo.splice(0))).map((e) => e.args),
      [[{ from: "vee-one", text: "only the others", session: demo.sessionId }]]);
  }
  await demo.evaluate(() => window.demo.session.call("urn:sprocket:echo", "sync"));
  await demo.waitForTimeout(QUIET_MS);
  assert.equal(await lines.count(), 3, "the demo page did not get its own excluded message");
});

test("AutobahnJS pages call the binary's urn:sprocket:add (answered by the v1 app)", async () => {
  for (const p of [a, b]) {
    assert.deepEqual(await call(p, "urn:sprocket:add", [40, 2]), { ok: 42 });
    assert.deepEqual(await call(p, "urn:sprocket:add", [1, 2.5, -0.5]), { ok: 3 });
    assert.deepEqual(await call(p, "urn:sprocket:add", []), { ok: 0 });
    const bad = await call(p, "urn:sprocket:add", [1, "two"]);
    assert.equal(bad.error, "urn:sprocket:error:invalid-argument");
    assert.deepEqual(bad.args, ["arguments must be numbers"]);
    const missing = await call(p, "urn:sprocket:nope", [1]);
    assert.equal(missing.error, "wamp.error.no_such_procedure");
    assert.deepEqual(missing.args, ["no procedure urn:sprocket:nope"]);
  }
  assert.deepEqual(await call(b, "urn:sprocket:echo", [{ deep: [1, null] }]), { ok: { deep: [1, null] } });
});

test("no page logged an error, and no session closed", async () => {
  for (const p of [a, b]) {
    assert.deepEqual(await p.evaluate(() => window.seen.closed), []);
  }
  for (const p of [a, b, demo]) assert.deepEqual(p.problems, [], p.url());
});
