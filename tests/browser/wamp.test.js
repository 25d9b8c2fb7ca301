// The demo page sprocket serves at / and its WAMP v1 client, in headless
// Chromium: two pages are two WAMP sessions on the binary's broker.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startSprocket, launchBrowser } = require("./lib/harness");

const QUIET_MS = 150;
let server, browser, a, b;

/** Opens the demo page and waits for its WAMP session (WELCOME). */
async function openDemo() {
  const page = await browser.newPage(server.url + "/");
  page.sessionId = await page.evaluate(() => window.demo.ready.then((s) => s.sessionId));
  return page;
}

/**
 * Waits until `fn` is true in the page. Polls on a timer: a page in a
 * background tab gets no animation frames, Playwright's default.
 */
function until(page, fn, arg) {
  return page.waitForFunction(fn, arg, { polling: 20 });
}

// POST /publish is served (on the public port: no --admin-listen here)
// when the server has a secret.
const PUBLISH_SECRET = `browser-${process.pid}-${Date.now()}`;

before(async () => {
  process.env.SPROCKET_PUBLISH_SECRET = PUBLISH_SECRET;
  server = await startSprocket();
  browser = await launchBrowser();
  a = await openDemo();
  b = await openDemo();
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    const status = await server.stop();
    assert.equal(status.code, 0, `sprocket exits 0 on SIGTERM:\n${server.log()}`);
  }
});

test("each page gets its own session and shows it", async () => {
  assert.match(a.sessionId, /^[0-9a-f]{32}$/);
  assert.notEqual(a.sessionId, b.sessionId);
  for (const page of [a, b]) {
    const [text, cls] = await page.evaluate(() => {
      const status = document.getElementById("status");
      return [status.textContent, status.className];
    });
    assert.match(text, new RegExp(`^connected as ${page.sessionId} to sprocket/\\d`));
    assert.equal(cls, "open");
  }
});

test("chat through the page's form reaches both pages; 'exclude me' skips the sender", async () => {
  const messages = (page) => page.locator("#chat-log li:not(.system)");
  const count = (page, n) => until(page, (n) => document.querySelectorAll("#chat-log li:not(.system)").length >= n, n);
  // Typing and clicking go to the page in front (background tabs are throttled).
  const say = async (page, text) => {
    await page.bringToFront();
    await page.fill("#chat-text", text);
    await page.click("#chat-send");
  };
  await a.bringToFront();
  await a.fill("#chat-name", "alice");
  await b.bringToFront();
  await b.fill("#chat-name", "bob");
  await say(a, "hello from alice");
  for (const page of [a, b]) {
    await count(page, 1);
    assert.deepEqual(await messages(page).allTextContents(), ["alice: hello from alice"]);
  }
  assert.equal(await a.locator("#chat-log li.me").count(), 1, "own message marked");
  assert.equal(await b.locator("#chat-log li.other").count(), 1);

  await a.bringToFront();
  await a.check("#chat-exclude-me");
  await say(a, "only bob sees this");
  await count(b, 2);
  // Then a message everybody gets (not sent before b had alice's: sessions
  // are separate sockets). Once alice has it, she would have had her own.
  await say(b, "bob here");
  await count(a, 2);
  await count(b, 3);
  await a.waitForTimeout(QUIET_MS);
  assert.deepEqual(await messages(a).allTextContents(), [
    "alice: hello from alice",
    "bob: bob here",
  ]);
  assert.deepEqual(await messages(b).allTextContents(), [
    "alice: hello from alice",
    "alice: only bob sees this",
    "bob: bob here",
  ]);
  // Markup in a message is shown as text, not interpreted.
  await say(b, "<img src=x onerror=alert(1)>");
  await count(a, 3);
  assert.equal(await a.locator("#chat-log img").count(), 0);
  assert.equal(await messages(a).nth(2).textContent(), "bob: <img src=x onerror=alert(1)>");
});

test("the page's RPC buttons show results and errors", async () => {
  const result = a.locator("#rpc-result");
  await a.bringToFront();
  const press = async (args, button, expected, cls) => {
    await a.fill("#rpc-args", args);
    await a.evaluate(() => { document.getElementById("rpc-result").textContent = ""; });
    await a.click(button);
    await until(a, () => document.getElementById("rpc-result").textContent !== "");
    assert.equal(await result.textContent(), expected);
    assert.equal(await result.getAttribute("class"), cls);
  };
  await press("40, 2", "#rpc-add", "urn:sprocket:add → 42", "ok");
  await press('"hi", {"a": [1]}', "#rpc-echo", 'urn:sprocket:echo → ["hi",{"a":[1]}]', "ok");
  await press("not json", "#rpc-echo", 'urn:sprocket:echo → "not json"', "ok");
  await press("1, \"two\"", "#rpc-add",
    "urn:sprocket:add failed: urn:sprocket:error:invalid-argument: arguments must be numbers", "error");
  await press("", "#rpc-nope",
    "urn:sprocket:nope failed: urn:sprocket:error:no-such-procedure: no procedure urn:sprocket:nope", "error");
});

test("client API: prefix, call results and CALLERRORs", async () => {
  const got = await a.evaluate(async () => {
    const s = window.demo.session;
    s.prefix("sp", "urn:sprocket:");
    const fail = (p) => p.then((v) => ({ ok: v }), (e) => ({
      name: e.name, uri: e.uri, desc: e.desc, details: e.details,
    }));
    return {
      echo: await s.call("urn:sprocket:echo", { deep: [1, null, "x"] }),
      echoMany: await s.call("sp:echo", 1, "two"),
      add: await s.call("sp:add", 1, 2.5, -0.5),
      addNothing: await s.call("sp:add"),
      resolved: s.resolve("sp:add"),
      notCurie: s.resolve("http://example.com/a:b"),
      bad: await fail(s.call("sp:add", "x")),
      missing: await fail(s.call("sp:missing", 1)),
    };
  });
  assert.deepEqual(got, {
    echo: { deep: [1, null, "x"] },
    echoMany: [1, "two"],
    add: 3,
    addNothing: 0,
    resolved: "urn:sprocket:add",
    notCurie: "http://example.com/a:b",
    bad: {
      name: "WampError",
      uri: "urn:sprocket:error:invalid-argument",
      desc: "arguments must be numbers",
      details: undefined,
    },
    missing: {
      name: "WampError",
      uri: "urn:sprocket:error:no-such-procedure",
      desc: "no procedure urn:sprocket:missing",
      details: undefined,
    },
  });
});

test("client API: every publish form, then unsubscribe", async () => {
  const TOPIC = "http://example.com/browser/forms";
  const MARK = "http://example.com/browser/marker";
  // a subscribes with a CURIE, b with the full URI. Each page records the
  // events its callbacks get, the markers, and every raw EVENT for TOPIC
  // that reaches its socket (to see what the server sends, not what the
  // client lets through).
  for (const [page, topic] of [[a, "ex:forms"], [b, TOPIC]]) {
    await page.evaluate(({ topic, TOPIC, MARK }) => {
      const s = window.demo.session;
      window.got = [];
      window.marks = 0;
      window.raw = 0;
      s._ws.addEventListener("message", (e) => {
        const msg = JSON.parse(e.data);
        if (msg[0] === 8 && msg[1] === TOPIC) window.raw += 1;
      });
      s.prefix("ex", "http://example.com/browser/");
      window.onEvent = (event, uri) => window.got.push([uri, event]);
      s.subscribe(topic, window.onEvent);
      s.subscribe(MARK, () => { window.marks += 1; });
      return s.call("urn:sprocket:echo", "sync");
    }, { topic, TOPIC, MARK });
  }
  const ev = (e) => [TOPIC, e];
  let marks = 0;
  // a publishes with `args`, then a marker to everybody: once a page has
  // the marker, it would have had the event.
  const publish = async (args, expectA, expectB) => {
    await a.evaluate(({ TOPIC, MARK, args }) => {
      window.demo.session.publish(TOPIC, ...args);
      window.demo.session.publish(MARK, null);
    }, { TOPIC, MARK, args });
    marks += 1;
    for (const page of [a, b]) {
      await until(page, (n) => window.marks >= n, marks);
    }
    const label = `publish(${JSON.stringify(args)})`;
    assert.deepEqual(await a.evaluate(() => window.got.splice(0)), expectA, `a after ${label}`);
    assert.deepEqual(await b.evaluate(() => window.got.splice(0)), expectB, `b after ${label}`);
  };
  const [ida, idb] = [a.sessionId, b.sessionId];
  await publish([{ n: 1 }], [ev({ n: 1 })], [ev({ n: 1 })]); // no excludeMe: the publisher too
  await publish([2, false], [ev(2)], [ev(2)]);
  await publish([3, true], [], [ev(3)]); // excludeMe
  await publish([4, [idb]], [ev(4)], []); // exclude list
  await publish([5, [ida]], [], [ev(5)]);
  await publish([6, [], [idb]], [], [ev(6)]); // eligible list
  await publish([7, [], [ida, idb]], [ev(7)], [ev(7)]);
  await publish([8, [], []], [ev(8)], [ev(8)]); // empty eligible = everybody (Ratchet)
  await publish([9, [ida], []], [], [ev(9)]);
  await publish([10, [idb], [idb]], [], []); // excluded beats eligible
  await publish([11, null, [ida]], [ev(11)], []); // the client sends exclude = []
  await publish([undefined], [ev(null)], [ev(null)]);
  assert.equal(await b.evaluate(() => window.raw), 9, "EVENTs that reached b's socket");

  // A second callback keeps b subscribed when the first is removed.
  await b.evaluate((TOPIC) => {
    const s = window.demo.session;
    s.subscribe(TOPIC, (e) => window.got.push(["second", e]));
    s.unsubscribe(TOPIC, window.onEvent);
  }, TOPIC);
  await publish(["still"], [ev("still")], [["second", "still"]]);
  // Unsubscribing the topic: the server sends b nothing more.
  await b.evaluate((TOPIC) => {
    window.demo.session.unsubscribe(TOPIC);
    return window.demo.session.call("urn:sprocket:echo", "sync");
  }, TOPIC);
  await publish(["gone"], [ev("gone")], []);
  await a.waitForTimeout(QUIET_MS);
  assert.equal(await b.evaluate(() => window.raw), 10, "no EVENT after UNSUBSCRIBE");
  assert.deepEqual(await b.evaluate(() => window.got), []);
  // And subscribing again works.
  await b.evaluate((TOPIC) => {
    window.demo.session.subscribe(TOPIC, window.onEvent);
    return window.demo.session.call("urn:sprocket:echo", "sync");
  }, TOPIC);
  await publish(["back"], [ev("back")], [ev("back")]);
});

test("a push from the backend (POST /publish) reaches the pages' subscriptions", async () => {
  const TOPIC = "urn:sprocket:browser:pushed";
  for (const page of [a, b]) {
    await page.evaluate((TOPIC) => {
      window.pushed = [];
      window.demo.session.subscribe(TOPIC, (event) => window.pushed.push(event));
      return window.demo.session.call("urn:sprocket:echo", "sync");
    }, TOPIC);
  }
  const res = await fetch(server.url + "/publish", {
    method: "POST",
    headers: { Authorization: `Bearer ${PUBLISH_SECRET}`, "Content-Type": "application/json" },
    body: JSON.stringify([
      { topic: TOPIC, data: { from: "php", items: [1, 2] } },
      { topic: TOPIC, data: "only b", exclude: [a.sessionId] },
    ]),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { delivered: 3 });
  await until(b, () => window.pushed.length >= 2);
  assert.deepEqual(await b.evaluate(() => window.pushed), [{ from: "php", items: [1, 2] }, "only b"]);
  await a.evaluate(() => window.demo.session.call("urn:sprocket:echo", "sync"));
  assert.deepEqual(await a.evaluate(() => window.pushed), [{ from: "php", items: [1, 2] }]);
});

test("no page logged an error", async () => {
  for (const page of [a, b]) assert.deepEqual(page.problems, []);
});
