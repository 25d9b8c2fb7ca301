<?php
// "Sockets in your API" without a socket server: the API's services answer
// WebSocket messages that a GRIP proxy (Pushpin, or sprocket with
// --grip-route) posts here as WebSocket-over-HTTP. Run it with
//     php -S 127.0.0.1:8000 backend.php
// Nothing is kept in this process between requests: the connection's
// token travels in the proxy's connection meta (Set-Meta-Token, then a
// Meta-Token header on every later request of that connection), posts
// are kept in a file, and new posts reach every connected client through a
// GRIP publish to the channel "posts".
//
// Environment: API_DATA_DIR (default: the system temp dir) and
// GRIP_PUBLISH_URL (e.g. http://127.0.0.1:5561/publish/).

declare(strict_types=1);

require __DIR__ . '/websocket-over-http.php';

const CHANNEL = 'posts';
// The users the token service knows, and the key tokens are signed with:
// a token is "username.signature", checked without any server-side state.
const USERS = ['alice' => 'wonderland', 'bob' => 'builder'];
const TOKEN_KEY = 'api-over-sockets example key';

final class TokenService
{
    public function create(array $data): array
    {
        $user = $data['username'] ?? null;
        $password = $data['password'] ?? null;
        if (!is_string($user) || !is_string($password) || (USERS[$user] ?? null) !== $password) {
            return ['status' => 'error'];
        }
        return ['status' => 'ok', 'data' => ['token' => $user . '.' . $this->sign($user)]];
    }

    /** The user a token names, or null when it is not one of ours. */
    public function user(?string $token): ?string
    {
        if ($token === null || !str_contains($token, '.')) {
            return null;
        }
        [$user, $signature] = explode('.', $token, 2);
        return hash_equals($this->sign($user), $signature) ? $user : null;
    }

    private function sign(string $user): string
    {
        return hash_hmac('sha256', $user, TOKEN_KEY);
    }
}

final class PostService
{
    private string $file;

    public function __construct(string $dir)
    {
        $this->file = rtrim($dir, '/') . '/api-over-sockets-posts.json';
    }

    public function index(?string $user, array $data): array
    {
        if ($user === null) {
            return ['status' => 'error'];
        }
        $page = max(1, (int) ($data['page'] ?? 1));
        $limit = max(1, min(100, (int) ($data['limit'] ?? 10)));
        $posts = $this->locked(fn (array $posts) => [$posts, $posts]);
        return ['status' => 'ok', 'data' => array_slice($posts, ($page - 1) * $limit, $limit)];
    }

    public function create(?string $user, array $data): array
    {
        $body = $data['body'] ?? null;
        if ($user === null || !is_string($body) || $body === '') {
            return ['status' => 'error'];
        }
        $post = $this->locked(function (array $posts) use ($user, $body) {
            $post = ['id' => count($posts) + 1, 'author' => $user, 'body' => $body];
            $posts[] = $post;
            return [$posts, $post];
        });
        return ['status' => 'ok', 'data' => $post];
    }

    /** Runs `$change(posts) -> [new posts, result]` under a file lock. */
    private function locked(callable $change)
    {
        $fp = fopen($this->file, 'c+');
        flock($fp, LOCK_EX);
        $posts = json_decode((string) stream_get_contents($fp), true) ?: [];
        [$new, $result] = $change($posts);
        if ($new !== $posts) {
            ftruncate($fp, 0);
            rewind($fp);
            fwrite($fp, json_encode($new, JSON_UNESCAPED_SLASHES));
            fflush($fp);
        }
        flock($fp, LOCK_UN);
        fclose($fp);
        return $result;
    }
}

/** Answers one client message; returns [reply, extra headers]. */
function handle(string $text, TokenService $tokens, PostService $posts): array
{
    $message = json_decode($text, true);
    $type = is_array($message) && is_string($message['type'] ?? null) ? $message['type'] : 'unknown';
    $data = is_array($message) && is_array($message['data'] ?? null) ? $message['data'] : [];
    $user = $tokens->user(wsoh_meta('Token'));

    switch ($type) {
        case 'tokens.create':
            $response = $tokens->create($data);
            if ($response['status'] !== 'ok') {
                return [['type' => $type, 'status' => 'error'], []];
            }
            // The proxy keeps it for this connection, not us.
            return [['type' => $type, 'status' => 'ok'], ['Set-Meta-Token' => $response['data']['token']]];
        case 'posts.index':
            $response = $posts->index($user, $data);
            if ($response['status'] !== 'ok') {
                return [['type' => $type, 'status' => 'error'], []];
            }
            return [['type' => $type, 'status' => 'ok', 'data' => $response['data']], []];
        case 'posts.create':
            $response = $posts->create($user, $data);
            if ($response['status'] !== 'ok') {
                return [['type' => $type, 'status' => 'error'], []];
            }
            $announce = json_encode(['type' => 'posts.created', 'data' => $response['data']], JSON_UNESCAPED_SLASHES);
            $url = getenv('GRIP_PUBLISH_URL');
            $published = is_string($url) && $url !== '' && grip_publish($url, CHANNEL, $announce) === 200;
            return [['type' => $type, 'status' => $published ? 'ok' : 'error', 'data' => $response['data']], []];
        default:
            return [['type' => $type, 'status' => 'error'], []];
    }
}

$dir = getenv('API_DATA_DIR') ?: sys_get_temp_dir();
$tokens = new TokenService();
$posts = new PostService($dir);

try {
    $events = wsoh_request_events();
} catch (UnexpectedValueException $e) {
    http_response_code(400);
    header('Content-Type: text/plain');
    echo 'bad events: ', $e->getMessage(), "\n";
    return;
}

$out = [];
$headers = [];
foreach ($events as [$type, $content]) {
    switch ($type) {
        case 'OPEN':
            // Accept, turn the grip extension on and join the channel.
            $headers['Sec-WebSocket-Extensions'] = 'grip';
            $out[] = wsoh_event('OPEN');
            $out[] = wsoh_event('TEXT', grip_control(['type' => 'subscribe', 'channel' => CHANNEL]));
            break;
        case 'TEXT':
            [$reply, $set] = handle((string) $content, $tokens, $posts);
            $headers = $set + $headers;
            $out[] = wsoh_event('TEXT', grip_message(json_encode($reply, JSON_UNESCAPED_SLASHES)));
            break;
        case 'BINARY':
            $out[] = wsoh_event('TEXT', grip_message('{"type":"unknown","status":"error"}'));
            break;
        case 'PING':
            // The proxy leaves pongs to us.
            $out[] = wsoh_event('PONG', $content);
            break;
        case 'CLOSE':
            // Agree to close, with the client's code.
            $out[] = wsoh_event('CLOSE', $content);
            break;
        case 'DISCONNECT':
            break;
    }
}
wsoh_respond($out, $headers);
