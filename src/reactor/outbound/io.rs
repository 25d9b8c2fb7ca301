//! The server's side of outbound connections: dialling, moving bytes
//! between sockets and the drivers, and noticing when a peer goes away.
//! See the module above for the readiness contract each driver follows.

use super::{Done, DoneReply, HttpError, Link, LinkState};
use crate::reactor::{OUT_BASE, Server};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a TCP connect to Redis may take before it counts as failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads per outbound socket per turn before others get their go.
const READS_PER_TURN: usize = 16;

/// An outbound socket and what it serves.
pub(crate) struct OutSock {
    stream: TcpStream,
    link: Link,
    connected: bool,
    writable: bool,
}

/// What one read pass found.
enum ReadEnd {
    /// `WouldBlock`: all read for now.
    Drained,
    /// The budget ran out; more may be waiting.
    More,
    /// EOF.
    Eof,
    /// A socket error.
    Failed(String),
}

impl Server {
    /// Dials what needs a connection, closes what was given up, and runs
    /// the drivers' timers.
    pub(crate) fn maintain_outbound(&mut self) {
        let now = self.core.now;
        for i in 0..self.core.outbound.redis.len() {
            for link in [Link::RedisCommands(i), Link::RedisPubSub(i)] {
                let service = &mut self.core.outbound.redis[i];
                let addr = service.addr;
                match service.link(link).state {
                    LinkState::Down { retry_at } if retry_at <= now => {
                        if let Err(e) = self.dial(link, addr) {
                            self.redis_failed(link, &format!("connect: {e}"));
                        }
                    }
                    LinkState::Connecting { since } if now >= since + CONNECT_TIMEOUT => {
                        self.drop_link_socket(link);
                        self.redis_failed(link, "connect timed out");
                    }
                    _ => {}
                }
            }
        }
        let mut done = Vec::new();
        self.core.outbound.http.handle_timeouts(now, &mut done);
        let to_dial: Vec<(usize, SocketAddr)> = self
            .core
            .outbound
            .http
            .links
            .iter()
            .filter(|(_, l)| l.sock.is_none())
            .map(|(k, l)| (k, l.addr))
            .collect();
        for (key, addr) in to_dial {
            if let Err(e) = self.dial(Link::Http(key), addr) {
                let http = &mut self.core.outbound.http;
                http.lost(key, HttpError::Connect(e.to_string()), now, &mut done);
            }
        }
        self.close_given_up();
        self.finish(done);
    }

    /// Queues completions for delivery.
    fn finish(&mut self, done: Vec<Done>) {
        self.core.outbound.done.extend(done);
    }

    fn close_given_up(&mut self) {
        for sock in std::mem::take(&mut self.core.outbound.http.closed_socks) {
            if self.out.contains(sock) {
                let mut s = self.out.remove(sock);
                let _ = self.poll.registry().deregister(&mut s.stream);
            }
        }
    }

    /// Starts a non-blocking connect for `link`.
    fn dial(&mut self, link: Link, addr: SocketAddr) -> io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let entry = self.out.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(OUT_BASE + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let _ = stream.set_nodelay(true);
        entry.insert(OutSock {
            stream,
            link,
            connected: false,
            writable: true,
        });
        let now = self.core.now;
        match link {
            Link::RedisCommands(i) | Link::RedisPubSub(i) => {
                self.core.outbound.redis[i].link(link).state = LinkState::Connecting { since: now };
                self.redis_socks_set(link, Some(key));
            }
            Link::Http(i) => {
                if let Some(l) = self.core.outbound.http.links.get_mut(i) {
                    l.sock = Some(key);
                }
            }
        }
        Ok(())
    }

    /// Remembers which socket a Redis link uses.
    fn redis_socks_set(&mut self, link: Link, sock: Option<usize>) {
        if let Link::RedisCommands(i) | Link::RedisPubSub(i) = link
            && let Some(s) = self.core.outbound.redis.get_mut(i)
        {
            let slot = match link {
                Link::RedisCommands(_) => &mut s.cmd_sock,
                _ => &mut s.sub_sock,
            };
            *slot = sock;
        }
    }

    /// Closes the socket of a Redis link, if any.
    fn drop_link_socket(&mut self, link: Link) {
        let sock = match link {
            Link::RedisCommands(i) => self.core.outbound.redis[i].cmd_sock.take(),
            Link::RedisPubSub(i) => self.core.outbound.redis[i].sub_sock.take(),
            Link::Http(i) => self
                .core
                .outbound
                .http
                .links
                .get_mut(i)
                .and_then(|l| l.sock.take()),
        };
        if let Some(sock) = sock
            && self.out.contains(sock)
        {
            let mut s = self.out.remove(sock);
            let _ = self.poll.registry().deregister(&mut s.stream);
        }
    }

    /// A Redis link failed (or could not connect): fail its commands in
    /// flight and schedule a redial.
    pub(crate) fn redis_failed(&mut self, link: Link, why: &str) {
        let (Link::RedisCommands(i) | Link::RedisPubSub(i)) = link else {
            return;
        };
        self.drop_link_socket(link);
        self.core.metrics.redis_connection_failures += 1;
        let now = self.core.now;
        let random = self.random();
        let mut done = Vec::new();
        self.core.outbound.redis[i].disconnected(link, why, now, random, &mut done);
        self.finish(done);
        self.bus_link_down(link);
    }

    /// Readiness on outbound socket `key`.
    pub(crate) fn outbound_ready(&mut self, key: usize, event: &Event) {
        let Some(sock) = self.out.get_mut(key) else {
            return;
        };
        let link = sock.link;
        if !sock.connected {
            if !(event.is_writable() || event.is_error() || event.is_read_closed()) {
                return;
            }
            // mio: a connect is done when the socket is writable; an error
            // then (or no peer address) means it failed.
            match sock.stream.take_error() {
                Ok(None) if sock.stream.peer_addr().is_ok() => sock.connected = true,
                Ok(None) if !event.is_error() && !event.is_read_closed() => return,
                Ok(Some(e)) | Err(e) => return self.link_lost(link, &e.to_string()),
                Ok(None) => return self.link_lost(link, "connection refused"),
            }
            self.link_connected(link);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read_link(key);
        }
        self.write_link(key);
    }

    fn link_connected(&mut self, link: Link) {
        let now = self.core.now;
        match link {
            Link::RedisCommands(i) | Link::RedisPubSub(i) => {
                self.core.outbound.redis[i].connected(link, now);
                self.bus_link_up(link);
            }
            Link::Http(i) => {
                if let Some(l) = self.core.outbound.http.links.get_mut(i) {
                    l.conn.connected(now);
                }
            }
        }
    }

    /// The peer of `link` went away.
    fn link_lost(&mut self, link: Link, why: &str) {
        match link {
            Link::RedisCommands(_) | Link::RedisPubSub(_) => self.redis_failed(link, why),
            Link::Http(i) => {
                let now = self.core.now;
                let mut done = Vec::new();
                let connected = self
                    .core
                    .outbound
                    .http
                    .links
                    .get(i)
                    .and_then(|l| l.sock)
                    .is_some_and(|s| self.out.get(s).is_some_and(|o| o.connected));
                let error = if connected {
                    match self
                        .core
                        .outbound
                        .http
                        .links
                        .get_mut(i)
                        .map(|l| l.conn.handle_reset())
                    {
                        Some(Err(e)) => HttpError::Client(e),
                        _ => HttpError::Connect(why.to_owned()),
                    }
                } else {
                    HttpError::Connect(why.to_owned())
                };
                self.drop_link_socket(link);
                self.core.outbound.http.lost(i, error, now, &mut done);
                self.close_given_up();
                self.finish(done);
            }
        }
    }

    /// Reads until `WouldBlock` and feeds the driver.
    fn read_link(&mut self, key: usize) {
        let Some(link) = self.out.get(key).map(|s| s.link) else {
            return;
        };
        let mut end = ReadEnd::More;
        for _ in 0..READS_PER_TURN {
            let Some(sock) = self.out.get_mut(key) else {
                return;
            };
            let n = match sock.stream.read(&mut self.rbuf) {
                Ok(0) => {
                    end = ReadEnd::Eof;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    end = ReadEnd::Drained;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    end = ReadEnd::Failed(e.to_string());
                    break;
                }
            };
            if !self.feed_link(link, n) {
                return;
            }
        }
        match end {
            ReadEnd::Drained => {}
            // Edge-triggered: come back next turn without waiting.
            ReadEnd::More => self.core.outbound.pending_reads.push(key),
            ReadEnd::Eof => self.link_eof(link),
            ReadEnd::Failed(e) => self.link_lost(link, &e),
        }
    }

    /// `n` bytes from the peer of `link` are in the read buffer; false if
    /// the link is gone after them.
    fn feed_link(&mut self, link: Link, n: usize) -> bool {
        let now = self.core.now;
        let mut done = Vec::new();
        match link {
            Link::RedisCommands(i) | Link::RedisPubSub(i) => {
                let service = &mut self.core.outbound.redis[i];
                service.link(link).conn.handle_input(&self.rbuf[..n]);
                let before = done.len();
                let unusable = service.drain_events(link, &mut done);
                let messages = done[before..]
                    .iter()
                    .filter(|d| matches!(d.reply, DoneReply::Message { .. }))
                    .count();
                self.core.metrics.redis_messages += messages as u64;
                self.finish(std::mem::take(&mut done));
                if let Some(why) = unusable {
                    self.redis_failed(link, &why);
                    return false;
                }
                true
            }
            Link::Http(i) => {
                let http = &mut self.core.outbound.http;
                let Some(l) = http.links.get_mut(i) else {
                    return false;
                };
                let alive = match l.conn.handle_input(&self.rbuf[..n]) {
                    Ok(None) => true,
                    Ok(Some(response)) => http.finished(i, Ok(response), now, &mut done),
                    Err(e) => {
                        http.lost(i, HttpError::Client(e), now, &mut done);
                        false
                    }
                };
                self.close_given_up();
                self.finish(done);
                alive
            }
        }
    }

    /// The peer of `link` closed its side.
    fn link_eof(&mut self, link: Link) {
        match link {
            Link::Http(i) => {
                let now = self.core.now;
                let mut done = Vec::new();
                let http = &mut self.core.outbound.http;
                let result = http.links.get_mut(i).map(|l| l.conn.handle_eof());
                match result {
                    Some(Ok(Some(response))) => {
                        // A close-delimited body: done, and the link with it.
                        http.finished(i, Ok(response), now, &mut done);
                    }
                    Some(Err(e)) => http.lost(i, HttpError::Client(e), now, &mut done),
                    _ => http.lost(
                        i,
                        HttpError::Client(crate::clients::http::ClientError::Closed {
                            response_bytes_seen: false,
                        }),
                        now,
                        &mut done,
                    ),
                }
                self.drop_link_socket(link);
                self.close_given_up();
                self.finish(done);
            }
            _ => self.redis_failed(link, "the server closed the connection"),
        }
    }

    /// Writes what the driver of socket `key` has to send, then derives the
    /// interest from what is left.
    fn write_link(&mut self, key: usize) {
        let Some(sock) = self.out.get_mut(key) else {
            return;
        };
        if !sock.connected {
            return;
        }
        let link = sock.link;
        let mut failed = None;
        loop {
            let pending = match link {
                Link::RedisCommands(i) | Link::RedisPubSub(i) => {
                    self.core.outbound.redis[i].link(link).conn.transmit()
                }
                Link::Http(i) => match self.core.outbound.http.links.get(i) {
                    Some(l) => l.conn.transmit(),
                    None => &[],
                },
            };
            if pending.is_empty() {
                break;
            }
            match sock.stream.write(pending) {
                Ok(0) => {
                    failed = Some("write returned 0".to_owned());
                    break;
                }
                Ok(n) => match link {
                    Link::RedisCommands(i) | Link::RedisPubSub(i) => {
                        self.core.outbound.redis[i].link(link).conn.advance(n)
                    }
                    Link::Http(i) => {
                        if let Some(l) = self.core.outbound.http.links.get_mut(i) {
                            l.conn.advance(n);
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(why) = failed {
            return self.link_lost(link, &why);
        }
        let left = match link {
            Link::RedisCommands(i) | Link::RedisPubSub(i) => !self.core.outbound.redis[i]
                .link(link)
                .conn
                .transmit()
                .is_empty(),
            Link::Http(i) => self
                .core
                .outbound
                .http
                .links
                .get(i)
                .is_some_and(|l| !l.conn.transmit().is_empty()),
        };
        if left != sock.writable {
            sock.writable = left;
            let interest = if left {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ =
                self.poll
                    .registry()
                    .reregister(&mut sock.stream, Token(OUT_BASE + key), interest);
        }
    }

    /// After apps ran: writes every connected outbound socket's new bytes
    /// and reads what a read budget left behind.
    pub(crate) fn flush_outbound(&mut self) {
        for key in std::mem::take(&mut self.core.outbound.pending_reads) {
            self.read_link(key);
        }
        let keys: Vec<usize> = self
            .out
            .iter()
            .filter(|(_, s)| s.connected)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.write_link(key);
        }
        self.close_given_up();
    }
}
