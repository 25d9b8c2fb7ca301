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

  // The server stops (close 1001 to every client).
  const exit = await server.stop();
  assert.equal(exit.code, 0, server.log());
  server = null;
  await page.waitForFunction(
    () => /^offline, retrying in \d+ s \(close code 1001\)$/.test(document.getElementById("status").textContent),
    null,
    { polling: 20 },
  );
  assert.equal((await status(page))[1], "closed");

  // While nothing listens, attempts fail and the wait grows: the page
  // keeps counting down rather than giving up.
  await page.waitForFunction(
    () => /^offline, retrying in \d+ s \(close code 1006\)$/.test(document.getElementById("status").textContent),
    null,
    { polling: 20, timeout: 5000 },
  );

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
