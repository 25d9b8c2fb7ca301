//! PHP's `files` session handler, read and written as PHP does: one
//! `sess_<id>` file per session, locked with `flock` for the whole
//! read-modify-write (PHP holds `LOCK_EX` from `session_start()` to
//! `session_write_close()`), rewritten in place (truncate, then write at
//! offset 0) so the inode PHP locks stays the same.
//!
//! Filesystem calls block, and waiting for PHP's lock can take a request's
//! whole duration, so all of it runs on a small pool of worker threads; the
//! reactor hands jobs over and gets results back through a callback (an
//! inbox). A slow lock holds one worker, never the reactor.

use super::store::{StoreError, file_path};
use super::{Serializer, SessionData, decode, encode};
use crate::session::Patch;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often a worker retries a lock PHP holds.
const LOCK_RETRY: Duration = Duration::from_millis(5);

/// Where a job's result goes (called on the worker thread).
pub type Done = Box<dyn FnOnce(Result<SessionData, StoreError>) + Send>;

/// What a worker does.
pub enum Job {
    /// Reads and decodes a session under a shared lock.
    Read {
        /// The session id (checked by [`super::valid_id`]).
        id: String,
        /// Give up (with [`StoreError::Locked`]) after this.
        deadline: Instant,
        /// The result.
        done: Done,
    },
    /// Re-reads a session under the exclusive lock, applies `patch`, and
    /// writes it back.
    Write {
        /// The session id.
        id: String,
        /// What to change.
        patch: Patch,
        /// Give up after this.
        deadline: Instant,
        /// The merged session as written.
        done: Done,
    },
}

/// A files store and its workers. Cloning shares the workers; they exit
/// once every clone is dropped.
#[derive(Clone)]
pub struct FilesStore {
    jobs: Sender<Job>,
}

/// The store's fixed settings, shared by the workers.
struct Layout {
    dir: PathBuf,
    depth: usize,
    serializer: Serializer,
    lifetime: Duration,
}

impl FilesStore {
    /// Starts `workers` threads serving sessions in `dir` (with PHP's
    /// `depth` directory levels). Sessions whose file was last written
    /// more than `lifetime` ago are treated as gone, as PHP's garbage
    /// collector will make them.
    pub fn start(
        dir: PathBuf,
        depth: usize,
        serializer: Serializer,
        lifetime: Duration,
        workers: usize,
    ) -> io::Result<FilesStore> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let layout = Arc::new(Layout {
            dir,
            depth,
            serializer,
            lifetime,
        });
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let layout = layout.clone();
            std::thread::Builder::new()
                .name(format!("sprocket-sessions-{i}"))
                .spawn(move || work(&rx, &layout))?;
        }
        Ok(FilesStore { jobs: tx })
    }

    /// Queues a job; false if the workers are gone.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

fn work(rx: &Mutex<Receiver<Job>>, layout: &Layout) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        match job {
            Job::Read { id, deadline, done } => done(read(layout, &id, deadline)),
            Job::Write {
                id,
                patch,
                deadline,
                done,
            } => done(write(layout, &id, &patch, deadline)),
        }
    }
}

fn open(layout: &Layout, id: &str, writable: bool) -> Result<File, StoreError> {
    let path = file_path(&layout.dir, layout.depth, id);
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(&path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound,
            _ => StoreError::Unavailable(format!("{}: {e}", path.display())),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    if age.is_some_and(|age| age > layout.lifetime) {
        return Err(StoreError::NotFound);
    }
    Ok(file)
}

/// Takes the lock, retrying while someone else holds it, until `deadline`.
fn lock(file: &File, exclusive: bool, deadline: Instant) -> Result<(), StoreError> {
    loop {
        let tried = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() + LOCK_RETRY < deadline => {
                std::thread::sleep(LOCK_RETRY)
            }
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked),
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!("flock: {e}")));
            }
        }
    }
}

fn read_all(mut file: &File) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("read: {e}")))?;
    Ok(bytes)
}

fn read(layout: &Layout, id: &str, deadline: Instant) -> Result<SessionData, StoreError> {
    let file = open(layout, id, false)?;
    lock(&file, false, deadline)?;
    let bytes = read_all(&file)?;
    decode(&bytes, layout.serializer).map_err(StoreError::Malformed)
}

fn write(
    layout: &Layout,
    id: &str,
    patch: &Patch,
    deadline: Instant,
) -> Result<SessionData, StoreError> {
    let mut file = open(layout, id, true)?;
    lock(&file, true, deadline)?;
    let bytes = read_all(&file)?;
    let mut data = decode(&bytes, layout.serializer).map_err(StoreError::Malformed)?;
    patch
        .apply(&mut data)
        .map_err(|e| StoreError::Unwritable(e.to_string()))?;
    let encoded =
        encode(&data, layout.serializer).map_err(|e| StoreError::Unwritable(e.to_string()))?;
    let io = |e: io::Error| StoreError::Unavailable(format!("write: {e}"));
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&encoded).map_err(io)?;
    // The lock goes with the file.
    Ok(data)
}
