<?php
// A PHP app pushing to sprocket, exactly as the seeds write it (php-zmq):
// a persistent PUSH socket, connect, send. The messages are what
// tests/zmtp_interop.rs expects, in order.
//
//   php tests/zmq/push.php PORT
$port = (int) $argv[1];

$ctx = new ZMQContext();
$s = $ctx->getSocket(ZMQ::SOCKET_PUSH, 'pusher');
$s->connect("tcp://127.0.0.1:$port");

$s->send('{"topic":"news","event":"hello","n":1}');
$s->sendmulti(['news', '{"n":2}', 'third part']);
$s->send('{"blob":"' . str_repeat('0123456789', 30000) . '"}'); // 300 KB: a long frame
$s->send('');
$s->send('{"topic":"news","n":5,"text":"é ✓"}');
// No close, no sleep: PHP's shutdown flushes the queue (linger is infinite).
