//! Peer: tokio-tungstenite on a current-thread runtime.
//!
//! `/echo` echoes every data message, `/chat` relays every data message to all
//! other `/chat` clients. Usage: `peer-tokio-tungstenite PORT`.
//!
//! Writes are batched the idiomatic way: echo uses `StreamExt::forward`, which
//! feeds the sink and flushes when the input runs dry; each chat member has a
//! writer task that feeds everything queued for it, then flushes once.

use futures_util::{SinkExt, StreamExt};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Members = Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let members: Members = Rc::default();
        let mut next_id = 0u64;
        loop {
            tokio::select! {
                r = listener.accept() => {
                    let Ok((sock, _)) = r else { continue };
                    next_id += 1;
                    tokio::task::spawn_local(serve(sock, next_id, members.clone()));
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    });
}

async fn serve(sock: TcpStream, id: u64, members: Members) {
    let _ = sock.set_nodelay(true);
    let mut path = String::new();
    let cb = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(16 << 20);
    config.max_frame_size = Some(16 << 20);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(sock, cb, Some(config)).await
    else {
        return;
    };
    let (mut tx, rx) = ws.split();
    match path.as_str() {
        "/echo" => {
            let data = rx.filter_map(|m| async move {
                match m {
                    Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(Ok(m)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            });
            let _ = data.forward(tx).await;
        }
        "/chat" => {
            let (qtx, mut qrx) = mpsc::unbounded_channel::<Message>();
            members.borrow_mut().insert(id, qtx);
            let writer = tokio::task::spawn_local(async move {
                while let Some(m) = qrx.recv().await {
                    if tx.feed(m).await.is_err() {
                        return;
                    }
                    while let Ok(m) = qrx.try_recv() {
                        if tx.feed(m).await.is_err() {
                            return;
                        }
                    }
                    if tx.flush().await.is_err() {
                        return;
                    }
                }
            });
            let mut rx = rx;
            while let Some(Ok(m)) = rx.next().await {
                if matches!(m, Message::Text(_) | Message::Binary(_)) {
                    for (other, q) in members.borrow().iter() {
                        if *other != id {
                            let _ = q.send(m.clone());
                        }
                    }
                }
            }
            members.borrow_mut().remove(&id);
            writer.abort();
        }
        _ => {}
    }
}
