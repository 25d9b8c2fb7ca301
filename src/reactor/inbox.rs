//! How other threads hand values to an app on the reactor: a channel plus
//! the poll's `Waker`. Each [`Inbox`] is made by an app (through
//! `Context::inbox`) and carries its ticket, so what is sent reaches that
//! app's `on_reply` as `Reply::Inbox`, and no other app.

use crate::app::Ticket;
use mio::Waker;
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

pub(crate) type Item = (Ticket, Box<dyn Any + Send>);

/// The reactor's end: makes senders.
pub(crate) struct InboxTx {
    tx: Sender<Item>,
    waker: Arc<Waker>,
}

impl InboxTx {
    /// The pair of a new inbox.
    pub fn new(waker: Arc<Waker>) -> (InboxTx, Receiver<Item>) {
        let (tx, rx) = channel();
        (InboxTx { tx, waker }, rx)
    }

    pub fn sender(&self, ticket: Ticket) -> Inbox {
        Inbox {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
            ticket,
        }
    }
}

/// Sends values from any thread to the app that made it (`Send`, `Clone`).
#[derive(Clone)]
pub struct Inbox {
    tx: Sender<Item>,
    waker: Arc<Waker>,
    ticket: Ticket,
}

/// The reactor is gone (its server stopped): the value was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct InboxClosed;

impl fmt::Display for InboxClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reactor has stopped")
    }
}

impl std::error::Error for InboxClosed {}

impl Inbox {
    /// Hands `value` to the app's `on_reply` on the reactor thread and
    /// wakes the reactor.
    pub fn send<T: Any + Send>(&self, value: T) -> Result<(), InboxClosed> {
        self.tx
            .send((self.ticket, Box::new(value)))
            .map_err(|_| InboxClosed)?;
        self.waker.wake().map_err(|_| InboxClosed)
    }

    /// The ticket the app's `on_reply` sees with each value.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Inbox({})", self.ticket)
    }
}
