<?php
// The PHP built-in server (php -S) as a backend, used to capture fixtures:
//   php -S 127.0.0.1:PORT tests/http-backend/router.php
// /json answers with a Content-Length; /stream flushes in pieces, so php -S
// sends the body chunked; /nocontent is a 204.
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/json') {
    $body = json_encode(['ok' => true, 'method' => $_SERVER['REQUEST_METHOD'],
        'input' => file_get_contents('php://input')]);
    header('Content-Type: application/json');
    header('Content-Length: ' . strlen($body));
    echo $body;
} elseif ($path === '/stream') {
    header('Content-Type: text/plain');
    foreach (['first ', 'second ', 'third'] as $part) {
        echo $part;
        flush();
    }
} elseif ($path === '/nocontent') {
    http_response_code(204);
} else {
    http_response_code(404);
    echo "not found\n";
}
