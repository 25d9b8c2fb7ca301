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
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn compressed_echo_does_not_allocate_per_message() {
    let srv = TestServer::start(Config::default(), || {
        counting_alloc::count_this_thread();
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
    let before = counting_alloc::allocations();
    const ROUNDS: usize = 1000;
    for _ in 0..ROUNDS {
        round(&mut clients);
    }
    let during = counting_alloc::allocations() - before;
    let messages = (ROUNDS * 4 * 2) as u64;
    eprintln!("server allocations: {during} for {messages} compressed messages");
    assert!(
        during < messages / 100,
        "{during} allocations for {messages} compressed echoes"
    );
}
