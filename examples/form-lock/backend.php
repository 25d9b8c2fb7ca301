<?php
// The form-locking app of the seeds, with its logic in PHP. Serve it with
//
//   SPROCKET_PUBLISH_URL=http://127.0.0.1:8081/publish SPROCKET_PUBLISH_SECRET=... \
//   php -S 127.0.0.1:8000 examples/form-lock/backend.php
//
// and point sprocket at it: --rpc-backend http://127.0.0.1:8000/rpc
// --rpc-prefix form- (with --session-store and --session-user-key, so
// that every call says which user makes it). It answers two procedures:
//
//   form-lock   [form]  -> {"form", "locked_by"}   or CALLERROR urn:form:error:locked
//   form-unlock [form]  -> {"form", "locked_by": null} or CALLERROR urn:form:error:not-yours
//
// Lock state is PHP's, in a JSON file under flock (a database table in a
// real app). Every change is pushed to the form's topic urn:form:<form>
// through sprocket's POST /publish, so every page showing the form sees
// the lock live. GET / serves that page.

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/' || $path === '/index.html') {
    readfile(__DIR__ . '/page.html');
    return;
}
if ($path === '/login') {
    // The app's own sign-in, reduced to its effect: the user id in the
    // PHP session that sprocket reads (--session-user-key user_id).
    session_start();
    $_SESSION['user_id'] = (int) ($_GET['user'] ?? 0);
    session_write_close();
    header('Location: /');
    http_response_code(303);
    return;
}

function reply(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body);
}

/** Runs $change on the lock table under an exclusive lock; returns its result. */
function with_locks(callable $change)
{
    $file = getenv('FORM_LOCK_FILE') ?: sys_get_temp_dir() . '/sprocket-form-locks.json';
    $fp = fopen($file, 'c+');
    flock($fp, LOCK_EX);
    $locks = json_decode(stream_get_contents($fp) ?: '{}', true) ?: [];
    [$locks, $result] = $change($locks);
    ftruncate($fp, 0);
    rewind($fp);
    fwrite($fp, json_encode($locks));
    fflush($fp);
    flock($fp, LOCK_UN);
    fclose($fp);
    return $result;
}

/** Tells every page showing $form what changed (sprocket's POST /publish). */
function push(string $form, array $data): void
{
    $url = getenv('SPROCKET_PUBLISH_URL');
    if (!$url) {
        return;
    }
    $ctx = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => 'Authorization: Bearer ' . getenv('SPROCKET_PUBLISH_SECRET') . "\r\n"
            . "Content-Type: application/json\r\n",
        'content' => json_encode(['topic' => "urn:form:$form", 'data' => $data]),
        'timeout' => 2,
    ]]);
    @file_get_contents($url, false, $ctx);
}

if ($path !== '/rpc') {
    reply(404, ['error' => 'urn:form:error:not-found', 'desc' => "no endpoint $path"]);
    return;
}
$call = json_decode(file_get_contents('php://input'), true);
$user = $call['user'] ?? null;
$form = $call['args'][0] ?? null;
if ($user === null) {
    reply(403, ['error' => 'urn:form:error:signed-out', 'desc' => 'sign in to lock forms']);
    return;
}
if (!is_string($form) || !preg_match('/^[a-z0-9:_-]{1,64}$/', $form)) {
    reply(400, ['error' => 'urn:form:error:invalid', 'desc' => 'a form name is expected']);
    return;
}
switch ($call['procedure']) {
    case 'form-lock':
        $holder = with_locks(function ($locks) use ($form, $user) {
            $holder = $locks[$form] ?? $user;
            $locks[$form] = $holder;
            return [$locks, $holder];
        });
        if ($holder !== $user) {
            reply(409, ['error' => 'urn:form:error:locked', 'desc' => "locked by user $holder",
                        'details' => ['locked_by' => $holder]]);
            return;
        }
        push($form, ['event' => 'locked', 'form' => $form, 'locked_by' => $user]);
        reply(200, ['form' => $form, 'locked_by' => $user]);
        break;
    case 'form-unlock':
        $was = with_locks(function ($locks) use ($form, $user) {
            $was = $locks[$form] ?? null;
            if ($was === $user) {
                unset($locks[$form]);
            }
            return [$locks, $was];
        });
        if ($was !== null && $was !== $user) {
            reply(409, ['error' => 'urn:form:error:not-yours', 'desc' => "locked by user $was"]);
            return;
        }
        push($form, ['event' => 'unlocked', 'form' => $form, 'locked_by' => null]);
        reply(200, ['form' => $form, 'locked_by' => null]);
        break;
    default:
        reply(404, ['error' => 'urn:form:error:no-such-procedure', 'desc' => $call['procedure']]);
}
