<?php
// An edge-case backend for WebSocket-over-HTTP (tests/grip.rs runs it with
// `php -S` behind Pushpin and behind sprocket and compares what clients see).
// Text commands (anything else is echoed back; over 1000 bytes, its length
// and SHA-1 are):
//   big:N            answer with an N-byte text (a repeating pattern)
//   fail             answer 500
//   sleep:S          sleep S seconds, then answer "slept"
//   close:CODE:WHY   answer with CLOSE CODE WHY
//   sub:CH / unsub:CH  subscribe to / unsubscribe from channel CH
//   keepalive:TEXT:SECONDS  ask the proxy to send TEXT when idle
//   count            answer "count=N": N counts this connection's requests,
//                    kept in the connection meta (Set-Meta-Count/Meta-Count)
//   quiet            from now on, answer a client's close with nothing
//                    (kept in the meta too: Set-Meta-Quiet)
// With ?refuse in the URL, OPEN is answered 403 with a body of its own.
// With ?headers in the URL, the OPEN answer carries X-Backend: edge.php
// and Sec-WebSocket-Protocol: the client's first offer (does the 101 show
// them?).
// Binary messages are echoed byte for byte. Pings are answered with pongs,
// a client's close with a close of the same code, reason "ack:REASON".

declare(strict_types=1);

require __DIR__ . '/../../examples/api-over-sockets/websocket-over-http.php';

function pattern(int $n): string
{
    $unit = '0123456789abcdefghijklmnopqrstuvwxyz';
    return substr(str_repeat($unit, intdiv($n, strlen($unit)) + 1), 0, $n);
}

try {
    $events = wsoh_request_events();
} catch (UnexpectedValueException $e) {
    http_response_code(400);
    header('Content-Type: text/plain');
    echo 'bad events: ', $e->getMessage(), "\n";
    return;
}

// Every request counts, OPEN included.
$count = (int) (wsoh_meta('Count') ?? '0') + 1;
$headers = ['Set-Meta-Count' => (string) $count];
$out = [];
foreach ($events as [$type, $content]) {
    switch ($type) {
        case 'OPEN':
            if (isset($_GET['refuse'])) {
                http_response_code(403);
                header('Content-Type: text/plain');
                header('X-Backend: edge.php');
                echo "no entry without a ticket\n";
                return;
            }
            $headers['Sec-WebSocket-Extensions'] = 'grip';
            if (isset($_GET['headers'])) {
                $headers['X-Backend'] = 'edge.php';
                $offer = $_SERVER['HTTP_SEC_WEBSOCKET_PROTOCOL'] ?? '';
                if ($offer !== '') {
                    $headers['Sec-WebSocket-Protocol'] = trim(explode(',', $offer)[0]);
                }
            }
            $out[] = wsoh_event('OPEN');
            break;
        case 'BINARY':
            $out[] = wsoh_event('BINARY', grip_message((string) $content));
            break;
        case 'PING':
            $out[] = wsoh_event('PONG', $content);
            break;
        case 'CLOSE':
            if (wsoh_meta('Quiet') === 'yes') {
                break;
            }
            // Agree, with the client's code and a reason of our own (so a
            // test sees whose close the client got).
            [$code, $reason] = wsoh_close_code($content);
            $out[] = wsoh_event('CLOSE', wsoh_close_payload($code ?? 1000, "ack:$reason"));
            break;
        case 'TEXT':
            $text = (string) $content;
            $parts = explode(':', $text, 3);
            switch ($parts[0]) {
                case 'big':
                    $out[] = wsoh_event('TEXT', grip_message(pattern((int) ($parts[1] ?? 0))));
                    break;
                case 'fail':
                    http_response_code(500);
                    header('Content-Type: text/plain');
                    echo "failing on purpose\n";
                    return;
                case 'sleep':
                    sleep((int) ($parts[1] ?? 1));
                    $out[] = wsoh_event('TEXT', grip_message('slept'));
                    break;
                case 'close':
                    $out[] = wsoh_event('CLOSE', wsoh_close_payload((int) ($parts[1] ?? 1000), $parts[2] ?? ''));
                    break;
                case 'sub':
                case 'unsub':
                    $op = $parts[0] === 'sub' ? 'subscribe' : 'unsubscribe';
                    $channel = $parts[1] ?? '';
                    $out[] = wsoh_event('TEXT', grip_control(['type' => $op, 'channel' => $channel]));
                    $out[] = wsoh_event('TEXT', grip_message("{$op}d:$channel"));
                    break;
                case 'keepalive':
                    $out[] = wsoh_event('TEXT', grip_control([
                        'type' => 'keep-alive',
                        'content' => $parts[1] ?? '',
                        'timeout' => (int) ($parts[2] ?? 1),
                    ]));
                    $out[] = wsoh_event('TEXT', grip_message('keepalive set'));
                    break;
                case 'quiet':
                    $headers['Set-Meta-Quiet'] = 'yes';
                    $out[] = wsoh_event('TEXT', grip_message('quiet'));
                    break;
                case 'count':
                    $out[] = wsoh_event('TEXT', grip_message("count=$count"));
                    break;
                default:
                    // Long texts get a digest back (Pushpin 1.36 stalls on
                    // a message over 32766 bytes to the client).
                    $echo = strlen($text) > 1000
                        ? sprintf('received %d bytes, sha1 %s', strlen($text), sha1($text))
                        : $text;
                    $out[] = wsoh_event('TEXT', grip_message($echo));
            }
            break;
    }
}
wsoh_respond($out, $headers);
