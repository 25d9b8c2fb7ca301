//! ZeroMQ PULL sockets the reactor binds (`Server::listen_zmq`): PHP's
//! `ZMQ::SOCKET_PUSH` connects, and each accepted TCP connection is driven
//! by a sans-IO [`ZmtpConn`]. Every complete message (its last part) goes
//! to the apps that asked with `Context::zmq_pull`, as
//! `Reply::Message { channel: "tcp://ADDR", .. }`.
//!
//! mio's readiness contract is the one of `outbound/mod.rs`: read and
//! write until `WouldBlock`; interest follows the driver (WRITABLE only
//! while `transmit()` has bytes).

use super::outbound::{Done, DoneReply};
use super::{Server, ZMQ_BASE, ZMQ_LISTENER_BASE};
use crate::app::Ticket;
use crate::clients::zmtp::{Event, Settings, ZmtpConn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Most ZeroMQ listeners one server binds.
pub(crate) const MAX_ZMQ_LISTENERS: usize = 1024;
/// Accepted peers per listener per turn.
const ACCEPTS_PER_TURN: usize = 64;
/// Reads per peer per turn.
const READS_PER_TURN: usize = 16;

pub(crate) struct ZmqListener {
    pub sock: TcpListener,
    /// `tcp://ADDR`, the channel name apps see.
    pub name: String,
    pub settings: Settings,
}

pub(crate) struct ZmqPeer {
    stream: TcpStream,
    conn: ZmtpConn,
    listener: usize,
    peer: SocketAddr,
    writable: bool,
}

/// Who gets the messages of each listener (apps ask through their
/// context; the reactor's core keeps the list).
#[derive(Default)]
pub(crate) struct ZmqRoutes {
    pub subscribers: Vec<Vec<Ticket>>,
}

impl Server {
    /// Binds a ZeroMQ PULL socket (ZMTP 3.x, NULL security) on `addr`:
    /// PUSH peers connect to it. Apps receive its messages through
    /// `Context::zmq_pull` with the returned index. `settings` bounds
    /// frames and messages.
    pub fn listen_zmq(
        &mut self,
        addr: SocketAddr,
        settings: Settings,
    ) -> io::Result<(crate::app::ZmqId, SocketAddr)> {
        let index = self.zmq_listeners.len();
        if index >= MAX_ZMQ_LISTENERS {
            return Err(io::Error::other("at most 1024 ZeroMQ listeners"));
        }
        let mut sock = TcpListener::bind(addr)?;
        let bound = sock.local_addr()?;
        self.poll.registry().register(
            &mut sock,
            Token(ZMQ_LISTENER_BASE + index),
            Interest::READABLE,
        )?;
        self.zmq_listeners.push(ZmqListener {
            sock,
            name: format!("tcp://{bound}"),
            settings,
        });
        self.core.zmq.subscribers.push(Vec::new());
        Ok((crate::app::ZmqId(index as u32), bound))
    }

    pub(super) fn zmq_accept(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = self.zmq_listeners.get(index) else {
                return;
            };
            match listener.sock.accept() {
                Ok((mut stream, peer)) => {
                    let settings = listener.settings;
                    let _ = stream.set_nodelay(true);
                    let entry = self.zmq_peers.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(ZMQ_BASE + key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::error!("ZeroMQ peer {peer}: cannot register: {e}");
                        continue;
                    }
                    self.core.metrics.count("zmq_peers", "accepted");
                    log::debug!("ZeroMQ peer {peer} connected to {}", listener.name);
                    entry.insert(ZmqPeer {
                        stream,
                        conn: ZmtpConn::server(settings),
                        listener: index,
                        peer,
                        writable: true,
                    });
                    self.zmq_write(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("ZeroMQ accept failed: {e}");
                    return;
                }
            }
        }
        // More may wait: readiness is edge-triggered.
        self.zmq_again.push(index);
    }

    pub(super) fn zmq_ready(&mut self, key: usize, readable: bool) {
        if readable {
            self.zmq_read(key);
        }
        self.zmq_write(key);
    }

    fn zmq_read(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.zmq_buf);
        buf.resize(64 << 10, 0);
        let mut eof = None;
        for _ in 0..READS_PER_TURN {
            let Some(peer) = self.zmq_peers.get_mut(key) else {
                break;
            };
            match peer.stream.read(&mut buf) {
                Ok(0) => {
                    eof = Some("closed the connection".to_owned());
                    break;
                }
                Ok(n) => {
                    peer.conn.handle_input(&buf[..n]);
                    if !self.zmq_events(key) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eof = Some(e.to_string());
                    break;
                }
            }
        }
        self.zmq_buf = buf;
        if let Some(why) = eof {
            if self.zmq_peers.contains(key) {
                self.core.metrics.count("zmq_peers", "closed");
            }
            self.zmq_drop(key, &why);
        }
    }

    /// Hands out what the peer's driver produced; false once it failed
    /// (and the peer was dropped).
    fn zmq_events(&mut self, key: usize) -> bool {
        loop {
            let Some(peer) = self.zmq_peers.get_mut(key) else {
                return false;
            };
            let Some(event) = peer.conn.poll_event() else {
                return true;
            };
            match event {
                Event::Ready {
                    peer_socket_type, ..
                } => {
                    log::debug!(
                        "ZeroMQ peer {} ready ({})",
                        peer.peer,
                        peer_socket_type.as_str()
                    );
                }
                Event::Message(message) => {
                    let listener = peer.listener;
                    self.core.metrics.count("zmq_messages", "received");
                    let payload = message.into_last();
                    let name = self.zmq_listeners[listener].name.as_bytes();
                    let subs = &self.core.zmq.subscribers[listener];
                    if subs.is_empty() {
                        self.core.metrics.count("zmq_messages", "unrouted");
                    }
                    for &ticket in subs {
                        let reply = DoneReply::Message {
                            channel: name.to_vec(),
                            pattern: None,
                            payload: payload.clone(),
                        };
                        self.core.outbound.done.push(Done::new(ticket, reply));
                    }
                }
                Event::Error(e) => {
                    log::warn!("ZeroMQ peer {} refused: {e}", peer.peer);
                    self.core.metrics.count("zmq_peers", "refused");
                    // Best effort: during the handshake this is an ERROR
                    // command telling the peer why.
                    let out = peer.conn.transmit();
                    if !out.is_empty() {
                        let _ = peer.stream.write(out);
                    }
                    self.zmq_drop(key, "protocol error");
                    return false;
                }
            }
        }
    }

    fn zmq_write(&mut self, key: usize) {
        let Some(peer) = self.zmq_peers.get_mut(key) else {
            return;
        };
        loop {
            let out = peer.conn.transmit();
            if out.is_empty() {
                break;
            }
            match peer.stream.write(out) {
                Ok(0) => break,
                Ok(n) => peer.conn.advance_transmit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = e.to_string();
                    self.core.metrics.count("zmq_peers", "closed");
                    return self.zmq_drop(key, &why);
                }
            }
        }
        let want = !peer.conn.transmit().is_empty();
        if want != peer.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut peer.stream, Token(ZMQ_BASE + key), interest)
                .is_ok()
            {
                peer.writable = want;
            }
        }
    }

    fn zmq_drop(&mut self, key: usize, why: &str) {
        if !self.zmq_peers.contains(key) {
            return;
        }
        let mut peer = self.zmq_peers.remove(key);
        let _ = self.poll.registry().deregister(&mut peer.stream);
        log::debug!("ZeroMQ peer {} gone: {why}", peer.peer);
    }

    /// Listeners whose accept budget ran out last turn.
    pub(super) fn zmq_accept_again(&mut self) {
        for index in std::mem::take(&mut self.zmq_again) {
            self.zmq_accept(index);
        }
    }
}
