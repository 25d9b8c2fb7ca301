// The demo page reconnects by itself: when its server goes away it says
// "offline, retrying in N s" and counts down, and once a server listens
// on the address again the page opens a new WAMP session there, without a
// reload.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { startSprocket, launchBrowser } = require("./lib/harness");

let server, browser;

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

function status(page) {
  return page.evaluate(() => {
    const s = document.getElementById("status");
    return [s.textContent, s.className];
  });
}

test("the demo page shows the countdown while offline and comes back by itself", async () => {
  server = await startSprocket();
  const addr = server.addr;
  browser = await launchBrowser();
  const page = await browser.newPage(server.url + "/");
  const first = await page.evaluate(() => window.demo.ready.then((s) => s.sessionId));
  assert.match((await status(page))[0], /^connected as /);

  // The server stops (close 1001 "server restarting, reconnect now" to
  // every client). The page tries again at once; nobody listens, so that
  // fails, and it backs off.
  const attempts = await page.evaluate(() => window.demo.attempts);
  const exit = await server.stop();
  assert.equal(exit.code, 0, server.log());
  server = null;

  // While nothing listens, attempts fail and the wait grows: the page
  // keeps counting down rather than giving up.
  await page.waitForFunction(
    () => /^offline, retrying in \d+ s \(close code 1006\)$/.test(document.getElementById("status").textContent),
    null,
    { polling: 20, timeout: 5000 },
  );
  assert.equal((await status(page))[1], "closed");
  assert.ok((await page.evaluate(() => window.demo.attempts)) >= attempts + 1);

  // A server on the same address again: the page reconnects, as a new
  // session, and its chat works.
  server = await startSprocket(["--listen", addr]);
  await page.waitForFunction(
    () => window.demo.session !== null && document.getElementById("status").className === "open",
    null,
    { polling: 50, timeout: 20000 },
  );
  const [text] = await status(page);
  const second = await page.evaluate(() => window.demo.session.sessionId);
  assert.notEqual(second, first);
  assert.match(text, new RegExp(`^connected as ${second} to sprocket/`));
  assert.ok((await page.evaluate(() => window.demo.reconnects)) >= 1);
  const echoed = await page.evaluate(() => window.demo.session.call("urn:sprocket:echo", "back"));
  assert.equal(echoed, "back");
  assert.deepEqual(page.problems.filter((p) => !p.includes("WebSocket")), []);
});

test("a restart with a successor on the same port: the page is back at once, with no countdown", async () => {
  if (server) await server.stop();
  server = null;
  const old = await startSprocket(["--reuse-port"]);
  const addr = old.addr;
  const page = await browser.newPage(old.url + "/");
  const first = await page.evaluate(() => window.demo.ready.then((s) => s.sessionId));
  // Watch every status the page shows from now on.
  await page.evaluate(() => {
    window.seen = [];
    new MutationObserver(() => window.seen.push(document.getElementById("status").textContent))
      .observe(document.getElementById("status"), { childList: true, characterData: true, subtree: true });
  });
  const successor = await startSprocket(["--listen", addr, "--reuse-port"]);
  server = successor;
  const stoppedAt = Date.now();
  const exiting = old.stop();
  await page.waitForFunction(
    (first) => window.demo.session !== null && window.demo.session.sessionId !== first
      && document.getElementById("status").className === "open",
    first,
    { polling: 10, timeout: 5000 },
  );
  const took = Date.now() - stoppedAt;
  console.log(`demo page back on the successor ${took} ms after SIGTERM`);
  assert.ok(took < 1000, `back after ${took} ms`);
  assert.equal((await exiting).code, 0, old.log());
  const seen = await page.evaluate(() => window.seen);
  assert.ok(seen.includes("server restarting, reconnecting…"), JSON.stringify(seen));
  assert.ok(!seen.some((s) => s.startsWith("offline")), JSON.stringify(seen));
  assert.equal(await page.evaluate(() => window.demo.session.call("urn:sprocket:echo", "again")), "again");
  assert.deepEqual(page.problems.filter((p) => !p.includes("WebSocket")), []);
});
