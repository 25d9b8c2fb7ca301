//! What RESP decoding allocates: a declared length reserves nothing before
//! its bytes arrive, and a big bulk that trickles in costs O(total) bytes of
//! allocation (the input buffer doubling, one copy into the reply), not a
//! copy per read.

use sprocket::clients::redis::{Event, Mode, RedisConn, RedisUrl, Settings};
use sprocket::clients::resp::{Limits, Reply};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Measuring;

impl Measuring {
    fn record(size: usize) {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(size, Ordering::Relaxed);
            LARGEST.fetch_max(size, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the bookkeeping is a thread-local read and atomic adds, which
// never allocate.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Measuring::record(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Measuring::record(new_size);
        // SAFETY: `ptr`/`layout` came from `System`, as the caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Measuring = Measuring;

/// (allocations, bytes, largest) made by `f` on this thread.
fn measure(f: impl FnOnce()) -> (usize, usize, usize) {
    let before = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    LARGEST.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    (
        ALLOCS.load(Ordering::Relaxed) - before.0,
        BYTES.load(Ordering::Relaxed) - before.1,
        LARGEST.load(Ordering::Relaxed),
    )
}

fn conn(max_bulk: usize) -> RedisConn {
    let settings = Settings {
        limits: Limits {
            max_bulk,
            ..Limits::default()
        },
        ..Settings::default()
    };
    let url = RedisUrl::parse("redis://127.0.0.1").unwrap();
    let mut c = RedisConn::with_settings(&url, Mode::Commands, settings);
    c.connected(std::time::Instant::now());
    c.command(&[b"GET", b"big"], 1);
    c
}

// One test function: the counters are process-wide and tests run in
// parallel threads.
#[test]
fn decoding_allocates_in_proportion_to_what_arrived() {
    // A bulk declaring 1 GiB, of which 4 KiB arrived.
    let mut c = conn(2 << 30);
    let mut wire = b"$1073741824\r\n".to_vec();
    wire.extend_from_slice(&[b'x'; 4096]);
    let (_, bytes, largest) = measure(|| c.handle_input(&wire));
    assert!(c.poll_event().is_none());
    assert!(largest < 64 << 10, "largest allocation {largest} bytes");
    assert!(bytes < 64 << 10, "{bytes} bytes allocated");

    // 1 MiB in 4 KiB reads (256 calls).
    let mut c = conn(64 << 20);
    let mut wire = b"$1048576\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'y', 1 << 20));
    wire.extend_from_slice(b"\r\n");
    let (allocs, bytes, _) = measure(|| {
        for chunk in wire.chunks(4096) {
            c.handle_input(chunk);
        }
    });
    match c.poll_event() {
        Some(Event::Reply {
            tag: 1,
            reply: Ok(Reply::Bulk(Some(data))),
        }) => assert_eq!(data.len(), 1 << 20),
        other => panic!("{other:?}"),
    }
    // Doubling to 2 MiB is ~4 MiB in all, plus the 1 MiB reply; a copy per
    // read would be over 128 MiB.
    assert!(allocs < 40, "{allocs} allocations");
    assert!(bytes < 8 << 20, "{bytes} bytes allocated");
}
