// Drives headless Chromium against sprocket's /echo with permessage-deflate.
// Serves the page from a local HTTP server (Chromium blocks ws://127.0.0.1
// from about:blank), then checks the negotiated extension and every echo.
'use strict';
const http = require('http');
const { chromium } = require('playwright-core');

const WS_URL = `ws://127.0.0.1:${process.env.WS_PORT}/echo`;

// Runs in the page: returns what it saw, or throws.
async function exchange(url) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  let waiter = null;
  ws.onmessage = (e) => {
    inbox.push(e.data);
    if (waiter) { waiter(); waiter = null; }
  };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('ws error')); });
  const next = async () => {
    while (inbox.length === 0) await new Promise((r) => { waiter = r; });
    return inbox.shift();
  };
  const rows = [];
  for (let i = 0; i < 200; i++) rows.push({ id: i, topic: 'prices', value: i * 3.5, note: 'κόσμε ☃' });
  const texts = ['hi', JSON.stringify(rows), 'ünïcödé '.repeat(5000)];
  for (const t of texts) {
    ws.send(t);
    const got = await next();
    if (got !== t) throw new Error(`text echo differs (length ${t.length})`);
  }
  const bin = new Uint8Array(30000);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) % 13;
  ws.send(bin);
  const back = new Uint8Array(await next());
  if (back.length !== bin.length || back.some((b, i) => b !== bin[i])) throw new Error('binary echo differs');
  const extensions = ws.extensions;
  await new Promise((r) => { ws.onclose = r; ws.close(1000, 'done'); });
  return { extensions, messages: texts.length + 1 };
}

async function main() {
  const page = '<!doctype html><title>sprocket deflate</title><p>sprocket</p>';
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const pageUrl = `http://127.0.0.1:${server.address().port}/`;
  // A fresh profile per run.
  const context = await chromium.launchPersistentContext(process.env.PROFILE_DIR, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    const tab = await context.newPage();
    await tab.goto(pageUrl);
    const result = await tab.evaluate(exchange, WS_URL);
    console.error(`browser: ${result.messages} messages echoed; extensions: ${result.extensions}`);
    if (!result.extensions.startsWith('permessage-deflate')) {
      throw new Error(`extension not negotiated: "${result.extensions}"`);
    }
  } finally {
    await context.close();
    server.close();
  }
}

main().catch((e) => { console.error(`browser: ${e.stack || e}`); process.exit(1); });
