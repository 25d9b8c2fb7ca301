<?php
// WebSocket-over-HTTP and GRIP for plain PHP (no framework, no composer):
// what a backend behind Pushpin (or sprocket's --grip-route) needs.
//
// Each request is a POST whose body is a list of events, one after the
// other:  TYPE\r\n  or  TYPE <content length in hex>\r\n<content>\r\n
// (OPEN, TEXT, BINARY, PING, PONG, CLOSE, DISCONNECT). The answer is a list
// of events in the same format, with Content-Type application/websocket-events.

declare(strict_types=1);

const WSOH_CONTENT_TYPE = 'application/websocket-events';

/**
 * Parses an events body into a list of [type, content-or-null].
 * Throws on a malformed body.
 */
function wsoh_parse(string $body): array
{
    $events = [];
    $at = 0;
    $len = strlen($body);
    while ($at < $len) {
        $eol = strpos($body, "\r\n", $at);
        if ($eol === false) {
            throw new UnexpectedValueException("event line without CRLF at byte $at");
        }
        $line = substr($body, $at, $eol - $at);
        $at = $eol + 2;
        $space = strpos($line, ' ');
        if ($space === false) {
            $events[] = [$line, null];
            continue;
        }
        $type = substr($line, 0, $space);
        $hex = substr($line, $space + 1);
        if ($hex === '' || !ctype_xdigit($hex)) {
            throw new UnexpectedValueException("bad content length '$hex' for $type");
        }
        $size = hexdec($hex);
        if ($at + $size + 2 > $len || substr($body, $at + $size, 2) !== "\r\n") {
            throw new UnexpectedValueException("$type content runs past the body");
        }
        $events[] = [$type, substr($body, $at, $size)];
        $at += $size + 2;
    }
    return $events;
}

/** One event, encoded. `$content` null: an event without content (OPEN). */
function wsoh_event(string $type, ?string $content = null): string
{
    if ($content === null) {
        return "$type\r\n";
    }
    return $type . ' ' . dechex(strlen($content)) . "\r\n" . $content . "\r\n";
}

/** A CLOSE event's content: the code (2 bytes, big-endian) and reason. */
function wsoh_close_payload(int $code, string $reason = ''): string
{
    return pack('n', $code) . $reason;
}

/** [code, reason] of a CLOSE event's content; [null, ''] when it has none. */
function wsoh_close_code(?string $content): array
{
    if ($content === null || strlen($content) < 2) {
        return [null, ''];
    }
    return [unpack('n', $content)[1], substr($content, 2)];
}

/** With the grip extension on, a message for the client carries `m:`. */
function grip_message(string $text): string
{
    return 'm:' . $text;
}

/** ... and a control message for the proxy carries `c:` and JSON. */
function grip_control(array $message): string
{
    return 'c:' . json_encode($message, JSON_UNESCAPED_SLASHES);
}

/** The request's events (empty for a keep-alive request). */
function wsoh_request_events(): array
{
    return wsoh_parse((string) file_get_contents('php://input'));
}

/** A `Meta-Name` header the proxy sends back after `Set-Meta-Name`. */
function wsoh_meta(string $name): ?string
{
    $key = 'HTTP_META_' . strtoupper(str_replace('-', '_', $name));
    return isset($_SERVER[$key]) ? (string) $_SERVER[$key] : null;
}

/** The Connection-Id the proxy gives every request of one connection. */
function wsoh_connection_id(): ?string
{
    return $_SERVER['HTTP_CONNECTION_ID'] ?? null;
}

/**
 * Sends the answer: `$events` already encoded (strings from wsoh_event),
 * `$headers` name => value (Set-Meta-*, Sec-WebSocket-Extensions, ...).
 * Never send an empty Set-Meta value: Pushpin 1.36 drops the connection.
 */
function wsoh_respond(array $events, array $headers = []): void
{
    header('Content-Type: ' . WSOH_CONTENT_TYPE);
    foreach ($headers as $name => $value) {
        header("$name: $value");
    }
    $body = implode('', $events);
    header('Content-Length: ' . strlen($body));
    echo $body;
}

/**
 * Publishes one WebSocket message to a GRIP channel (Pushpin's
 * `POST /publish/` format). `$binary`: send the bytes as content-bin.
 * Returns the HTTP status (0 when the proxy could not be reached).
 */
function grip_publish(string $url, string $channel, string $content, bool $binary = false): int
{
    $format = $binary ? ['content-bin' => base64_encode($content)] : ['content' => $content];
    $body = json_encode(
        ['items' => [['channel' => $channel, 'formats' => ['ws-message' => $format]]]],
        JSON_UNESCAPED_SLASHES
    );
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => "Content-Type: application/json\r\nContent-Length: " . strlen($body) . "\r\n",
        'content' => $body,
        'timeout' => 5,
        'ignore_errors' => true,
    ]]);
    $answer = @file_get_contents($url, false, $context);
    if ($answer === false || !isset($http_response_header[0])) {
        return 0;
    }
    return (int) (explode(' ', $http_response_header[0])[1] ?? 0);
}
