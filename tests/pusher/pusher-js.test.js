// sprocket's Pusher protocol against the real clients: pusher-js 8.6.0 (its
// Node build) and Laravel Echo 2.5.0 in the browser's place, authorised and
// triggered by the real Node server SDK (npm pusher 5.3.4), as a Laravel app
// would. Each test opens its own clients on one sprocket started for the
// file with --pusher-app.
"use strict";

const nodeTest = require("node:test");
const assert = require("node:assert/strict");
const Pusher = require("pusher-js");
const PusherServer = require("pusher");
const { startSprocket } = require("./lib/sprocket");

// PUSHER_LOG=1: pusher-js logs every event it sends and receives.
Pusher.logToConsole = Boolean(process.env.PUSHER_LOG);

const APP = "4242";
const KEY = "app-key";
const SECRET = "app-secret";

let sprocket;
let sdk;
const open = new Set();

// Every test is bounded: a lost event fails it rather than hanging the run.
const test = (name, fn) => nodeTest(name, { timeout: 15000 }, fn);
nodeTest.before(async () => {
  sprocket = await startSprocket(["--pusher-app", `${APP}:${KEY}:${SECRET}`]);
  sdk = new PusherServer({
    appId: APP, key: KEY, secret: SECRET, host: sprocket.host, port: sprocket.port, useTLS: false,
  });
});

nodeTest.afterEach(() => {
  for (const p of open) p.disconnect();
  open.clear();
});

nodeTest.after(async () => {
  await sprocket.stop();
});

/** A pusher-js client; its authoriser is the SDK, with `presence` member data and `user`. */
function client({ presence, user, key = KEY, authorize } = {}) {
  const p = new Pusher(key, {
    cluster: "mt1",
    wsHost: sprocket.host,
    wsPort: sprocket.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) =>
        cb(null, authorize ? authorize(socketId, channelName)
          : sdk.authorizeChannel(socketId, channelName, presence)),
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => cb(null, sdk.authenticateUser(socketId, user)),
    },
  });
  open.add(p);
  return p;
}

/** Resolves with the first `event` on `target` (a channel, the connection, a user), or fails after `ms`. */
function next(target, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    const handler = (data) => {
      clearTimeout(timer);
      target.unbind(event, handler);
      resolve(data);
    };
    target.bind(event, handler);
  });
}

/** Whether `event` arrives on `target` within `ms` (for what must not). */
function arrives(target, event, ms = 300) {
  return next(target, event, ms).then(() => true, () => false);
}

async function connected(p) {
  if (p.connection.state !== "connected") await next(p.connection, "connected");
  return p;
}

async function subscribed(p, name) {
  const ch = p.subscribe(name);
  await next(ch, "pusher:subscription_succeeded");
  return ch;
}

test("connects with a socket id and answers pings", async () => {
  const p = await connected(client());
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  // pusher-js pings after activity_timeout; ask for one at once.
  const pong = new Promise((resolve) => {
    const ws = p.connection.connection.transport.socket;
    ws.addEventListener("message", (m) => {
      if (JSON.parse(m.data).event === "pusher:pong") resolve();
    });
  });
  p.connection.connection.send_event("pusher:ping", {});
  await pong;
});

test("an unknown app key gets pusher:error 4001 and no connection", async () => {
  const p = client({ key: "no-such-key" });
  const err = await next(p.connection, "error");
  assert.equal(err.error.data.code, 4001);
  await new Promise((r) => setTimeout(r, 200));
  assert.notEqual(p.connection.state, "connected");
});

test("public channel: a trigger from the SDK arrives, toOthers() skips the sender", async () => {
  const a = await connected(client());
  const b = await connected(client());
  const chA = await subscribed(a, "orders");
  const chB = await subscribed(b, "orders");
  let got = next(chA, "shipped");
  await sdk.trigger("orders", "shipped", { id: 1, note: "a, b & c" });
  assert.deepEqual(await got, { id: 1, note: "a, b & c" });
  const toB = next(chB, "paid");
  const toA = arrives(chA, "paid");
  await sdk.trigger("orders", "paid", { id: 2 }, { socket_id: a.connection.socket_id });
  assert.deepEqual(await toB, { id: 2 });
  assert.equal(await toA, false, "the excluded socket got the event");
});

test("private channel: the SDK's signature subscribes; a bad one is a channel-scoped 401", async () => {
  const p = await connected(client());
  const ch = await subscribed(p, "private-orders.1");
  const got = next(ch, "updated");
  await sdk.trigger("private-orders.1", "updated", { ok: true });
  assert.deepEqual(await got, { ok: true });

  const bad = await connected(client({
    authorize: (socketId, name) => ({ auth: `${KEY}:${"0".repeat(64)}` }),
  }));
  const denied = bad.subscribe("private-orders.1");
  const err = await next(denied, "pusher:subscription_error");
  assert.equal(err.status, 401);
  assert.equal(err.type, "AuthError");
  assert.equal(bad.connection.state, "connected", "a bad signature must not end the connection");
});

test("client events: to the other subscribers only, on private channels only", async () => {
  const a = await connected(client());
  const b = await connected(client());
  const chA = await subscribed(a, "private-chat");
  const chB = await subscribed(b, "private-chat");
  const toB = next(chB, "client-typing");
  const toA = arrives(chA, "client-typing");
  assert.equal(chA.trigger("client-typing", { name: "Ann" }), true);
  assert.deepEqual(await toB, { name: "Ann" });
  assert.equal(await toA, false, "the sender got its own client event");

  const pub = await subscribed(a, "news");
  const err = next(a.connection, "error");
  pub.trigger("client-x", {});
  assert.match((await err).data.message, /private and presence/);
});

test("presence: members per user, added on a user's first socket, removed after the last", async () => {
  const ann1 = await connected(client({ presence: { user_id: "ann", user_info: { name: "Ann" } } }));
  const room = await subscribed(ann1, "presence-room");
  assert.equal(room.members.count, 1);
  assert.deepEqual(room.members.me, { id: "ann", info: { name: "Ann" } });

  // Ann's second tab: no member_added, still one member.
  const added = arrives(room, "pusher:member_added");
  const ann2 = await connected(client({ presence: { user_id: "ann", user_info: { name: "Ann" } } }));
  const room2 = await subscribed(ann2, "presence-room");
  assert.equal(await added, false);
  assert.equal(room2.members.count, 1);

  const bob = await connected(client({ presence: { user_id: 7, user_info: { name: "Bob" } } }));
  const joined = next(room, "pusher:member_added");
  const roomBob = await subscribed(bob, "presence-room");
  assert.deepEqual(await joined, { id: "7", info: { name: "Bob" } });
  assert.equal(roomBob.members.count, 2);

  // The HTTP API sees both users.
  const users = await (await sdk.get({ path: "/channels/presence-room/users" })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ["7", "ann"]);
  const info = await (await sdk.get({ path: "/channels/presence-room", params: { info: "user_count,subscription_count" } })).json();
  assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 3 });

  // Ann closes one tab: nobody leaves. Then the other: Ann leaves.
  const left = next(roomBob, "pusher:member_removed");
  ann1.disconnect();
  open.delete(ann1);
  assert.equal(await arrives(roomBob, "pusher:member_removed", 300), false);
  ann2.disconnect();
  open.delete(ann2);
  assert.deepEqual(await left, { id: "ann", info: { name: "Ann" } });
});

test("cache channels: the last event is replayed to a new subscriber, or cache_miss", async () => {
  await sdk.trigger("cache-prices", "price", { eur: 7 });
  const p = await connected(client());
  const ch = p.subscribe("cache-prices");
  assert.deepEqual(await next(ch, "price"), { eur: 7 });
  const empty = p.subscribe("cache-empty");
  await next(empty, "pusher:cache_miss");
});

test("user sign-in: sendToUser reaches the user, terminate closes their connections", async () => {
  const p = await connected(client({ user: { id: "u42", name: "Ann" } }));
  p.signin();
  // Signed in: pusher-js keeps the user data and subscribes to
  // #server-to-user-u42.
  const serverToUser = new Promise((resolve) => {
    const poll = setInterval(() => {
      const ch = p.user.serverToUserChannel;
      if (p.user.user_data && ch && ch.subscribed) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });
  await serverToUser;
  assert.deepEqual(p.user.user_data, { id: "u42", name: "Ann" });
  const got = next(p.user, "nudge");
  await sdk.sendToUser("u42", "nudge", { n: 1 });
  assert.deepEqual(await got, { n: 1 });

  const gone = next(p.connection, "state_change", 3000);
  await sdk.terminateUserConnections("u42");
  const change = await gone;
  assert.notEqual(change.current, "connected");
});

test("the channels list of the HTTP API", async () => {
  const p = await connected(client({ presence: { user_id: "lister" } }));
  await subscribed(p, "listed-1");
  await subscribed(p, "presence-listed");
  const all = await (await sdk.get({ path: "/channels" })).json();
  assert.ok("listed-1" in all.channels, JSON.stringify(all));
  const presence = await (await sdk.get({
    path: "/channels", params: { filter_by_prefix: "presence-", info: "user_count" },
  })).json();
  assert.deepEqual(Object.keys(presence.channels), ["presence-listed"]);
  await assert.rejects(sdk.get({ path: "/channels", params: { info: "user_count" } }),
    (e) => e.status === 400);
});

test("the HTTP API refuses a wrong secret with 401 and a reason", async () => {
  const wrong = new PusherServer({
    appId: APP, key: KEY, secret: "not-it", host: sprocket.host, port: sprocket.port, useTLS: false,
  });
  await assert.rejects(wrong.trigger("orders", "x", {}), (e) => {
    assert.equal(e.status, 401);
    assert.match(e.body, /invalid signature/);
    return true;
  });
});

test("Laravel Echo: listen, whisper, join with here/joining/leaving, and .error()", async () => {
  const { default: Echo } = await import("laravel-echo");
  const echoFor = (presence, sign = sdk.authorizeChannel.bind(sdk)) => {
    const echo = new Echo({
      broadcaster: "pusher",
      key: KEY,
      cluster: "mt1",
      wsHost: sprocket.host,
      wsPort: sprocket.port,
      forceTLS: false,
      enabledTransports: ["ws"],
        Pusher,
      authorizer: (channel) => ({
        // As Laravel's /broadcasting/auth: member data for presence only.
        authorize: (socketId, cb) => cb(null, sign(
          socketId, channel.name, channel.name.startsWith("presence-") ? presence : undefined)),
      }),
    });
    open.add(echo.connector.pusher);
    return echo;
  };
  const ann = echoFor({ user_id: "ann", user_info: { name: "Ann" } });
  const bob = echoFor({ user_id: "bob", user_info: { name: "Bob" } });
  await connected(ann.connector.pusher);
  await connected(bob.connector.pusher);

  // channel().listen: Echo prefixes the App\Events namespace.
  const shipped = new Promise((resolve) => ann.channel("orders").listen("OrderShipped", resolve));
  await new Promise((r) => setTimeout(r, 200));
  await sdk.trigger("orders", "App\\Events\\OrderShipped", { id: 9 });
  assert.deepEqual(await shipped, { id: 9 });

  // private().listen and whisper/listenForWhisper.
  const whisper = new Promise((resolve) => bob.private("chat.1").listenForWhisper("typing", resolve));
  const annChat = ann.private("chat.1");
  await new Promise((r) => setTimeout(r, 300));
  annChat.whisper("typing", { name: "Ann" });
  assert.deepEqual(await whisper, { name: "Ann" });

  // join(): here, joining, leaving.
  const here = new Promise((resolve) => ann.join("room.1").here(resolve));
  assert.deepEqual((await here).map((m) => m.name), ["Ann"]);
  const joining = new Promise((resolve) => ann.join("room.1").joining(resolve));
  const leaving = new Promise((resolve) => ann.join("room.1").leaving(resolve));
  const bobHere = new Promise((resolve) => bob.join("room.1").here(resolve));
  assert.deepEqual((await bobHere).map((m) => m.name).sort(), ["Ann", "Bob"]);
  assert.deepEqual(await joining, { name: "Bob" });
  bob.leave("room.1");
  assert.deepEqual(await leaving, { name: "Bob" });

  // .error(): a refused authorisation.
  const refused = echoFor(undefined, () => ({ auth: `${KEY}:${"f".repeat(64)}` }));
  await connected(refused.connector.pusher);
  const error = await new Promise((resolve) => refused.private("secret").error(resolve));
  assert.equal(error.status, 401);
});

test("private-encrypted channels: relayed unread, decrypted by pusher-js; client events refused", async () => {
  // The master key stays with the app (the SDK): it derives each
  // channel's key, hands it to subscribers as the authorisation's
  // shared_secret, and encrypts what it triggers. sprocket sees ciphertext.
  const masterKey = Buffer.alloc(32, 7).toString("base64");
  const e2e = new PusherServer({
    appId: APP, key: KEY, secret: SECRET, host: sprocket.host, port: sprocket.port, useTLS: false,
    encryptionMasterKeyBase64: masterKey,
  });
  const sign = (socketId, name) => e2e.authorizeChannel(socketId, name);
  const name = "private-encrypted-ledger.1";
  assert.ok(sign("1.1", name).shared_secret, "the SDK gives no shared_secret");
  const a = await connected(client({ authorize: sign }));
  const b = await connected(client({ authorize: sign }));
  const chA = await subscribed(a, name);
  const chB = await subscribed(b, name);

  // What travels on b's socket: an encrypted payload, not the secret.
  const raw = [];
  b.connection.connection.transport.socket.addEventListener("message", (m) => raw.push(m.data));
  const got = next(chA, "balance");
  await e2e.trigger(name, "balance", { eur: 1234, note: "top secret" });
  assert.deepEqual(await got, { eur: 1234, note: "top secret" });
  await new Promise((r) => setTimeout(r, 100));
  const wire = raw.map((m) => JSON.parse(m)).find((m) => m.event === "balance");
  assert.ok(wire, `b's socket saw no balance event: ${raw}`);
  const payload = JSON.parse(wire.data);
  assert.ok(payload.nonce && payload.ciphertext, wire.data);
  assert.ok(!wire.data.includes("top secret"), "plaintext on the wire");

  // Client events: pusher-js refuses to send them on an encrypted
  // channel; sent anyway, the server refuses them and relays nothing.
  assert.throws(() => chA.trigger("client-x", { n: 1 }), /not currently supported for encrypted channels/);
  const refused = next(a.connection, "error");
  a.send_event("client-x", { n: 2 }, name);
  assert.match((await refused).data.message, /private and presence/);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!raw.some((m) => m.includes("client-x")), `relayed to b: ${raw}`);
  assert.equal(a.connection.state, "connected");
});

test("under --pusher-path-prefix, pusher-js connects with wsPath and only there", async () => {
  const prefixed = await startSprocket([
    "--pusher-app", `${APP}:${KEY}:${SECRET}`, "--pusher-path-prefix", "/ws",
  ]);
  const at = (wsPath) => {
    const p = new Pusher(KEY, {
      cluster: "mt1", wsHost: prefixed.host, wsPort: prefixed.port, wsPath,
      forceTLS: false, enabledTransports: ["ws"],
    });
    open.add(p);
    return p;
  };
  try {
    const p = at("/ws");
    const news = p.subscribe("news");
    await next(news, "pusher:subscription_succeeded");
    assert.match(p.connection.socket_id, /^\d+\.\d+$/);
    // Without the prefix nothing answers at /app/KEY.
    const lost = at("");
    assert.equal(await arrives(lost.connection, "connected", 1000), false);
  } finally {
    await prefixed.stop();
  }
});
