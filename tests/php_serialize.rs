//! sprocket's PHP session codecs against the real PHP 8.2 CLI: PHP writes
//! and sprocket reads; sprocket writes (as read, after a `set`, after a
//! `remove`) and PHP reads back exactly what it would have had.

use sprocket::session::{Key, Serializer, SessionData, Value, decode, encode, from_json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const PHP: &str = "/usr/bin/php";

/// A directory of its own under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sprocket-php-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a PHP script with arguments; its stdout.
fn php(dir: &Path, script: &str, args: &[&str]) -> Vec<u8> {
    assert!(
        Path::new(PHP).exists(),
        "these tests need the real PHP 8.2 CLI at {PHP} (apt-get install php-cli)"
    );
    let file = dir.join("script.php");
    std::fs::write(&file, script).expect("write script");
    let out = Command::new(PHP)
        .arg(&file)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PHP}: {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "php failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Classes, and the session every test starts from.
const PRELUDE: &str = r#"<?php
error_reporting(E_ALL & ~E_DEPRECATED);
class P { public $a = 1; protected $b = 2; private $c = 3; }
class CS implements Serializable {
    public $d;
    function serialize() { return serialize($this->d); }
    function unserialize($s) { $this->d = unserialize($s); }
}
enum Suit: string { case Hearts = 'H'; case Spades = 'S'; }
function start($handler, $dir) {
    ini_set('session.serialize_handler', $handler);
    ini_set('session.use_cookies', 0);
    ini_set('session.save_path', $dir);
    session_id('sprocket' . str_replace('_', '', $handler));
    session_start();
}
function fill() {
    $o = new stdClass; $o->n = 1;
    $o2 = new stdClass; $o2->m = 2;
    $_SESSION['same'] = [$o2, $o2];
    $cs = new CS; $cs->d = ['p' => $o, 'q' => $o];
    $_SESSION['nested'] = ['a' => [1, 2, ['deep' => true]], 5 => 'five', '-3' => null, 'x' => 1.5];
    $_SESSION['obj'] = new P;
    $_SESSION['cs'] = $cs;
    $_SESSION['suit'] = Suit::Hearts;
    $_SESSION['suits'] = [Suit::Hearts, Suit::Hearts, Suit::Spades];
    $refs = ['y' => 2]; $refs['x'] = &$refs['y'];
    $_SESSION['refs'] = $refs;
    $_SESSION['floats'] = [0.1, 1e25, -0.0, INF, -INF, NAN, 1.5];
    $_SESSION['bin'] = implode('', array_map('chr', range(0, 255)));
    $_SESSION['empty'] = '';
    $_SESSION['big'] = [PHP_INT_MAX, PHP_INT_MIN];
    $_SESSION['after'] = $o;
}
"#;

fn generate(dir: &Path, s: Serializer) -> Vec<u8> {
    let script = format!(
        "{PRELUDE}start($argv[1], $argv[2]); fill(); echo session_encode(); session_abort();"
    );
    php(dir, &script, &[s.name(), dir.to_str().expect("utf-8 path")])
}

/// PHP decodes `bytes` and compares with `fill()` followed by `change`
/// (PHP code): the same `serialize($_SESSION)` (refs included) and the
/// same `var_export`.
fn php_reads_back(dir: &Path, s: Serializer, bytes: &[u8], change: &str) {
    let data = dir.join("written");
    std::fs::write(&data, bytes).expect("write session");
    let script = format!(
        "{PRELUDE}start($argv[1], $argv[2]); fill(); {change}
        $want = serialize($_SESSION); $want_x = var_export($_SESSION, true);
        $_SESSION = [];
        if (!session_decode(file_get_contents($argv[3]))) {{ echo 'decode failed'; exit; }}
        $got = serialize($_SESSION); $got_x = var_export($_SESSION, true);
        session_abort();
        echo $want === $got && $want_x === $got_x ? 'same' : \"want $want\\ngot  $got\";"
    );
    let out = php(
        dir,
        &script,
        &[
            s.name(),
            dir.to_str().expect("utf-8"),
            data.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "same",
        "{s} after `{change}`: {}",
        String::from_utf8_lossy(bytes)
    );
}

fn str(s: &str) -> Value {
    Value::Str(s.as_bytes().to_vec())
}

fn check_values(d: &SessionData) {
    assert_eq!(d.get("nested.a.2.deep"), Some(&Value::Bool(true)));
    assert_eq!(d.get("nested.a.1"), Some(&Value::Int(2)));
    assert_eq!(d.get("nested.5"), Some(&str("five")));
    assert_eq!(d.get("nested.-3"), Some(&Value::Null));
    assert_eq!(d.get("nested.x"), Some(&Value::Float(1.5)));
    let Some(Value::Object(o)) = d.get("obj") else {
        panic!("obj: {:?}", d.get("obj"))
    };
    assert_eq!(o.class, b"P");
    let names: Vec<&Key> = o.props.iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            &Key::Str(b"a".to_vec()),
            &Key::Str(b"\0*\0b".to_vec()),
            &Key::Str(b"\0P\0c".to_vec())
        ]
    );
    assert_eq!(d.get("obj.c"), Some(&Value::Int(3)));
    assert!(matches!(d.get("cs"), Some(Value::Custom { class, .. }) if class == b"CS"));
    let hearts = Value::Enum {
        class: b"Suit".to_vec(),
        case: b"Hearts".to_vec(),
    };
    assert_eq!(d.get("suit"), Some(&hearts));
    // The same enum case again is `r:`, resolved by `get`.
    assert_eq!(d.get("suits.1"), Some(&hearts));
    assert!(matches!(
        d.entries.iter().find(|(k, _)| *k == Key::Str(b"suits".to_vec())),
        Some((_, Value::Array(items))) if matches!(items[1].1, Value::Ref { object: true, .. })
    ));
    assert_eq!(d.get("refs.x"), Some(&Value::Int(2)));
    // The same object twice: `r:` to the first.
    assert_eq!(d.get("same.1.m"), Some(&Value::Int(2)));
    assert!(matches!(d.get("same.1"), Some(Value::Object(o)) if o.class == b"stdClass"));
    // `after` is r: to the stdClass inside the C: payload (its values take
    // slots): `get` leaves it a ref, the JSON view shows it.
    assert!(matches!(
        d.get("after"),
        Some(Value::Ref { object: true, .. })
    ));
    let floats = [
        0.1,
        1e25,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1.5,
    ];
    for (i, want) in floats.iter().enumerate() {
        let Some(Value::Float(got)) = d.get(&format!("floats.{i}")) else {
            panic!("floats.{i}")
        };
        assert_eq!(got.to_bits(), want.to_bits(), "floats.{i}");
    }
    assert_eq!(d.get("bin"), Some(&Value::Str((0..=255).collect())));
    assert_eq!(d.get("empty"), Some(&str("")));
    assert_eq!(d.get("big.0"), Some(&Value::Int(i64::MAX)));
    assert_eq!(d.get("big.1"), Some(&Value::Int(i64::MIN)));
    let json = d.to_json();
    assert_eq!(json["nested"]["a"][2]["deep"], true);
    assert_eq!(json["obj"]["$class"], "P");
    assert_eq!(json["obj"]["c"], 3);
    assert_eq!(json["suits"][1]["$enum"], "Suit:Hearts");
    assert_eq!(json["floats"][3]["$float"], "INF");
    assert_eq!(json["refs"]["x"], 2);
    assert!(json["bin"]["$bytes"].is_string());
    assert_eq!(json["after"]["n"], 1);
    assert_eq!(json["cs"]["$class"], "CS");
}

fn run(s: Serializer) {
    let dir = TempDir::new();
    let bytes = generate(&dir.0, s);
    let d = decode(&bytes, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    check_values(&d);
    // Written back untouched: byte for byte what PHP wrote.
    assert_eq!(encode(&d, s).expect("encodes"), bytes, "{s}");
    php_reads_back(&dir.0, s, &bytes, "");

    // A new key (what an app writes, through the JSON mapping) and a
    // changed one.
    let mut d2 = d.clone();
    let added = serde_json::json!({"k": [1, "two", {"$float": "NAN"}], "7": null});
    d2.set("added", from_json(&added)).expect("set");
    d2.set("nested.a.2.deep", Value::Bool(false)).expect("set");
    php_reads_back(
        &dir.0,
        s,
        &encode(&d2, s).expect("encodes"),
        "$_SESSION['added'] = ['k' => [1, 'two', NAN], 7 => null];
         $_SESSION['nested']['a'][2]['deep'] = false;",
    );

    // Removing values before the refs renumbers them all.
    let mut d3 = d.clone();
    d3.remove("nested").expect("nested was there");
    d3.remove("obj").expect("obj was there");
    php_reads_back(
        &dir.0,
        s,
        &encode(&d3, s).expect("encodes"),
        "unset($_SESSION['nested'], $_SESSION['obj']);",
    );

    // Removing a ref's target: the ref keeps the value.
    let mut d4 = d.clone();
    d4.remove("refs.y").expect("refs.y was there");
    d4.remove("cs").expect("cs was there");
    php_reads_back(
        &dir.0,
        s,
        &encode(&d4, s).expect("encodes"),
        "unset($_SESSION['refs']['y'], $_SESSION['cs']);",
    );
}

#[test]
fn php_format() {
    run(Serializer::Php);
}

#[test]
fn php_serialize_format() {
    run(Serializer::PhpSerialize);
}

#[test]
fn php_binary_format() {
    run(Serializer::PhpBinary);
}

/// Formats in and out: data PHP wrote in one format, written in another,
/// reads the same in PHP.
#[test]
fn across_formats() {
    let dir = TempDir::new();
    let d = decode(
        &generate(&dir.0, Serializer::PhpSerialize),
        Serializer::PhpSerialize,
    )
    .expect("decodes");
    for s in [Serializer::Php, Serializer::PhpBinary] {
        php_reads_back(&dir.0, s, &encode(&d, s).expect("encodes"), "");
    }
}

/// Floats written exactly as PHP's serialize() writes them, for 3000
/// doubles from random bits and the usual suspects.
#[test]
fn floats_byte_for_byte() {
    let dir = TempDir::new();
    let script = r#"<?php
        mt_srand(7);
        $fs = [0.1, 2.0, 1e25, -0.0, 1e15, 1e16, 1e17, 1e-4, 1e-5, 123.456, 5e-324, PHP_FLOAT_MAX, PHP_FLOAT_EPSILON];
        for ($i = 0; $i < 1000; $i++) { $fs[] = unpack('e', pack('P', mt_rand() << 32 | mt_rand()))[1]; }
        for ($i = 0; $i < 1000; $i++) { $fs[] = (float) mt_rand() / mt_rand(1, 1000); }
        for ($i = 0; $i < 1000; $i++) { $fs[] = (float) mt_rand() * 10 ** mt_rand(-30, 30); }
        foreach ($fs as $f) { echo bin2hex(pack('P', unpack('P', pack('e', $f))[1])), ' ', serialize($f), "\n"; }
    "#;
    let out = String::from_utf8(php(&dir.0, script, &[])).expect("ascii");
    let mut n = 0;
    for line in out.lines() {
        let (hex, ser) = line.split_once(' ').expect("two fields");
        let bits = u64::from_le_bytes(
            (0..8)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect::<Vec<u8>>()
                .try_into()
                .expect("8 bytes"),
        );
        let f = f64::from_bits(bits);
        let mut mine = Vec::new();
        sprocket::session::encode_value(&Value::Float(f), &mut mine);
        assert_eq!(String::from_utf8_lossy(&mine), ser, "{f:e}");
        let (back, _) = sprocket::session::decode_value(ser.as_bytes()).expect("decodes");
        // Any NaN's payload is lost: PHP writes them all as NAN.
        let same = match back {
            Value::Float(b) if f.is_nan() => b.is_nan(),
            b => b.same(&Value::Float(f)),
        };
        assert!(same, "{ser}");
        n += 1;
    }
    assert!(n >= 3000, "{n}");
}
