//! TLS for client connections (`--tls-ca FILE`): rustls's client side,
//! driven by the same nonblocking loop as plain sockets.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// A client configuration trusting exactly the certificates in `ca_file`
/// (PEM), offering ALPN `http/1.1`.
pub fn client_config(ca_file: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("--tls-ca {ca_file}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("--tls-ca {ca_file}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--tls-ca {ca_file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("--tls-ca {ca_file}: no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection is a new session, as for a fleet of browsers that
    // each connect once: no resumption to flatter the handshake rate.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// A client TLS session for a connection to `addr` (the certificate must
/// name the IP address).
pub fn session(cfg: &Arc<ClientConfig>, addr: SocketAddr) -> io::Result<Box<ClientConnection>> {
    let name = ServerName::IpAddress(addr.ip().into());
    ClientConnection::new(cfg.clone(), name)
        .map(Box::new)
        .map_err(io::Error::other)
}

/// Reads plaintext: from what rustls already decrypted, else from `sock`
/// (records in, handshake answers out) until something is decrypted or
/// the socket would block. `Ok(0)` is the end of the stream.
pub fn read(
    tls: &mut ClientConnection,
    sock: &mut impl ReadWrite,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        match tls.read_tls(sock) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                let state = tls.process_new_packets();
                // A handshake message or an alert to answer goes out now.
                flush(tls, sock)?;
                state.map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Queues plaintext in the session and sends what it can.
/// `WouldBlock` when the session's buffer is full and the socket too.
pub fn write(
    tls: &mut ClientConnection,
    sock: &mut impl ReadWrite,
    data: &[u8],
) -> io::Result<usize> {
    flush(tls, sock)?;
    let n = tls.writer().write(data)?;
    flush(tls, sock)?;
    if n == 0 && !data.is_empty() {
        return Err(ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

/// Sends the session's pending records until done or the socket is full.
pub fn flush(tls: &mut ClientConnection, sock: &mut impl ReadWrite) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket rustls reads from and writes to.
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
