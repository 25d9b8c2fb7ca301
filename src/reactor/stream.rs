//! A client connection's byte stream: plain TCP, or TLS driven by rustls's
//! buffered `ServerConnection` from the same nonblocking loop (sans-IO:
//! rustls never touches the socket itself; we move records between it and
//! the transport until `WouldBlock`).

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Plaintext rustls may hold for sending before `write` says `WouldBlock`;
/// the rest stays in the connection's own queue, where `max_outbound`
/// judges it.
const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// What went wrong below HTTP on a TLS connection, carried inside an
/// `io::Error` so the reactor can count it.
#[derive(Debug)]
pub enum TlsFailure {
    /// The first byte was not a TLS handshake record: a plain-HTTP client
    /// (it was answered in plaintext with 400).
    NotTls,
    /// The handshake or a record failed (rustls sent its alert).
    Tls(rustls::Error),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::NotTls => f.write_str("plain HTTP on the TLS port"),
            TlsFailure::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for TlsFailure {}

/// The plaintext answer to a client that speaks HTTP to the TLS port.
pub const NOT_TLS_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 57\r\nConnection: close\r\n\r\n\
this port speaks TLS: use https:// or wss:// to connect.\n";

/// The server side of a TLS connection over any transport.
pub struct TlsStream<T> {
    io: T,
    tls: ServerConnection,
    /// The first byte was checked (a handshake record).
    checked: bool,
    /// The transport reached EOF.
    eof: bool,
    /// The handshake completed and was reported (see `take_handshake`).
    reported: bool,
}

impl<T: Read + Write> TlsStream<T> {
    /// A server connection with `config` (rustls errors only when the
    /// configuration has no usable protocol version).
    pub fn new(io: T, config: Arc<ServerConfig>) -> io::Result<Self> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(TlsStream {
            io,
            tls,
            checked: false,
            eof: false,
            reported: false,
        })
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Plaintext read: decrypted bytes, `Ok(0)` at the end (close_notify
    /// or EOF), `WouldBlock` when rustls holds no plaintext and the
    /// transport has nothing more. Records rustls wants to send in
    /// answer (handshake flights, alerts) are written as far as the
    /// transport takes them; `wants_write` says whether some are left.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(0);
            }
            let n = if self.checked {
                self.tls.read_tls(&mut self.io)
            } else {
                self.first_read()
            };
            match n {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // rustls queued an alert: send it, best effort.
                let _ = self.write_tls();
                return Err(io::Error::other(TlsFailure::Tls(e)));
            }
            self.write_tls()?;
        }
    }

    /// The first bytes from the client: a TLS handshake record starts with
    /// 0x16; anything else gets the plaintext 400 and an error.
    fn first_read(&mut self) -> io::Result<usize> {
        let mut first = [0u8; 4096];
        let n = self.io.read(&mut first)?;
        if n == 0 {
            return Ok(0);
        }
        if first[0] != 0x16 {
            let _ = self.io.write(NOT_TLS_RESPONSE);
            return Err(io::Error::other(TlsFailure::NotTls));
        }
        self.checked = true;
        let mut slice = &first[..n];
        while !slice.is_empty() {
            self.tls.read_tls(&mut slice)?;
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.write_tls();
                return Err(io::Error::other(TlsFailure::Tls(e)));
            }
        }
        Ok(n)
    }

    /// Plaintext write into rustls (bounded), then records to the
    /// transport. `WouldBlock` when rustls's buffer is full.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        self.write_tls()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes pending records until done or `WouldBlock` (which is not an
    /// error here: `wants_write` stays true).
    pub fn write_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.io) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Records wait for the transport.
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Still in the TLS handshake.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// True once, when the handshake has completed.
    pub fn take_handshake(&mut self) -> bool {
        if self.reported || self.tls.is_handshaking() {
            return false;
        }
        self.reported = true;
        true
    }

    /// Queues close_notify and writes what the transport takes.
    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
        let _ = self.write_tls();
    }
}

/// A client connection's transport.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket under any TLS (registration, options, peeking).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.get_ref(),
        }
    }

    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.get_mut(),
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    /// TLS records still wait for the socket.
    pub fn wants_write(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.wants_write())
    }

    /// Writes pending TLS records (nothing for plain TCP).
    pub fn write_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.write_tls(),
        }
    }

    /// A TLS connection still in its handshake.
    pub fn tls_handshaking(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.is_handshaking())
    }

    /// Our side is done: close_notify under TLS, then FIN.
    pub fn shutdown_write(&mut self) {
        if let Stream::Tls(t) = self {
            t.close_notify();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
    use std::path::Path;

    const CERT: &[u8] = include_bytes!("../../fuzz/tls/cert.pem");
    const KEY: &[u8] = include_bytes!("../../fuzz/tls/key.pem");

    /// Trusts exactly the test certificate (compared byte for byte) and
    /// checks signatures with ring.
    #[derive(Debug)]
    struct Pinned(Vec<u8>);

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if end_entity.as_ref() == self.0.as_slice() {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("not the pinned certificate".into()))
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// One direction of an in-memory pipe: bytes written on one side,
    /// read on the other; `WouldBlock` when empty, or when more than
    /// `cap` bytes wait.
    #[derive(Default)]
    struct Pipe {
        to_server: Vec<u8>,
        to_client: Vec<u8>,
        cap: usize,
    }

    struct ServerEnd<'a>(&'a std::cell::RefCell<Pipe>);

    impl Read for ServerEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut p = self.0.borrow_mut();
            if p.to_server.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(p.to_server.len());
            buf[..n].copy_from_slice(&p.to_server[..n]);
            p.to_server.drain(..n);
            Ok(n)
        }
    }

    impl Write for ServerEnd<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut p = self.0.borrow_mut();
            let room = p.cap.saturating_sub(p.to_client.len());
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = room.min(buf.len());
            p.to_client.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn client() -> ClientConnection {
        let cert = CertificateDer::pem_slice_iter(CERT)
            .next()
            .unwrap()
            .unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned(cert.to_vec())))
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap()
    }

    use rustls::pki_types::pem::PemObject;

    /// Moves records from the client to the pipe and back.
    /// Moves the client's records to the server and the server's to the
    /// client; returns the plaintext the client received (read as it
    /// comes, so its own buffer never fills).
    fn pump(client: &mut ClientConnection, pipe: &std::cell::RefCell<Pipe>) -> Vec<u8> {
        while client.wants_write() {
            let mut out = Vec::new();
            client.write_tls(&mut out).unwrap();
            pipe.borrow_mut().to_server.extend_from_slice(&out);
        }
        let incoming = std::mem::take(&mut pipe.borrow_mut().to_client);
        let mut slice = incoming.as_slice();
        let mut got = Vec::new();
        while !slice.is_empty() {
            client.read_tls(&mut slice).unwrap();
            client.process_new_packets().unwrap();
            // WouldBlock once it has read all there is.
            let _ = client.reader().read_to_end(&mut got);
        }
        got
    }

    #[test]
    fn handshake_data_both_ways_buffer_limit_and_close_notify() {
        let config =
            crate::tls::config_from_pem(CERT, KEY, Path::new("c"), Path::new("k")).unwrap();
        let pipe = std::cell::RefCell::new(Pipe {
            cap: 1 << 30,
            ..Pipe::default()
        });
        let mut server = TlsStream::new(ServerEnd(&pipe), config).unwrap();
        let mut client = client();
        let mut buf = [0u8; 4096];
        for _ in 0..4 {
            pump(&mut client, &pipe);
            let r = server.read(&mut buf);
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        }
        pump(&mut client, &pipe);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert!(server.take_handshake());
        assert!(!server.take_handshake());

        // Client to server.
        client.writer().write_all(b"hello server").unwrap();
        pump(&mut client, &pipe);
        let n = server.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello server");
        assert_eq!(
            server.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        // Server to client, with a transport that takes 1000 bytes only:
        // rustls buffers up to its limit, then WouldBlock.
        pipe.borrow_mut().cap = 1000;
        let big = vec![7u8; 1 << 20];
        let mut taken = 0;
        loop {
            match server.write(&big[taken..]) {
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            (TLS_BUFFER_LIMIT / 2..2 * TLS_BUFFER_LIMIT).contains(&taken),
            "{taken}"
        );
        assert!(server.wants_write());
        // The transport opens: everything taken arrives intact.
        pipe.borrow_mut().cap = 1 << 30;
        server.write_tls().unwrap();
        assert!(!server.wants_write());
        let got = pump(&mut client, &pipe);
        assert_eq!(got.len(), taken);
        assert!(got.iter().all(|&b| b == 7));

        // close_notify from us reaches the client as a clean end.
        server.close_notify();
        pump(&mut client, &pipe);
        let mut rest = [0u8; 16];
        assert_eq!(client.reader().read(&mut rest).unwrap(), 0);
        // And the client's close_notify is a clean end for us.
        client.send_close_notify();
        pump(&mut client, &pipe);
        assert_eq!(server.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn plain_http_gets_the_hint_and_an_error() {
        let config =
            crate::tls::config_from_pem(CERT, KEY, Path::new("c"), Path::new("k")).unwrap();
        let pipe = std::cell::RefCell::new(Pipe {
            cap: 1 << 20,
            ..Pipe::default()
        });
        pipe.borrow_mut().to_server = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let mut server = TlsStream::new(ServerEnd(&pipe), config).unwrap();
        let e = server.read(&mut [0u8; 64]).unwrap_err();
        let failure = e.get_ref().and_then(|e| e.downcast_ref::<TlsFailure>());
        assert!(matches!(failure, Some(TlsFailure::NotTls)), "{e}");
        assert_eq!(pipe.borrow().to_client, NOT_TLS_RESPONSE);
    }
}
