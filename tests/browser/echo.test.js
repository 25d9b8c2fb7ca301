// A page with Laravel Echo in headless Chromium: the browser builds of
// pusher-js 8.6.0 and laravel-echo 2.5.0 (from this directory's
// package.json), served with the page by a small HTTP server of the test at
// http://127.0.0.1, which also plays Laravel's /broadcasting/auth (signing
// with npm pusher, the Node server SDK). Two pages (two users) join a
// presence channel and listen on a private one; the SDK triggers; the test
// reads what each page saw.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const PusherServer = require("pusher");
const { startSprocket, launchBrowser } = require("./lib/harness");

const APP = "4242";
const KEY = "app-key";
const SECRET = "app-secret";
const MODULES = path.join(__dirname, "node_modules");
const USERS = { ann: { name: "Ann" }, bob: { name: "Bob" } };

let server, browser, site;

after(async () => {
  if (browser) await browser.close();
  if (site) await new Promise((r) => site.close(r));
  if (server) await server.stop();
});

/** The page: Echo as a Laravel app's bootstrap.js sets it up. */
function page(wsHost, wsPort) {
  return `<!doctype html>
<meta charset="utf-8">
<title>Echo on sprocket</title>
<script src="/js/pusher.js"></script>
<script src="/js/echo.iife.js"></script>
<script>
  const user = new URLSearchParams(location.search).get("user");
  window.seen = { here: null, joining: [], leaving: [], shipped: [], ready: false, errors: [] };
  window.echo = new Echo.default({
    broadcaster: "pusher",
    key: ${JSON.stringify(KEY)},
    cluster: "mt1",
    wsHost: ${JSON.stringify(wsHost)},
    wsPort: ${wsPort},
    forceTLS: false,
    enabledTransports: ["ws"],
    authorizer: (channel) => ({
      authorize: (socketId, callback) => {
        fetch("/broadcasting/auth", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-User": user },
          body: JSON.stringify({ socket_id: socketId, channel_name: channel.name }),
        })
          .then((r) => (r.ok ? r.json() : Promise.reject(new Error("auth " + r.status))))
          .then((data) => callback(null, data), (e) => callback(e, null));
      },
    }),
  });
  echo.join("room.1")
    .here((members) => { seen.here = members; })
    .joining((m) => seen.joining.push(m))
    .leaving((m) => seen.leaving.push(m))
    .error((e) => seen.errors.push(e));
  echo.private("orders." + user)
    .subscribed(() => { seen.ready = true; })
    .listen("OrderShipped", (e) => seen.shipped.push(e))
    .error((e) => seen.errors.push(e));
</script>
<p>Echo on sprocket</p>
`;
}

/** The app's side: the page, the two bundles, and /broadcasting/auth. */
function startSite(sdk, wsHost, wsPort) {
  const files = {
    "/js/pusher.js": path.join(MODULES, "pusher-js/dist/web/pusher.js"),
    "/js/echo.iife.js": path.join(MODULES, "laravel-echo/dist/echo.iife.js"),
  };
  for (const f of Object.values(files)) {
    if (!fs.existsSync(f)) throw new Error(`${f} missing: npm ci in tests/browser`);
  }
  const auths = [];
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      return res.end(page(wsHost, wsPort));
    }
    if (req.method === "GET" && files[url.pathname]) {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      return fs.createReadStream(files[url.pathname]).pipe(res);
    }
    if (req.method === "POST" && url.pathname === "/broadcasting/auth") {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        // As Laravel's channel routes: a user may listen on their own
        // orders channel, and joins the room with their info.
        const user = req.headers["x-user"];
        const { socket_id: socketId, channel_name: channel } = JSON.parse(body);
        auths.push(channel);
        let answer;
        if (channel === `presence-room.1` && USERS[user]) {
          answer = sdk.authorizeChannel(socketId, channel, { user_id: user, user_info: USERS[user] });
        } else if (channel === `private-orders.${user}`) {
          answer = sdk.authorizeChannel(socketId, channel);
        }
        res.writeHead(answer ? 200 : 403, { "Content-Type": "application/json" });
        res.end(JSON.stringify(answer || { message: "This action is unauthorized." }));
      });
      return;
    }
    // Chromium asks for /favicon.ico; a 404 would be a console error.
    res.writeHead(url.pathname === "/favicon.ico" ? 204 : 404);
    res.end();
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve({ srv, auths })));
}

test("an Echo page joins a presence channel and gets a private event triggered by the SDK", async () => {
  server = await startSprocket(["--pusher-app", `${APP}:${KEY}:${SECRET}`]);
  const [wsHost, wsPort] = server.addr.split(":");
  const sdk = new PusherServer({
    appId: APP, key: KEY, secret: SECRET, host: wsHost, port: Number(wsPort), useTLS: false,
  });
  const started = await startSite(sdk, wsHost, Number(wsPort));
  site = started.srv;
  const siteUrl = `http://127.0.0.1:${site.address().port}`;
  browser = await launchBrowser();

  const ready = (p) => p.waitForFunction(() => window.seen.here !== null && window.seen.ready,
    null, { polling: 20, timeout: 10000 });
  const ann = await browser.newPage(`${siteUrl}/?user=ann`);
  await ready(ann);
  assert.deepEqual(await ann.evaluate(() => window.seen.here), [{ name: "Ann" }]);

  const bob = await browser.newPage(`${siteUrl}/?user=bob`);
  await ready(bob);
  const bobHere = await bob.evaluate(() => window.seen.here);
  assert.deepEqual(bobHere.map((m) => m.name).sort(), ["Ann", "Bob"]);
  await ann.waitForFunction(() => window.seen.joining.length === 1, null, { polling: 20 });
  assert.deepEqual(await ann.evaluate(() => window.seen.joining), [{ name: "Bob" }]);

  // The server's view agrees: two users in the room.
  const users = await (await sdk.get({ path: "/channels/presence-room.1/users" })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ["ann", "bob"]);

  // The app broadcasts OrderShipped to Ann's private channel only.
  await sdk.trigger("private-orders.ann", "App\\Events\\OrderShipped", { id: 7, total: "12.50" });
  await ann.waitForFunction(() => window.seen.shipped.length === 1, null, { polling: 20 });
  assert.deepEqual(await ann.evaluate(() => window.seen.shipped), [{ id: 7, total: "12.50" }]);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(await bob.evaluate(() => window.seen.shipped), []);

  // Bob closes his tab: Ann's page sees him leave.
  await bob.close();
  await ann.waitForFunction(() => window.seen.leaving.length === 1, null, { polling: 20 });
  assert.deepEqual(await ann.evaluate(() => window.seen.leaving), [{ name: "Bob" }]);

  assert.deepEqual(started.auths.sort(),
    ["presence-room.1", "presence-room.1", "private-orders.ann", "private-orders.bob"]);
  for (const p of [ann]) {
    assert.deepEqual(await p.evaluate(() => window.seen.errors), []);
    assert.deepEqual(p.problems, []);
  }
});
