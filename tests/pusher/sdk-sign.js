// Drives npm `pusher` (the Node server SDK) for tests/pusher_sdk.rs: what
// the SDK signs, and whether it accepts what sprocket signs.
// Usage: node sdk-sign.js '{"port":N,"appId":..,"key":..,"secret":..,
//                          "webhook":{"body":..,"signature":..}}'
// Prints one JSON object per line: {"step":NAME, ...}. HTTP calls go to
// 127.0.0.1:port, where the Rust test records them and answers 200 {}.
'use strict';
const Pusher = require('pusher');

const cfg = JSON.parse(process.argv[2]);
const pusher = new Pusher({
  appId: cfg.appId,
  key: cfg.key,
  secret: cfg.secret,
  host: '127.0.0.1',
  port: cfg.port,
  useTLS: false,
});
const out = (step, fields) => console.log(JSON.stringify({ step, ...fields }));

(async () => {
  out('private', pusher.authorizeChannel('1234.5678', 'private-orders.1'));
  out('presence', pusher.authorizeChannel('1234.5678', 'presence-room.1', {
    user_id: 7, user_info: { name: 'Ann' },
  }));
  out('user', pusher.authenticateUser('1234.5678', { id: '7', name: 'Ann' }));
  out('webhook', {
    valid: pusher.webhook({
      headers: {
        'content-type': 'application/json',
        'x-pusher-key': cfg.key,
        'x-pusher-signature': cfg.webhook.signature,
      },
      rawBody: cfg.webhook.body,
    }).isValid(),
    tampered: pusher.webhook({
      headers: {
        'content-type': 'application/json',
        'x-pusher-key': cfg.key,
        'x-pusher-signature': cfg.webhook.signature,
      },
      rawBody: cfg.webhook.body + ' ',
    }).isValid(),
  });
  // The HTTP API, in order; the test answers each.
  await pusher.trigger(['private-orders.1', 'orders'], 'App\\Events\\OrderShipped',
    { id: 1, note: 'a, b & c' }, { socket_id: '1234.5678', info: 'subscription_count' });
  await pusher.triggerBatch([
    { channel: 'a', name: 'one', data: { n: 1 } },
    { channel: 'b', name: 'two', data: 'text' },
  ]);
  await pusher.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
  await pusher.terminateUserConnections('7');
  out('done', {});
})().catch((e) => { console.error(e); process.exit(1); });
