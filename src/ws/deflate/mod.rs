//! permessage-deflate (RFC 7692), free of I/O: the negotiation of §5 and
//! §7.1, and the per-message transform of §7.2 over a DEFLATE codec
//! (`zlib-rs`).
//!
//! Memory is the main design constraint. A DEFLATE compressor holds about
//! 370 KiB (its hash table alone is 128 KiB whatever the window), an
//! inflater about 40 KiB. So:
//!
//! - Without context takeover (sprocket's default in both directions) no
//!   connection owns a codec. Outgoing messages are compressed by one
//!   compressor per window size shared by the whole reactor and reset after
//!   each message; incoming messages borrow an inflater from a small pool
//!   for the length of one message (one call for a single-frame message,
//!   longer for a fragmented one).
//! - With context takeover a connection gets its own codec the first time a
//!   compressed message goes that way, and keeps it for its life.
//!
//! Negotiation never fails a handshake: an offer that breaks the rules of
//! §7 (unknown or repeated parameter, bad value) or that is malformed under
//! RFC 6455 §9.1 is declined and the next offer is tried, exactly as §7
//! says for invalid parameters ("the server MUST decline an extension
//! negotiation offer"); with none acceptable the connection simply runs
//! without compression.

mod codec;
mod negotiate;

pub use codec::{Compressor, InflateError, Inflater};
pub use negotiate::{DeflateConfig, NAME, Params, negotiate};

use super::utf8::Utf8Validator;

/// Spare inflaters kept for connections without client context takeover.
const SPARE_INFLATERS: usize = 4;

/// Counters of one connection's compressed traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Compressed messages received.
    pub messages_in: u64,
    /// Compressed messages sent.
    pub messages_out: u64,
}

/// permessage-deflate state of one connection. Small until a compressed
/// message actually passes, and small again afterwards unless context
/// takeover was negotiated for that direction.
pub struct Session {
    /// The parameters in force.
    pub params: Params,
    // Boxed, so that a session without codecs stays a few dozen bytes.
    inflater: Option<Box<Inflater>>,
    compressor: Option<Box<Compressor>>,
    utf8: Utf8Validator,
    /// Traffic counters.
    pub stats: Stats,
}

impl Session {
    /// A connection that negotiated `params`; allocates no codec yet.
    pub fn new(params: Params) -> Self {
        Session {
            params,
            inflater: None,
            compressor: None,
            utf8: Utf8Validator::new(),
            stats: Stats::default(),
        }
    }

    /// Decompresses one frame of a compressed message into `out` (the
    /// message so far). `first` and `fin` place the frame in its message;
    /// `text` validates the decompressed bytes as UTF-8 as they come.
    #[allow(clippy::too_many_arguments)]
    pub fn inflate(
        &mut self,
        shared: &mut Shared,
        payload: &[u8],
        first: bool,
        fin: bool,
        text: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if first {
            self.utf8.reset();
        }
        let inflater = self
            .inflater
            .get_or_insert_with(|| shared.inflaters.pop().unwrap_or_default());
        let utf8 = text.then_some(&mut self.utf8);
        let result = inflater.inflate(payload, fin, out, limit, utf8);
        if result.is_err() {
            // The connection is failing; its codec state is of no use.
            self.inflater = None;
            return result;
        }
        if fin {
            self.stats.messages_in += 1;
            let keep = !self.params.client_no_context_takeover;
            if let Some(mut inflater) = self.inflater.take() {
                if !keep || inflater.needs_reset() {
                    inflater.reset();
                }
                if keep {
                    self.inflater = Some(inflater);
                } else if shared.inflaters.len() < SPARE_INFLATERS {
                    shared.inflaters.push(inflater);
                }
            }
        }
        result
    }

    /// Whether this connection's messages are compressed with a codec of
    /// its own (context takeover), rather than the shared one.
    pub fn owns_compressor(&self) -> bool {
        !self.params.server_no_context_takeover
    }

    /// Compresses `msg` for this connection into `buf` (scratch space, see
    /// [`Compressor::compress`]) and returns the length of the payload to
    /// send with RSV1, or `None` when the message goes uncompressed: too
    /// small (see [`Shared::worth_compressing`]), or, without context
    /// takeover, not made smaller by compressing.
    pub fn compress(
        &mut self,
        shared: &mut Shared,
        msg: &[u8],
        buf: &mut Vec<u8>,
    ) -> Option<usize> {
        if !shared.worth_compressing(msg.len()) {
            return None;
        }
        let bits = self.params.server_max_window_bits;
        if !self.owns_compressor() {
            let n = shared.compress(bits, msg, buf)?;
            self.stats.messages_out += 1;
            return Some(n);
        }
        self.stats.messages_out += 1;
        let level = shared.settings.level;
        let c = self
            .compressor
            .get_or_insert_with(|| Box::new(Compressor::new(level, bits)));
        shared.compressions += 1;
        Some(c.compress(msg, buf))
    }

    /// Which codecs this connection holds (inflater, compressor), for
    /// tests and diagnostics.
    pub fn holds_codecs(&self) -> (bool, bool) {
        (self.inflater.is_some(), self.compressor.is_some())
    }
}

/// Codec state shared by all connections of one reactor: a compressor per
/// window size for connections without server context takeover, and spare
/// inflaters.
pub struct Shared {
    settings: DeflateConfig,
    compressors: [Option<Compressor>; 8],
    // Boxes move between a session and the pool as they are.
    #[allow(clippy::vec_box)]
    inflaters: Vec<Box<Inflater>>,
    compressions: u64,
}

impl Shared {
    /// Nothing allocated until the first compressed message.
    pub fn new(settings: DeflateConfig) -> Self {
        Shared {
            settings,
            compressors: Default::default(),
            inflaters: Vec::new(),
            compressions: 0,
        }
    }

    /// Messages compressed so far, by any compressor (a broadcast to many
    /// recipients without context takeover counts once).
    pub fn compressions(&self) -> u64 {
        self.compressions
    }

    /// Whether a message of `len` bytes is sent compressed: not when the
    /// level is 0, not below `min_size`, never when empty.
    pub fn worth_compressing(&self, len: usize) -> bool {
        self.settings.level > 0 && len > 0 && len >= self.settings.min_size
    }

    /// Compresses `msg` without context into `buf` (for any connection
    /// with server no context takeover and this window) with the shared
    /// compressor; returns the payload length, or `None` if compressing
    /// did not make the message smaller (incompressible data grows a little,
    /// and costs the peer an inflate): it is then sent as it is, which §6
    /// allows message by message and which, without context takeover,
    /// leaves no context out of step.
    pub fn compress(&mut self, window_bits: u8, msg: &[u8], buf: &mut Vec<u8>) -> Option<usize> {
        let level = self.settings.level;
        let slot = usize::from(window_bits.clamp(8, 15) - 8);
        let c = self.compressors[slot].get_or_insert_with(|| Compressor::new(level, window_bits));
        let n = c.compress(msg, buf);
        c.reset();
        self.compressions += 1;
        (n < msg.len()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::codec::tests::sample;
    use super::*;
    use crate::http::extensions;

    #[test]
    fn an_idle_session_is_small() {
        // What a connection pays for having negotiated the extension, as
        // long as no codec is attached (the Box around it adds 8 bytes to
        // the connection).
        assert!(
            std::mem::size_of::<Session>() <= 48,
            "{}",
            std::mem::size_of::<Session>()
        );
    }

    #[test]
    fn sessions_hold_codecs_only_with_context_takeover() {
        let cfg = DeflateConfig::default();
        let mut shared = Shared::new(cfg);
        let elements = extensions::parse(["permessage-deflate"]);
        let params = negotiate(&cfg, &elements).0.unwrap();
        let mut s = Session::new(params);
        let mut buf = Vec::new();
        let msg = sample(1000, 1);
        let n = s.compress(&mut shared, &msg, &mut buf).unwrap();
        let packed = buf[..n].to_vec();
        let mut out = Vec::new();
        s.inflate(&mut shared, &packed, true, true, false, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(out, msg);
        assert_eq!(s.holds_codecs(), (false, false));
        assert_eq!(shared.inflaters.len(), 1, "inflater back in the pool");
        assert_eq!(
            s.stats,
            Stats {
                messages_in: 1,
                messages_out: 1
            }
        );
        // Too small to be worth it.
        assert_eq!(s.compress(&mut shared, b"hi", &mut buf), None);

        let keep = DeflateConfig {
            server_context_takeover: true,
            client_context_takeover: true,
            ..cfg
        };
        let params = negotiate(&keep, &elements).0.unwrap();
        let mut s = Session::new(params);
        assert_eq!(s.holds_codecs(), (false, false), "nothing before use");
        let n = s.compress(&mut shared, &msg, &mut buf).unwrap();
        let packed = buf[..n].to_vec();
        let mut out = Vec::new();
        s.inflate(&mut shared, &packed, true, true, false, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(s.holds_codecs(), (true, true));
    }
}
