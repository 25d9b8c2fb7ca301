//! The echo hot path allocates nothing per message: a counting allocator
//! watches the server thread while clients echo thousands of messages.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// Set on the server thread only; const-initialised, so reading it
    /// never allocates (no recursion into the allocator).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the only extra work is a
// thread-local read and an atomic add, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr`/`layout` came from `System`, as the caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn echo_path_does_not_allocate_per_message() {
    let srv = TestServer::start(Config::default(), || {
        COUNTING.with(|c| c.set(true));
        Router::new().route("/echo", Echo)
    });
    let mut clients: Vec<Client> = (0..4).map(|_| srv.client("/echo")).collect();
    // Warm up: pools fill, buffers reach their working size.
    for c in &mut clients {
        for _ in 0..50 {
            c.echo("warm-up message of a typical size");
        }
    }
    let before = SERVER_ALLOCS.load(Ordering::Relaxed);
    const ROUNDS: usize = 2000;
    for i in 0..ROUNDS {
        for c in &mut clients {
            c.send_text("a typical chat message, 40 bytes long...");
            if i % 2 == 0 {
                c.send_binary(&[i as u8; 300]);
            }
        }
        for c in &mut clients {
            assert_eq!(c.read_frame().payload.len(), 40);
            if i % 2 == 0 {
                assert_eq!(c.read_frame().payload.len(), 300);
            }
        }
    }
    let during = SERVER_ALLOCS.load(Ordering::Relaxed) - before;
    let messages = (ROUNDS * 4 * 3 / 2) as u64;
    eprintln!("server allocations: {during} for {messages} messages");
    assert!(
        during < messages / 100,
        "{during} allocations for {messages} echoed messages"
    );
}
