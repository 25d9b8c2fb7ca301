//! Spare buffers shared by the connections of one reactor.

/// Largest buffer kept in a pool; bigger ones (a 16 MiB frame) are freed.
const POOL_MAX_CAPACITY: usize = 1024 * 1024;
/// Most bytes of capacity a pool keeps, all buffers together.
const POOL_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Most buffers a pool keeps: each costs its allocation's overhead and a
/// slot here whatever its capacity, so tiny buffers are bounded by count.
const POOL_MAX_BUFFERS: usize = 1024;

/// Spare buffers, bounded by bytes in all (8 MiB) and by the size of each
/// (1 MiB), so steady traffic allocates nothing and a burst of huge
/// messages leaves nothing behind. Buffers come back with whatever length
/// they had: input buffers keep their bytes initialised, output buffers are
/// cleared by whoever gives them back.
#[derive(Default)]
pub struct Pool {
    bufs: Vec<Vec<u8>>,
    /// Capacity held in `bufs`, bounded by `POOL_MAX_BYTES`.
    bytes: usize,
}

impl Pool {
    /// A spare buffer, or a new empty one.
    pub fn take(&mut self) -> Vec<u8> {
        let buf = self.bufs.pop().unwrap_or_default();
        self.bytes -= buf.capacity();
        buf
    }

    /// Keeps `buf` for later, unless it is too big or the pool is full.
    pub fn give(&mut self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap != 0
            && cap <= POOL_MAX_CAPACITY
            && self.bytes + cap <= POOL_MAX_BYTES
            && self.bufs.len() < POOL_MAX_BUFFERS
        {
            self.bytes += cap;
            self.bufs.push(buf);
        }
    }

    /// Buffers held.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True when no buffer is held.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_size_and_total() {
        let mut pool = Pool::default();
        pool.give(Vec::new());
        assert!(pool.is_empty(), "nothing to keep in an empty Vec");
        pool.give(Vec::with_capacity(POOL_MAX_CAPACITY + 1));
        assert!(pool.is_empty(), "too big to keep");
        for _ in 0..POOL_MAX_BYTES / POOL_MAX_CAPACITY + 2 {
            pool.give(Vec::with_capacity(POOL_MAX_CAPACITY));
        }
        assert_eq!(pool.len(), POOL_MAX_BYTES / POOL_MAX_CAPACITY);
        assert!(pool.take().capacity() >= POOL_MAX_CAPACITY);
        assert_eq!(pool.len(), POOL_MAX_BYTES / POOL_MAX_CAPACITY - 1);
        // Tiny buffers are bounded by count, not by their few bytes.
        let mut pool = Pool::default();
        for _ in 0..POOL_MAX_BUFFERS + 10 {
            pool.give(Vec::with_capacity(8));
        }
        assert_eq!(pool.len(), POOL_MAX_BUFFERS);
    }
}
