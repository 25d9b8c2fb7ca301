// Shared by every tests/browser/*.test.js: starts a sprocket binary on a free
// loopback port and launches Debian's headless Chromium through playwright-core.
// Everything started here is stopped by the returned handles, and killed on
// process exit as a last resort.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "../../..");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/**
 * Starts `$SPROCKET_BIN` (default target/release/sprocket) with
 * `--listen 127.0.0.1:0` and `args`; resolves once it logs its address.
 * Returns { addr, url (http://addr), wsUrl (ws://addr), log(), stop() }.
 */
function startSprocket(args = [], { timeoutMs = 10000 } = {}) {
  const bin = process.env.SPROCKET_BIN || path.join(ROOT, "target/release/sprocket");
  if (!fs.existsSync(bin)) {
    throw new Error(`sprocket binary not found: ${bin} (build it or set SPROCKET_BIN)`);
  }
  const child = spawn(bin, ["--listen", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" },
  });
  children.add(child);
  let log = "";
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  let settled = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sprocket did not report its address within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${e.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`sprocket exited early (${code ?? signal}):\n${log}`));
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /listening on ws:\/\/(\S+)/.exec(log);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      const addr = m[1];
      resolve({
        addr,
        url: `http://${addr}`,
        wsUrl: `ws://${addr}`,
        log: () => log,
        // SIGTERM (clean shutdown), SIGKILL after 5 s.
        async stop() {
          if (!children.has(child)) return exited;
          child.kill("SIGTERM");
          const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
          const status = await exited;
          clearTimeout(kill);
          return status;
        },
      });
    });
  });
}

/**
 * Launches headless Chromium with a fresh temporary profile. Returns
 * { context, newPage(url), close() }; newPage records the page's console
 * errors and uncaught exceptions in page.problems.
 */
async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "sprocket-chromium-"));
  let context;
  try {
    // Playwright passes the profile as --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30000,
    });
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  context.setDefaultTimeout(5000);
  // A persistent context opens with one blank page; tests open their own.
  for (const page of context.pages()) await page.close();
  return {
    context,
    async newPage(url) {
      const page = await context.newPage();
      page.problems = [];
      page.on("pageerror", (e) => page.problems.push(`uncaught: ${e.message}`));
      page.on("console", (msg) => {
        if (msg.type() === "error") page.problems.push(`console.error: ${msg.text()}`);
      });
      if (url) await page.goto(url);
      return page;
    },
    async close() {
      try {
        await context.close();
      } finally {
        fs.rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

module.exports = { startSprocket, launchBrowser, CHROMIUM_ARGS };
