// sprocket's Pusher webhooks, received by a Node HTTP server and checked
// with the real SDK's pusher.webhook(...).isValid(): channel_occupied and
// channel_vacated, member_added and member_removed (per user, debounced 3
// s), client_event, cache_miss; batched; retried when the endpoint fails.
"use strict";

const nodeTest = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const Pusher = require("pusher-js");
const PusherServer = require("pusher");
const { startSprocket } = require("./lib/sprocket");

const APP = "77";
const KEY = "hook-key";
const SECRET = "hook-secret";
const test = (name, fn) => nodeTest(name, { timeout: 30000 }, fn);

let sprocket;
let sdk;
let hookServer;
/** Every webhook request: { valid, events, status }. */
const received = [];
/** Statuses to answer the next requests with (then 200). */
const failNext = [];
const open = new Set();

nodeTest.before(async () => {
  hookServer = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      const status = failNext.length ? failNext.shift() : 200;
      const valid = sdk.webhook({ headers: req.headers, rawBody: body }).isValid();
      received.push({ valid, status, events: JSON.parse(body).events, path: req.url });
      res.writeHead(status, { "Content-Type": "text/plain" });
      res.end(status === 200 ? "ok" : "not now");
    });
  });
  await new Promise((r) => hookServer.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${hookServer.address().port}/hooks`;
  sprocket = await startSprocket([
    "--pusher-app", `${APP}:${KEY}:${SECRET}`, "--pusher-webhook", hookUrl,
  ]);
  sdk = new PusherServer({
    appId: APP, key: KEY, secret: SECRET, host: sprocket.host, port: sprocket.port, useTLS: false,
  });
});

nodeTest.after(async () => {
  for (const p of open) p.disconnect();
  await sprocket.stop();
  hookServer.close();
});

function client(presence) {
  const p = new Pusher(KEY, {
    cluster: "mt1", wsHost: sprocket.host, wsPort: sprocket.port, forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) =>
        cb(null, sdk.authorizeChannel(socketId, channelName, presence)),
    },
  });
  open.add(p);
  return p;
}

function subscribed(p, name) {
  return new Promise((resolve, reject) => {
    const ch = p.subscribe(name);
    ch.bind("pusher:subscription_succeeded", () => resolve(ch));
    ch.bind("pusher:subscription_error", reject);
  });
}

/** Every event received so far, flattened. */
const events = () => received.flatMap((r) => r.events);

/** Waits until `pred` holds over the events received, or fails after `ms`. */
async function until(what, pred, ms = 8000) {
  const end = Date.now() + ms;
  while (!pred(events())) {
    if (Date.now() > end) {
      throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(events())}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const has = (name, channel, extra = {}) => (evs) =>
  evs.some((e) => e.name === name && e.channel === channel &&
    Object.entries(extra).every(([k, v]) => e[k] === v));

test("occupied, member_added, client_event and cache_miss arrive signed and batched", async () => {
  const ann = client({ user_id: "ann" });
  const bob = client({ user_id: "bob" });
  await subscribed(ann, "presence-lobby");
  await subscribed(bob, "presence-lobby");
  await until("occupied and two members", (evs) =>
    has("channel_occupied", "presence-lobby")(evs) &&
    has("member_added", "presence-lobby", { user_id: "ann" })(evs) &&
    has("member_added", "presence-lobby", { user_id: "bob" })(evs));
  // One occupation, whoever joined.
  assert.equal(events().filter((e) => e.name === "channel_occupied" && e.channel === "presence-lobby").length, 1);

  const lobby = ann.channel("presence-lobby");
  lobby.trigger("client-wave", { hi: 1 });
  await until("client_event", has("client_event", "presence-lobby", {
    event: "client-wave", socket_id: ann.connection.socket_id, user_id: "ann",
  }));
  const wave = events().find((e) => e.name === "client_event");
  assert.deepEqual(JSON.parse(wave.data), { hi: 1 });

  ann.subscribe("cache-nothing-yet");
  await until("cache_miss", has("cache_miss", "cache-nothing-yet"));

  assert.ok(received.every((r) => r.valid), "every webhook verifies with the SDK");
  assert.ok(received.every((r) => r.path === "/hooks"));
  assert.ok(received.some((r) => r.events.length >= 2), "events of one moment share a request");
});

test("leaving is debounced: a quick return sends nothing, a real leave sends member_removed and vacated", async () => {
  const carl = client({ user_id: "carl" });
  await subscribed(carl, "presence-debounce");
  await until("carl added", has("member_added", "presence-debounce", { user_id: "carl" }));
  // A reload: gone and back within a second.
  carl.disconnect();
  open.delete(carl);
  await new Promise((r) => setTimeout(r, 300));
  const again = client({ user_id: "carl" });
  await subscribed(again, "presence-debounce");
  await new Promise((r) => setTimeout(r, 4500));
  const about = events().filter((e) => e.channel === "presence-debounce");
  assert.deepEqual(about.map((e) => e.name), ["channel_occupied", "member_added"],
    "the reload sent webhooks");

  const left = Date.now();
  again.disconnect();
  open.delete(again);
  await until("removed and vacated", (evs) =>
    has("member_removed", "presence-debounce", { user_id: "carl" })(evs) &&
    has("channel_vacated", "presence-debounce")(evs));
  const waited = Date.now() - left;
  assert.ok(waited >= 2900, `sent after ${waited} ms, before the 3 s debounce`);
});

test("a failing endpoint gets the same webhook again until it takes it", async () => {
  failNext.push(500, 503);
  const before = received.length;
  const p = client();
  await subscribed(p, "retried-channel");
  await until("the third attempt", () =>
    received.slice(before).filter((r) => r.events.some((e) => e.channel === "retried-channel")).length >= 3);
  const attempts = received.slice(before).filter((r) => r.events.some((e) => e.channel === "retried-channel"));
  assert.deepEqual(attempts.map((r) => r.status).slice(0, 3), [500, 503, 200]);
  assert.ok(attempts.every((r) => r.valid));
  // The same body each time.
  assert.deepEqual(attempts[0].events, attempts[2].events);
});
