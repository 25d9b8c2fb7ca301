//! The ceiling: a raw TCP echo on one mio loop, no WebSocket framing.
//!
//! Every byte read is written straight back. Reads go into one shared 64 KiB
//! buffer; only bytes the socket would not take are kept per connection, and
//! such a connection is not read again until they are written.
//! Usage: `peer-mio-raw PORT`.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{ErrorKind, Read, Write};

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    pending: Vec<u8>,
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let _ = sock.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    poll.registry().register(
                        &mut sock,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn {
                        sock,
                        pending: Vec::new(),
                    });
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            if !serve(c, &mut buf) {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.sock);
            }
        }
    }
}

/// Echoes what is available; false when the connection is finished.
fn serve(c: &mut Conn, buf: &mut [u8]) -> bool {
    loop {
        // Drain what the socket would not take before reading more.
        while !c.pending.is_empty() {
            match c.sock.write(&c.pending) {
                Ok(n) => {
                    c.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let n = match c.sock.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let mut off = 0;
        while off < n {
            match c.sock.write(&buf[off..n]) {
                Ok(w) => off += w,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.pending.extend_from_slice(&buf[off..n]);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if n < buf.len() {
            // A short read empties the socket: edge-triggered epoll reports
            // the next arrival.
            return true;
        }
    }
}
