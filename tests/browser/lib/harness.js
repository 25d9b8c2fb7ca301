// Shared by every tests/browser/*.test.js: starts a sprocket binary on a free
// loopback port and launches Debian's headless Chromium through playwright-core.
// Everything started here is stopped by the returned handles, and killed on
// process exit as a last resort.
"use strict";

const { execFileSync, spawn } = require("node:child_process");
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
 * Makes a self-signed certificate for 127.0.0.1 and localhost (P-256, two
 * days) with the openssl CLI, in a fresh temporary directory. Returns
 * { dir, cert, key, spki, remove() }: `spki` is the base64 SHA-256 of the
 * certificate's public key, what Chromium's
 * --ignore-certificate-errors-spki-list takes.
 */
function makeCertificate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sprocket-cert-"));
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  const openssl = (args, input) => {
    try {
      return execFileSync("openssl", args, { input, stdio: ["pipe", "pipe", "pipe"] });
    } catch (e) {
      throw new Error(`openssl ${args.join(" ")}: ${e.stderr || e.message}`);
    }
  };
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=sprocket browser test",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
  const pubkey = openssl(["x509", "-in", cert, "-pubkey", "-noout"]);
  const der = openssl(["pkey", "-pubin", "-outform", "der"], pubkey);
  const spki = openssl(["dgst", "-sha256", "-binary"], der).toString("base64");
  return { dir, cert, key, spki, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts `$SPROCKET_BIN` (default target/release/sprocket) with
 * `--listen 127.0.0.1:0` and `args`; resolves once it logs its address.
 * Returns { addr, url (http://addr), wsUrl (ws://addr), log(), stop() }.
 * With `tls` (a makeCertificate() result) it serves TLS (--tls-cert,
 * --tls-key) and url/wsUrl are https:// and wss://.
 */
function startSprocket(args = [], { timeoutMs = 10000, tls = null } = {}) {
  const bin = process.env.SPROCKET_BIN || path.join(ROOT, "target/release/sprocket");
  if (!fs.existsSync(bin)) {
    throw new Error(`sprocket binary not found: ${bin} (build it or set SPROCKET_BIN)`);
  }
  const tlsArgs = tls ? ["--tls-cert", tls.cert, "--tls-key", tls.key] : [];
  const child = spawn(bin, ["--listen", "127.0.0.1:0", ...tlsArgs, ...args], {
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
      const m = (tls ? /listening on wss:\/\/(\S+)/ : /listening on ws:\/\/(\S+)/).exec(log);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      const addr = m[1];
      resolve({
        addr,
        url: `${tls ? "https" : "http"}://${addr}`,
        wsUrl: `${tls ? "wss" : "ws"}://${addr}`,
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
 * errors and uncaught exceptions in page.problems. `trustSpki` (base64
 * SHA-256 public key hashes, as makeCertificate() gives) makes Chromium
 * accept those certificates only, through
 * --ignore-certificate-errors-spki-list.
 */
async function launchBrowser({ trustSpki = [] } = {}) {
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
      args: trustSpki.length
        ? [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${trustSpki.join(",")}`]
        : CHROMIUM_ARGS,
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

module.exports = { startSprocket, launchBrowser, makeCertificate, CHROMIUM_ARGS };
