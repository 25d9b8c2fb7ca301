<?php
// PHP's own session extension, driven from the command line by
// tests/php_sessions.rs. The handler, save path and serializer come in as
// -d ini settings; this script only starts, changes and prints sessions.
//
//   native.php write ID          stores the fixture session
//   native.php dump ID           prints serialize($_SESSION) (references kept)
//   native.php expect ID K JSON  prints what dump will print once K = JSON
//   native.php hold ID K JSON MS holds the session (and its lock) MS ms, sets K
//   native.php get ID K          prints var_export($_SESSION[K])

ini_set('session.use_cookies', '0');
ini_set('session.use_strict_mode', '0');
ini_set('session.cache_limiter', '');

class Account
{
    public $name = 'ann';
    protected $role = 'admin';
    private $secret = "s\0x";
    public $tags = ['a', 'b'];
}

class Token implements Serializable
{
    public $value = 'tok';
    public function serialize() { return $this->value; }
    public function unserialize($data) { $this->value = $data; }
    public function __serialize(): array { return ['v' => $this->value]; }
    public function __unserialize(array $d): void { $this->value = $d['v']; }
}

// Serializable alone (deprecated since PHP 8.1, still written as C:).
class Legacy implements Serializable
{
    public $value = 'old';
    public function serialize() { return "v=" . $this->value; }
    public function unserialize($data) { $this->value = substr($data, 2); }
}

enum Suit: string
{
    case Hearts = 'H';
    case Spades = 'S';
}

function fixture(): void
{
    $account = new Account();
    $_SESSION['user_id'] = 42;
    $_SESSION['visits'] = 1;
    $_SESSION['name'] = 'Zoë';
    $_SESSION['ratio'] = 0.1;
    $_SESSION['big'] = 1.0e25;
    $_SESSION['half'] = 1.5;
    $_SESSION['neg_zero'] = -0.0;
    $_SESSION['inf'] = INF;
    $_SESSION['ninf'] = -INF;
    $_SESSION['nan'] = NAN;
    $_SESSION['max'] = PHP_INT_MAX;
    $_SESSION['min'] = PHP_INT_MIN;
    $_SESSION['flag'] = true;
    $_SESSION['nothing'] = null;
    $_SESSION['empty'] = '';
    $_SESSION['bytes'] = implode('', array_map('chr', range(0, 255)));
    $_SESSION['nested'] = ['a' => ['b' => [1 => 'one', 'x' => 2.5, 7 => []]]];
    $_SESSION['list'] = [1, 2, 3];
    $_SESSION['account'] = $account;
    $_SESSION['same_account'] = $account;
    $_SESSION['alias'] = &$_SESSION['list'];
    $_SESSION['token'] = new Token();
    $_SESSION['legacy'] = new Legacy();
    $_SESSION['suit'] = Suit::Hearts;
}

[$action, $id] = [$argv[1], $argv[2]];
session_id($id);
switch ($action) {
    case 'write':
        session_start();
        $_SESSION = [];
        fixture();
        session_write_close();
        break;
    case 'dump':
        session_start(['read_and_close' => true]);
        echo serialize($_SESSION);
        break;
    case 'expect':
        session_start(['read_and_close' => true]);
        $_SESSION[$argv[3]] = json_decode($argv[4], true);
        echo serialize($_SESSION);
        break;
    case 'hold':
        session_start();
        echo "locked\n";
        flush();
        usleep((int) $argv[5] * 1000);
        $_SESSION[$argv[3]] = json_decode($argv[4], true);
        session_write_close();
        echo "done\n";
        break;
    case 'get':
        session_start(['read_and_close' => true]);
        var_export($_SESSION[$argv[3]] ?? 'MISSING');
        break;
    default:
        fwrite(STDERR, "unknown action $action\n");
        exit(2);
}
