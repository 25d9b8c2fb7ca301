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

function ev(string $type, ?string $content = null): string
{
    return $content === null ? "$type\r\n" : $type . ' ' . dechex(strlen($content)) . "\r\n$content\r\n";
}

function parse_events(string $body): array
{
    $out = [];
    $at = 0;
    while ($at < strlen($body)) {
        $eol = strpos($body, "\r\n", $at);
        $line = substr($body, $at, $eol - $at);
        $at = $eol + 2;
        $sp = strpos($line, ' ');
        if ($sp === false) {
            $out[] = [$line, null];
            continue;
        }
        $len = hexdec(substr($line, $sp + 1));
        $out[] = [substr($line, 0, $sp), substr($body, $at, $len)];
        $at += $len + 2;
    }
    return $out;
}

$headers = array_change_key_case(getallheaders(), CASE_LOWER);
$cid = $headers['connection-id'] ?? '?';
$body = file_get_contents('php://input');
$out = '';
$status = 200;
foreach (parse_events($body) as [$type, $content]) {
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
            $out .= ev('OPEN');
            $out .= ev('TEXT', 'c:' . json_encode(['type' => 'subscribe', 'channel' => $channel]));
            $out .= ev('TEXT', ($bare ? '' : 'm:') . json_encode(['meta' => (object) $meta, 'cid' => $cid]));
            if ($bare) {
                $out .= ev('TEXT', 'no prefix needed');
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
                $out .= ev('CLOSE', pack('n', 4000) . 'bye');
            } elseif (str_starts_with($content, 'sub:')) {
                $out .= ev('TEXT', 'c:' . json_encode(['type' => 'subscribe', 'channel' => substr($content, 4)]));
                $out .= ev('TEXT', 'm:subscribed');
            } elseif (str_starts_with($content, 'unsub:')) {
                $out .= ev('TEXT', 'c:' . json_encode(['type' => 'unsubscribe', 'channel' => substr($content, 6)]));
                $out .= ev('TEXT', 'm:unsubscribed');
            } elseif ($content === 'raw') {
                // Unprefixed under grip: dropped by the proxy.
                $out .= ev('TEXT', 'dropped');
                $out .= ev('TEXT', 'm:after');
            } elseif ($content === 'detach') {
                $out .= ev('TEXT', 'm:detached');
                $out .= ev('TEXT', 'c:{"type":"detach"}');
            } else {
                $out .= ev('TEXT', 'm:echo:' . $content);
            }
            break;
        case 'CLOSE':
        case 'DISCONNECT':
            $code = $content !== null && strlen($content) >= 2 ? unpack('n', $content)[1] : '-';
            file_put_contents(getenv('GRIP_LOG'), "$cid $type $code\n", FILE_APPEND | LOCK_EX);
            if ($type === 'CLOSE') {
                $out .= ev('CLOSE', $content);
            }
            break;
    }
}
header('Content-Type: application/websocket-events');
echo $out;
