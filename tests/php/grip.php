<?php
// A WebSocket-over-HTTP backend for tests/grip_routes.rs, for `php -S`,
// written as a Pushpin user writes one: parse the events, answer with
// events. What each client message makes it do:
//   fail      -> 500 (the connection's backend fails)
//   slow      -> sleeps 3 s, then echoes
//   nap       -> sleeps 0.5 s, then echoes
//   garble    -> 200 with malformed events
//   bye       -> CLOSE 4000 "bye"
//   sub:NAME  -> subscribes to channel NAME;  unsub:NAME -> unsubscribes
//   raw       -> an unprefixed message, then "m:after"
//   detach    -> detaches the connection
//   anything else -> "echo:" + the message, after the m: prefix
// OPEN: refuses with 403 when the query has refuse=1; else accepts with
// the grip extension, subscribes to ?channel= (default "news"), and sends
// {"meta": {...}} with the Meta-* and Connection-Id headers it got.
// Every CLOSE and DISCONNECT is appended to $GRIP_LOG as one line.

// The events codec is the example's, the very code users copy.
require __DIR__ . '/../../examples/api-over-sockets/websocket-over-http.php';

$headers = array_change_key_case(getallheaders(), CASE_LOWER);
$cid = $headers['connection-id'] ?? '?';
$body = file_get_contents('php://input');
$out = '';
$status = 200;
foreach (wsoh_parse($body) as [$type, $content]) {
    switch ($type) {
        case 'OPEN':
            parse_str($_SERVER['QUERY_STRING'] ?? '', $q);
            if (($q['refuse'] ?? '') === '1') {
                http_response_code(403);
                header('Content-Type: text/plain');
                echo "no entry for you\n";
                exit;
            }
            // ?prefix=none: messages to the client need no prefix.
            $bare = ($q['prefix'] ?? '') === 'none';
            header($bare ? 'Sec-WebSocket-Extensions: grip; message-prefix=""' : 'Sec-WebSocket-Extensions: grip');
            $meta = [];
            foreach ($headers as $k => $v) {
                if (str_starts_with($k, 'meta-')) {
                    $meta[substr($k, 5)] = $v;
                }
            }
            $channel = $q['channel'] ?? 'news';
            $out .= wsoh_event('OPEN');
            $out .= wsoh_event('TEXT', 'c:' . json_encode(['type' => 'subscribe', 'channel' => $channel]));
            $out .= wsoh_event('TEXT', ($bare ? '' : 'm:') . json_encode(['meta' => (object) $meta, 'cid' => $cid]));
            if ($bare) {
                $out .= wsoh_event('TEXT', 'no prefix needed');
            }
            break;
        case 'TEXT':
            if ($content === 'fail') {
                http_response_code(500);
                echo "broken\n";
                exit;
            }
            if ($content === 'garble') {
                header('Content-Type: application/websocket-events');
                echo "TEXT zz\r\nbad";
                exit;
            }
            if ($content === 'slow') {
                sleep(3);
            }
            if ($content === 'nap') {
                usleep(500000);
            }
            if ($content === 'bye') {
                $out .= wsoh_event('CLOSE', pack('n', 4000) . 'bye');
            } elseif (str_starts_with($content, 'sub:')) {
                $out .= wsoh_event('TEXT', 'c:' . json_encode(['type' => 'subscribe', 'channel' => substr($content, 4)]));
                $out .= wsoh_event('TEXT', 'm:subscribed');
            } elseif (str_starts_with($content, 'unsub:')) {
                $out .= wsoh_event('TEXT', 'c:' . json_encode(['type' => 'unsubscribe', 'channel' => substr($content, 6)]));
                $out .= wsoh_event('TEXT', 'm:unsubscribed');
            } elseif ($content === 'raw') {
                // Unprefixed under grip: dropped by the proxy.
                $out .= wsoh_event('TEXT', 'dropped');
                $out .= wsoh_event('TEXT', 'm:after');
            } elseif ($content === 'detach') {
                $out .= wsoh_event('TEXT', 'm:detached');
                $out .= wsoh_event('TEXT', 'c:{"type":"detach"}');
            } else {
                $out .= wsoh_event('TEXT', 'm:echo:' . $content);
            }
            break;
        case 'CLOSE':
        case 'DISCONNECT':
            $code = $content !== null && strlen($content) >= 2 ? unpack('n', $content)[1] : '-';
            file_put_contents(getenv('GRIP_LOG'), "$cid $type $code\n", FILE_APPEND | LOCK_EX);
            if ($type === 'CLOSE') {
                $out .= wsoh_event('CLOSE', $content);
            }
            break;
    }
}
header('Content-Type: application/websocket-events');
echo $out;
