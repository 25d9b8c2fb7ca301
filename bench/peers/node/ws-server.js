// Peer: Node `ws` on one thread. /echo echoes, /chat relays to all other
// /chat clients, GET /health answers 200.  Usage: node ws-server.js PORT
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 9001);
const opts = { noServer: true, perMessageDeflate: false, maxPayload: 16 << 20 };
const echo = new WebSocketServer(opts);
const chat = new WebSocketServer({ ...opts, clientTracking: true });
const BIN = { binary: true };
const TEXT = { binary: false };

const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/health' ? 200 : 404);
  res.end(req.url === '/health' ? 'ok\n' : '');
});

server.on('upgrade', (req, socket, head) => {
  socket.setNoDelay(true);
  if (req.url === '/echo') {
    echo.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, isBinary ? BIN : TEXT));
    });
  } else if (req.url === '/chat') {
    chat.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => {
        const o = isBinary ? BIN : TEXT;
        for (const c of chat.clients) {
          if (c !== ws && c.readyState === 1) c.send(data, o);
        }
      });
    });
  } else {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  }
});

server.listen(port, '127.0.0.1', 1024);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
