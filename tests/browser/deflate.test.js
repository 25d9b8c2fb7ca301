// permessage-deflate with a real browser: headless Chromium always offers
// the extension; sprocket's /echo must negotiate it and both directions must
// carry compressed messages, with every echo intact.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startSprocket, launchBrowser } = require("./lib/harness");

let server, browser;

before(async () => {
  // Debug logging: the server reports per connection how many messages
  // went each way compressed.
  process.env.RUST_LOG = "sprocket=debug";
  server = await startSprocket();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// Runs in the page; returns what it saw, or throws.
async function exchange(url) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [];
  let waiter = null;
  ws.onmessage = (e) => {
    inbox.push(e.data);
    if (waiter) { waiter(); waiter = null; }
  };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error("ws error")); });
  const next = async () => {
    while (inbox.length === 0) await new Promise((r) => { waiter = r; });
    return inbox.shift();
  };
  const rows = [];
  for (let i = 0; i < 200; i++) rows.push({ id: i, topic: "prices", value: i * 3.5, note: "κόσμε ☃" });
  const texts = ["hi", JSON.stringify(rows), "ünïcödé ".repeat(5000)];
  for (const t of texts) {
    ws.send(t);
    const got = await next();
    if (got !== t) throw new Error(`text echo differs (length ${t.length})`);
  }
  const bin = new Uint8Array(30000);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) % 13;
  ws.send(bin);
  const back = new Uint8Array(await next());
  if (back.length !== bin.length || back.some((b, i) => b !== bin[i])) throw new Error("binary echo differs");
  const extensions = ws.extensions;
  await new Promise((r) => { ws.onclose = r; ws.close(1000, "done"); });
  return { extensions, messages: texts.length + 1 };
}

test("Chromium and sprocket exchange compressed messages", async () => {
  const page = await browser.newPage(server.url + "/");
  const result = await page.evaluate(exchange, server.wsUrl + "/echo");
  assert.equal(result.messages, 4);
  assert.match(result.extensions, /^permessage-deflate/, "negotiated, as the browser sees it");
  // The server's own account, logged when the connection closed.
  let line;
  for (let i = 0; i < 100 && !line; i++) {
    line = /permessage-deflate: (\d+) compressed messages in, (\d+) out/.exec(server.log());
    if (!line) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(line, `no close summary in the server log:\n${server.log()}`);
  assert.ok(Number(line[1]) > 0, "the browser sent compressed messages");
  assert.ok(Number(line[2]) > 0, "the server sent compressed messages");
  assert.match(server.log(), /open at \/echo \(permessage-deflate/);
});
