//! A throwaway certificate authority for tests, made with the openssl CLI:
//! `ca.pem` and a server certificate `server.pem`/`server.key` for
//! 127.0.0.1 and localhost (P-256, two days), in a temporary directory that
//! is removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; panics with its stderr when it fails (the
/// CLI missing is a loud failure too).
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory with the CA and the server certificate.
pub struct Pki {
    /// Where the files are.
    pub dir: PathBuf,
}

impl Pki {
    /// Makes the CA and the server certificate in a fresh directory named
    /// after `name` and this process.
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("sprocket-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        let run = |line: &str| openssl(&dir, &line.split_whitespace().collect::<Vec<_>>());
        run(&format!(
            "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=sprocket-test-CA"
        ));
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&format!(
            "req {ec} -keyout server.key -out server.csr -subj /CN=sprocket-test-server"
        ));
        run(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x4004 \
             -days 2 -extfile san.ext -out server.pem",
        );
        Pki { dir }
    }

    /// The full path of one of the files.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The certificate followed by its key in one file (HAProxy's `crt`);
    /// returns its path.
    pub fn combined(&self) -> String {
        let mut pem = std::fs::read(self.dir.join("server.pem")).unwrap();
        pem.extend(std::fs::read(self.dir.join("server.key")).unwrap());
        let path = self.dir.join("server-and-key.pem");
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
