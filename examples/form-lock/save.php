<?php
// What the seeds' Doctrine postFlush listener does after an entity is
// saved: push "entity updated" to the form's topic, through ZeroMQ (as
// the seeds wrote it) or Redis.
//
//   php save.php zmq tcp://127.0.0.1:5555 invoice-17
//   php save.php redis 127.0.0.1:6379 invoice-17      (channel sprocket:push)

[$via, $where, $form] = array_slice($argv, 1, 3);
$push = json_encode([
    'topic' => "urn:form:$form",
    'data' => ['event' => 'updated', 'form' => $form, 'at' => time()],
]);
if ($via === 'zmq') {
    $context = new ZMQContext();
    $socket = $context->getSocket(ZMQ::SOCKET_PUSH, 'form-lock');
    $socket->connect($where);
    $socket->send($push);
} else {
    [$host, $port] = explode(':', $where);
    $redis = new Redis();
    $redis->connect($host, (int) $port);
    $redis->publish('sprocket:push', $push);
}
echo "pushed $push\n";
