// Peer: uWebSockets.js (npm package `uwebsockets`, prebuilt addon) on one
// thread. /echo echoes, /chat relays to all other /chat clients (a topic
// publish from the sender's socket skips the sender), GET /health answers 200.
// Usage: node uws-server.js PORT [CERT.pem KEY.pem]
// With a certificate and key: uWS.SSLApp (TLS, BoringSSL inside the addon).
'use strict';
const uWS = require('uwebsockets');

const port = Number(process.argv[2] || 9001);
// Same limits as sprocket's defaults: 16 MiB messages, 16 MiB of unsent
// output per connection (uWS drops sends past maxBackpressure: keep it high so
// loss is never hidden), no idle timeout, no compression.
const common = {
  compression: uWS.DISABLED,
  maxPayloadLength: 16 << 20,
  maxBackpressure: 16 << 20,
  idleTimeout: 0,
};

const [cert, key] = process.argv.slice(3, 5);
const app = cert && key
  ? uWS.SSLApp({ cert_file_name: cert, key_file_name: key })
  : uWS.App();
app
  .ws('/echo', {
    ...common,
    message: (ws, msg, isBinary) => { ws.send(msg, isBinary); },
  })
  .ws('/chat', {
    ...common,
    open: (ws) => { ws.subscribe('chat'); },
    message: (ws, msg, isBinary) => { ws.publish('chat', msg, isBinary); },
  })
  .get('/health', (res) => { res.end('ok\n'); })
  .listen('127.0.0.1', port, (token) => {
    if (!token) { console.error(`uws: cannot listen on ${port}`); process.exit(1); }
  });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
