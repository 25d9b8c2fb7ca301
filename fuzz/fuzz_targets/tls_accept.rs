//! The TLS listener path: arbitrary bytes, in arbitrary chunks, into the
//! server side of the reactor's TLS stream over an in-memory transport
//! (first-byte check, rustls's handshake and records, plaintext reads and
//! writes). Nothing may panic; every error is an `io::Error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::reactor::stream::TlsStream;
use sprocket_fuzz::{chunks, split_input};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, LazyLock};

static CONFIG: LazyLock<Arc<rustls::ServerConfig>> = LazyLock::new(|| {
    sprocket::tls::config_from_pem(
        include_bytes!("../tls/cert.pem"),
        include_bytes!("../tls/key.pem"),
        Path::new("cert.pem"),
        Path::new("key.pem"),
    )
    .unwrap()
});

/// Hands out the current chunk, then `WouldBlock`; swallows output up to
/// a bound, then `WouldBlock` too.
struct Pipe<'a> {
    chunk: &'a [u8],
    eof: bool,
    written: usize,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.chunk.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = &self.chunk[n..];
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 1 << 20 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|input: &[u8]| {
    let (sizes, data) = split_input(input);
    let pipe = Pipe {
        chunk: &[],
        eof: false,
        written: 0,
    };
    let Ok(mut stream) = TlsStream::new(pipe, CONFIG.clone()) else {
        return;
    };
    let mut buf = [0u8; 4096];
    let all = chunks(sizes, data);
    let last = all.len();
    for (i, chunk) in all.into_iter().enumerate() {
        stream.get_mut().chunk = chunk;
        stream.get_mut().eof = i + 1 == last;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    // Plaintext came through: answer some.
                    let _ = stream.write(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        let _ = stream.write_tls();
    }
    stream.close_notify();
});
