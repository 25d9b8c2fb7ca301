//! The real client behind a trusted proxy: the PROXY protocol header read
//! off the raw TCP socket before anything else, and `X-Forwarded-For` or
//! `Forwarded` (`--forwarded-header`) read from each request head before
//! the app decides.
//! Also the per-address connection count, which follows the real client.

use super::Server;
use super::core::Core;
use crate::app::Reject;
use crate::cidr::Cidr;
use crate::http::Head;
use crate::proxy::{self, MAX_HEADER, Resolved};
use std::io::{self, Read};
use std::net::IpAddr;

impl Core {
    /// Whether `ip` already holds as many connections as it may.
    pub fn ip_full(&self, ip: IpAddr) -> bool {
        let limit = self.cfg.max_connections_per_ip;
        limit != 0 && self.per_ip.get(&ip).copied().unwrap_or(0) as usize >= limit
    }

    /// Counts connection `key` against its `peer` (and no longer against
    /// the address it was counted for before).
    pub fn count_ip(&mut self, key: usize) {
        if self.cfg.max_connections_per_ip == 0 {
            return;
        }
        self.uncount_ip(key);
        let conn = &mut self.conns[key];
        *self.per_ip.entry(conn.peer.ip()).or_default() += 1;
        conn.counted = true;
    }

    /// Stops counting connection `key` against its address.
    pub fn uncount_ip(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key).filter(|c| c.counted) else {
            return;
        };
        conn.counted = false;
        let ip = conn.peer.ip();
        if let std::collections::hash_map::Entry::Occupied(mut count) = self.per_ip.entry(ip) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    /// Whether connections from `ip` are counted at accept: not when it is
    /// a trusted proxy, whose connections count for the clients they carry.
    pub fn counts_at_accept(&self, ip: IpAddr) -> bool {
        !Cidr::any_contains(&self.cfg.trusted_proxies, ip)
    }
}

/// Sets the connection's client address for the request `head` from its
/// forwarding headers (judged by the connection's hop), and counts the
/// connection against that address. A client over its limit: 429.
pub(crate) fn resolve_client(core: &mut Core, key: usize, head: &Head<'_>) -> Result<(), Reject> {
    let conn = &core.conns[key];
    let hop = core.hops.get(&conn.id).copied().unwrap_or(conn.peer);
    let read = core.cfg.forwarded_header;
    let resolved = proxy::client_address_from(hop, &head.headers, &core.cfg.trusted_proxies, read);
    // Not `Ignored`: the hop is trusted (or sent no forwarding header).
    if resolved != Resolved::Ignored && read.other().is_in(&head.headers) {
        core.metrics.forwarded_other_ignored += 1;
        log::debug!(
            "{} {hop}: {} header ignored (--forwarded-header {read})",
            conn.id,
            read.other().name()
        );
    }
    let peer = match resolved {
        Resolved::Direct => hop,
        Resolved::Ignored => {
            core.metrics.forwarded_ignored += 1;
            log::debug!(
                "{} {hop}: forwarding headers from an untrusted peer ignored",
                conn.id
            );
            hop
        }
        Resolved::Client(addr) => {
            core.metrics.forwarded_used += 1;
            log::debug!("{} client {addr} via {hop}", conn.id);
            addr
        }
    };
    let conn = &core.conns[key];
    let id = conn.id;
    let same = conn.peer.ip() == peer.ip();
    if peer != conn.peer {
        core.hops.entry(id).or_insert(hop);
    }
    if same && (conn.counted || core.cfg.max_connections_per_ip == 0) {
        core.conns[key].peer = peer;
        return Ok(());
    }
    core.uncount_ip(key);
    core.conns[key].peer = peer;
    if core.ip_full(peer.ip()) {
        return Err(Reject::new(429, "too many connections from your address"));
    }
    core.count_ip(key);
    Ok(())
}

impl Server {
    /// Reads the PROXY protocol header that must open connection `key`,
    /// straight off the TCP socket: `peek` to find how long it is, then
    /// `read` exactly that much, so what follows stays in the kernel for
    /// the next layer. Returns true once the header is read and the
    /// connection may go on; false while it waits for more bytes or when
    /// it was closed (a missing or malformed header: no HTTP answer, the
    /// peer is not speaking HTTP to us).
    pub(super) fn read_proxy_header(&mut self, key: usize) -> bool {
        // Below TLS: the header comes before the ClientHello.
        let Some(sock) = self
            .socks
            .get_mut(key)
            .and_then(Option::as_mut)
            .map(super::stream::Stream::tcp_mut)
        else {
            return false;
        };
        let buf = &mut self.rbuf[..MAX_HEADER];
        let n = loop {
            match sock.peek(buf) {
                Ok(0) => {
                    self.gone(key, "closed before its PROXY header");
                    return false;
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.gone(key, &e.to_string());
                    return false;
                }
            }
        };
        let (header, used) = match proxy::decode(&buf[..n]) {
            // The rest arrives as new data: readiness fires again.
            Ok(None) => return false,
            Ok(Some(found)) => found,
            Err(e) => {
                self.core.metrics.proxy_headers_bad += 1;
                let conn = &self.core.conns[key];
                log::warn!("{} {}: closing: {e}", conn.id, conn.peer);
                self.remove(key);
                return false;
            }
        };
        let mut got = 0;
        while got < used {
            match sock.read(&mut buf[got..used]) {
                Ok(0) => {
                    self.gone(key, "closed within its PROXY header");
                    return false;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock too: peek saw these bytes, they cannot vanish.
                Err(e) => {
                    self.gone(key, &e.to_string());
                    return false;
                }
            }
        }
        self.core.metrics.socket_bytes_read += used as u64;
        self.core.metrics.proxy_headers_ok += 1;
        let conn = &mut self.core.conns[key];
        conn.proxy_pending = false;
        let id = conn.id;
        let believed = Cidr::any_contains(&self.core.cfg.trusted_proxies, conn.peer.ip());
        if !believed && header.source().is_some() {
            log::warn!(
                "{} {}: PROXY header from an untrusted peer: its address ignored",
                conn.id,
                conn.peer
            );
        } else if let Some(source) = header.source() {
            log::debug!(
                "{} client {source} via {} (PROXY header)",
                conn.id,
                conn.peer
            );
            conn.peer = source;
            self.core.hops.insert(id, source);
        }
        true
    }
}
