//! The compressed echo path allocates nothing per message either, once
//! pools and scratch space are warm: inflaters come from a pool, messages
//! are assembled in pooled buffers, the shared compressor writes into
//! scratch space that only grows. (Separate from alloc.rs: each test binary
//! has one global allocator and one counter.)

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};
use sprocket::ws::deflate::Compressor;
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
fn compressed_echo_does_not_allocate_per_message() {
    let srv = TestServer::start(Config::default(), || {
        COUNTING.with(|c| c.set(true));
        Router::new().route("/echo", Echo)
    });
    let offer = [("Sec-WebSocket-Extensions", "permessage-deflate")];
    let mut clients: Vec<Client> = (0..4)
        .map(|_| Client::connect(srv.addr, "/echo", &offer))
        .collect();
    let json = "{\"topic\":\"prices\",\"symbol\":\"ACME\",\"value\":42.5},".repeat(20);
    let mut packed = Vec::new();
    let n = Compressor::new(6, 15).compress(json.as_bytes(), &mut packed);
    packed.truncate(n);
    let round = |clients: &mut Vec<Client>| {
        for c in clients.iter_mut() {
            c.send_frame(0xC1, &packed);
            c.send_frame(0x41, &packed[..n / 2]);
            c.send_frame(0x80, &packed[n / 2..]);
        }
        for c in clients.iter_mut() {
            for _ in 0..2 {
                let f = c.read_frame();
                assert_eq!((f.opcode, f.rsv), (1, 4), "compressed echo");
            }
        }
    };
    for _ in 0..50 {
        round(&mut clients);
    }
    let before = SERVER_ALLOCS.load(Ordering::Relaxed);
    const ROUNDS: usize = 1000;
    for _ in 0..ROUNDS {
        round(&mut clients);
    }
    let during = SERVER_ALLOCS.load(Ordering::Relaxed) - before;
    let messages = (ROUNDS * 4 * 2) as u64;
    eprintln!("server allocations: {during} for {messages} compressed messages");
    assert!(
        during < messages / 100,
        "{during} allocations for {messages} compressed echoes"
    );
}
