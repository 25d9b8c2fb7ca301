// Starts the sprocket binary for the Pusher tests: `--listen 127.0.0.1:0`
// and the given arguments; resolves once it logs its address. Every server
// started is killed when the test process exits, as a last resort.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "../../..");
const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Resolves to { host, port, log(), stop() }. */
function startSprocket(args = [], { timeoutMs = 10000 } = {}) {
  const bin = process.env.SPROCKET_BIN || path.join(ROOT, "target/release/sprocket");
  if (!fs.existsSync(bin)) {
    throw new Error(`sprocket binary not found: ${bin} (cargo build --release, or set SPROCKET_BIN)`);
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
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sprocket did not report its address within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`sprocket exited early (${code ?? signal}):\n${log}`));
    });
    child.stderr.setEncoding("utf8");
    let settled = false;
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /listening on wss?:\/\/([\d.]+):(\d+)/.exec(log);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        host: m[1],
        port: Number(m[2]),
        log: () => log,
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

module.exports = { startSprocket };
