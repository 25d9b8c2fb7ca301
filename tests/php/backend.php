<?php
// A PHP backend for `php -S 127.0.0.1:PORT backend.php`, as a web app
// would write one: connect authorisation, RPC and subscription decisions
// for sprocket, JSON in and out. Driven by tests/backends.rs.

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$in = json_decode(file_get_contents('php://input'), true);

function answer(int $status, $body): void
{
    http_response_code($status);
    if (is_string($body)) {
        header('Content-Type: text/plain');
        echo $body;
    } else {
        header('Content-Type: application/json');
        echo json_encode($body);
    }
}

switch ($path) {
    case '/auth':
        parse_str($in['query'] ?? '', $q);
        $token = $q['token'] ?? ($in['headers']['x-token'] ?? '');
        switch ($token) {
            case 'good':
                answer(200, ['user' => 'u-7', 'data' => ['role' => 'editor', 'peer' => $in['peer']]]);
                break;
            case 'session':
                // Whoever the PHP session says.
                answer(200, ['user' => $in['user'] ?? 'nobody']);
                break;
            case 'empty':
                http_response_code(204);
                break;
            case 'crash':
                answer(500, "Fatal error: MySQL server has gone away\n");
                break;
            case 'slow':
                sleep(3);
                answer(200, []);
                break;
            case '':
                answer(401, "Unauthorized: a token is required\nmore detail");
                break;
            default:
                answer(403, "Forbidden: bad token $token");
        }
        break;
    case '/rpc':
        switch ($in['procedure']) {
            case 'urn:app:whoami':
                answer(200, [
                    'user' => $in['user'],
                    'data' => $in['data'],
                    'session_id' => $in['session_id'],
                    'args' => $in['args'],
                    'visits' => $in['session']['data']['visits'] ?? null,
                ]);
                break;
            case 'urn:app:cookie':
                // The backend's own session_start() works with --forward-cookies.
                ini_set('session.save_path', $_SERVER['SESSION_DIR'] ?? getenv('SESSION_DIR'));
                session_start(['read_and_close' => true]);
                answer(200, ['php_sees' => $_SESSION['user_id'] ?? null]);
                break;
            case 'urn:app:fail':
                answer(422, ['error' => 'urn:app:error:invalid', 'desc' => 'bad input', 'details' => ['field' => 'x']]);
                break;
            case 'urn:app:crash':
                answer(500, "Fatal error\n");
                break;
            case 'urn:app:slow':
                sleep(3);
                answer(200, 'late');
                break;
            default:
                answer(404, ['error' => 'urn:app:error:no-such-procedure', 'desc' => $in['procedure']]);
        }
        break;
    case '/subscribe':
        if (str_starts_with($in['topic'], 'private:allowed')) {
            http_response_code(204);
        } else {
            answer(403, "Forbidden\n");
        }
        break;
    default:
        answer(404, "no such endpoint\n");
}
