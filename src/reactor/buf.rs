//! Buffers a connection holds only while it needs them.
//!
//! Reads go into one reactor-wide buffer. A connection keeps bytes of its
//! own ([`InBuf`]) only when a frame or head is incomplete, and an output
//! buffer only while output is pending; both come from and go back to a
//! small [`Pool`], so steady traffic allocates nothing and an idle
//! connection holds no buffer at all.

pub(crate) use crate::ws::Pool;

/// Size of the one read buffer all connections share. Big enough that a
/// 64 KiB message and its header arrive whole (and are delivered without
/// a copy) with room for more in the same read.
pub(crate) const READ_BUFFER: usize = 256 * 1024;
/// Free space to offer a read when the size of what is coming is unknown.
const READ_CHUNK: usize = 4096;

/// Unprocessed input of one connection: `data[start..end]`, always starting
/// at a frame (or head) boundary. `data` is fully initialised so reads can
/// go straight into its free tail without zero-filling per read.
#[derive(Default, Debug)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// Total size of the frame being waited for, when its header is known.
    want: usize,
}

impl InBuf {
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Drops `n` processed bytes; `want` is the size of the next incomplete
    /// frame as the decoder reported it (0 if unknown).
    pub fn consume(&mut self, n: usize, want: usize) {
        self.start += n;
        self.want = want;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Keeps `bytes` (the unprocessed tail of a shared read).
    pub fn stash(&mut self, bytes: &[u8], want: usize, pool: &mut Pool) {
        debug_assert!(self.is_empty());
        if self.data.is_empty() {
            self.data = pool.take();
        }
        let size = want.max(bytes.len() + READ_CHUNK);
        if self.data.len() < size {
            self.data.resize(size, 0);
        }
        self.data[..bytes.len()].copy_from_slice(bytes);
        self.start = 0;
        self.end = bytes.len();
        self.want = want;
    }

    /// Free space to read into: room for the whole pending frame when its
    /// size is known, else at least a chunk. Grows (zeroing new bytes once).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let size = if self.want > self.end {
            self.want
        } else {
            self.end + READ_CHUNK
        };
        if self.data.len() < size {
            self.data.resize(size.max(self.data.len().min(size * 2)), 0);
        }
        &mut self.data[self.end..]
    }

    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Hands the buffer back once empty.
    pub fn release_if_empty(&mut self, pool: &mut Pool) {
        if self.is_empty() && !self.data.is_empty() {
            pool.give(std::mem::take(&mut self.data));
            self.start = 0;
            self.end = 0;
            self.want = 0;
        }
    }

    /// Bytes held, for tests and diagnostics.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stash_read_consume_release() {
        let mut pool = Pool::default();
        let mut b = InBuf::default();
        b.stash(b"abc", 10, &mut pool);
        assert_eq!(b.bytes_mut(), b"abc");
        let spare = b.spare();
        assert!(spare.len() >= 7);
        spare[..7].copy_from_slice(b"defghij");
        b.filled(7);
        assert_eq!(b.bytes_mut(), b"abcdefghij");
        b.consume(4, 0);
        assert_eq!(b.bytes_mut(), b"efghij");
        let _ = b.spare();
        assert_eq!(b.bytes_mut(), b"efghij", "compaction keeps the bytes");
        b.consume(6, 0);
        b.release_if_empty(&mut pool);
        assert_eq!(b.capacity(), 0, "idle connection holds no buffer");
        assert_eq!(pool.len(), 1);
    }
}
