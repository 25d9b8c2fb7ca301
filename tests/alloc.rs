//! The echo hot path allocates nothing per message: a counting allocator
//! watches the server thread while clients echo thousands of messages.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn echo_path_does_not_allocate_per_message() {
    let srv = TestServer::start(Config::default(), || {
        counting_alloc::count_this_thread();
        Router::new().route("/echo", Echo)
    });
    let mut clients: Vec<Client> = (0..4).map(|_| srv.client("/echo")).collect();
    // Warm up: pools fill, buffers reach their working size.
    for c in &mut clients {
        for _ in 0..50 {
            c.echo("warm-up message of a typical size");
        }
    }
    let before = counting_alloc::allocations();
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
    let during = counting_alloc::allocations() - before;
    let messages = (ROUNDS * 4 * 3 / 2) as u64;
    eprintln!("server allocations: {during} for {messages} messages");
    assert!(
        during < messages / 100,
        "{during} allocations for {messages} echoed messages"
    );
}
