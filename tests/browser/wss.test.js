// The demo page over https:// and its WAMP session over wss://: sprocket
// with --tls-cert/--tls-key (a self-signed certificate made here with
// openssl), Chromium trusting exactly that certificate's public key
// (--ignore-certificate-errors-spki-list), and a Chromium without it
// refusing the page.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startSprocket, launchBrowser, makeCertificate } = require("./lib/harness");

let cert, server, browser;

before(async () => {
  cert = makeCertificate();
  server = await startSprocket([], { tls: cert });
  browser = await launchBrowser({ trustSpki: [cert.spki] });
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    const status = await server.stop();
    assert.equal(status.code, 0, `sprocket exits 0 on SIGTERM:\n${server.log()}`);
  }
  if (cert) cert.remove();
});

test("the demo page over https:// opens its WAMP session over wss://", async () => {
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const page = await browser.context.newPage();
  page.problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") page.problems.push(`console.error: ${msg.text()}`);
  });
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  const response = await page.goto(server.url + "/");
  assert.equal(response.status(), 200);
  const security = await response.securityDetails();
  assert.ok(security, "the page came over TLS");
  assert.match(security.protocol, /^TLS 1\.[23]$/);
  assert.equal(security.subjectName, "sprocket browser test");

  const sessionId = await page.evaluate(() => window.demo.ready.then((s) => s.sessionId));
  assert.match(sessionId, /^[0-9a-f]{32}$/);
  assert.deepEqual(sockets, [`${server.wsUrl}/wamp`]);
  assert.match(sockets[0], /^wss:\/\//);
  const [text, cls] = await page.evaluate(() => {
    const s = document.getElementById("status");
    return [s.textContent, s.className];
  });
  assert.match(text, new RegExp(`^connected as ${sessionId} to sprocket/\\d`));
  assert.equal(cls, "open");

  // The session works over TLS: an RPC, and a publish that comes back
  // through the broker (the page subscribed to its chat topic).
  const got = await page.evaluate(async () => {
    const s = window.demo.session;
    return {
      add: await s.call("urn:sprocket:add", 40, 2),
      echo: await s.call("urn:sprocket:echo", { over: "wss" }),
    };
  });
  assert.deepEqual(got, { add: 42, echo: { over: "wss" } });
  await page.fill("#chat-name", "tls");
  await page.fill("#chat-text", "hello over wss");
  await page.click("#chat-send");
  await page.waitForFunction(
    () => document.querySelectorAll("#chat-log li:not(.system)").length >= 1,
    null,
    { polling: 20 },
  );
  assert.deepEqual(await page.locator("#chat-log li:not(.system)").allTextContents(), [
    "tls: hello over wss",
  ]);
  assert.deepEqual(page.problems, []);

  // sprocket counted the TLS handshakes (the page, the WebSocket, this
  // fetch at least).
  const metrics = await page.evaluate(() => fetch("/metrics").then((r) => r.text()));
  const handshakes = Number(/^sprocket_tls_handshakes_total (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(handshakes >= 2, metrics);
  await page.close();
});

test("a Chromium that does not trust the certificate refuses the page", async () => {
  const stranger = await launchBrowser();
  try {
    const page = await stranger.context.newPage();
    await assert.rejects(page.goto(server.url + "/"), /net::ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await stranger.close();
  }
});
