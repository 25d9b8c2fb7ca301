<?php
// Symfony's own Session (Debian's php-symfony-http-foundation, 5.4) over
// NativeFileSessionHandler or RedisSessionHandler, driven by
// tests/php_sessions.rs.
//
//   symfony.php files DIR ACTION ID [KEY]
//   symfony.php redis PORT ACTION ID [KEY]     (prefix sf_s, Symfony's default)
// ACTION: write (user_id 7, cart, a flash) | get KEY (var_export of
// $session->get(KEY)) | flashes (var_export of the flash bag, peeked)

require '/usr/share/php/Symfony/Component/HttpFoundation/autoload.php';

use Symfony\Component\HttpFoundation\Session\Session;
use Symfony\Component\HttpFoundation\Session\Storage\NativeSessionStorage;
use Symfony\Component\HttpFoundation\Session\Storage\Handler\NativeFileSessionHandler;
use Symfony\Component\HttpFoundation\Session\Storage\Handler\RedisSessionHandler;

[$kind, $where, $action, $id] = array_slice($argv, 1, 4);
if ($kind === 'files') {
    $handler = new NativeFileSessionHandler($where);
} else {
    $redis = new Redis();
    $redis->connect('127.0.0.1', (int) $where);
    $handler = new RedisSessionHandler($redis);
}
$storage = new NativeSessionStorage(['use_cookies' => 0, 'cache_limiter' => '', 'use_strict_mode' => 0], $handler);
$storage->setId($id);
$session = new Session($storage);
$session->start();
switch ($action) {
    case 'write':
        $session->set('user_id', 7);
        $session->set('cart', ['apple' => 2, 'pear' => 1]);
        $session->getFlashBag()->add('notice', 'Saved!');
        break;
    case 'get':
        var_export($session->get($argv[5]));
        break;
    case 'flashes':
        var_export($session->getFlashBag()->peekAll());
        break;
}
$session->save();
