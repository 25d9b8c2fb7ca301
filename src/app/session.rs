//! PHP sessions for apps: [`SessionStore`] (where and how PHP keeps them),
//! [`SessionClient`] (reads and merged writes that answer later, driven
//! from an app's callbacks), and [`SessionProvider`], the wrapper that
//! reads the session named by the handshake's cookie before the inner app
//! decides, and attaches it (and its user) to the connection, where every
//! app sees it through [`Context::session`] and [`Context::user`].
//!
//! Nothing here blocks the reactor: Redis goes through the reactor's own
//! connection, files through a pool of worker threads (PHP's `flock` can
//! be held for a whole PHP request).

use super::{Accept, Application, ConnError, ConnId, ConnMap, Context, Http, Message, Reply};
use super::{Reject, Request, Ticket, TimerId, delegate_connection_events, negotiate};
use crate::clients::resp;
use crate::session::files::{FilesStore, Job};
use crate::session::{
    Patch, Serializer, Session, SessionData, SessionSettings, StoreError, StoreSpec, decode, encode,
};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::RedisId;

/// How long a lock taken for a Redis write lives if sprocket dies holding
/// it (a write takes milliseconds).
const REDIS_LOCK_MS: &str = "10000";
/// How often a Redis lock held by PHP is tried again.
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// Releases a lock only if it is still ours (as phpredis releases its own).
const RELEASE: &[u8] =
    b"if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end";

/// Where sessions live and how they are written. Cloning is cheap and
/// shares the files workers.
#[derive(Clone)]
pub struct SessionStore {
    backend: Backend,
    serializer: Serializer,
    lifetime: Duration,
    timeout: Duration,
}

#[derive(Clone)]
enum Backend {
    Files(FilesStore),
    Redis { server: RedisId, prefix: Arc<str> },
}

impl SessionStore {
    /// PHP's files handler in `dir` (`depth`: `N` of `N;MODE;/path`),
    /// served by `workers` threads.
    pub fn files(
        dir: PathBuf,
        depth: usize,
        serializer: Serializer,
        lifetime: Duration,
        timeout: Duration,
    ) -> io::Result<SessionStore> {
        let store = FilesStore::start(dir, depth, serializer, lifetime, 4)?;
        Ok(SessionStore {
            backend: Backend::Files(store),
            serializer,
            lifetime,
            timeout,
        })
    }

    /// phpredis's (or Symfony's) Redis handler on `server`, keys
    /// `prefix + id` (phpredis: `PHPREDIS_SESSION:`, Symfony: `sf_s`).
    pub fn redis(
        server: RedisId,
        prefix: &str,
        serializer: Serializer,
        lifetime: Duration,
        timeout: Duration,
    ) -> SessionStore {
        SessionStore {
            backend: Backend::Redis {
                server,
                prefix: prefix.into(),
            },
            serializer,
            lifetime,
            timeout,
        }
    }

    /// The store and provider options that `settings` (the
    /// `--session-*` options) describe, registering the Redis server with
    /// `server` when the store is Redis; `None` when sessions are off.
    pub fn from_settings(
        settings: &SessionSettings,
        server: &mut crate::Server,
    ) -> Result<Option<(SessionStore, SessionOptions)>, String> {
        let Some(spec) = &settings.store else {
            return Ok(None);
        };
        let (serializer, lifetime, timeout) =
            (settings.serializer, settings.lifetime, settings.timeout);
        let store = match spec {
            StoreSpec::Files { dir, depth } => {
                if !dir.is_dir() {
                    return Err(format!(
                        "--session-store files:{}: not a directory",
                        dir.display()
                    ));
                }
                SessionStore::files(dir.clone(), *depth, serializer, lifetime, timeout)
                    .map_err(|e| format!("cannot start the session workers: {e}"))?
            }
            StoreSpec::Redis(url) => {
                let id = server
                    .add_redis_url(url.clone())
                    .map_err(|e| format!("--session-store {url}: {e}"))?;
                SessionStore::redis(id, &settings.prefix, serializer, lifetime, timeout)
            }
        };
        let options = SessionOptions {
            cookie: settings.cookie.clone(),
            required: settings.required,
            user_key: settings.user_key.clone(),
        };
        Ok(Some((store, options)))
    }

    /// The session format.
    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// How long a read or write may take before it fails with
    /// [`StoreError::Timeout`] (or [`StoreError::Locked`]).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A finished read or write.
#[derive(Debug)]
pub struct Done {
    /// The tag given with the request.
    pub tag: u64,
    /// The session id.
    pub id: String,
    /// The session as read, or as written after merging; or why not.
    pub result: Result<SessionData, StoreError>,
    /// Whether this was a write.
    pub write: bool,
}

/// What the files workers send back.
struct FilesReply {
    op: u64,
    result: Result<SessionData, StoreError>,
}

/// Where a Redis operation stands.
enum Step {
    /// Waiting for `GET` (a read).
    Get,
    /// Waiting for `SET lock NX` (a write).
    Lock,
    /// Lock held, waiting for `GET`.
    GetLocked,
    /// Lock held, waiting for `SET key data EX`.
    Set(SessionData),
    /// On the files workers.
    Files,
}

struct Op {
    tag: u64,
    id: String,
    patch: Option<Patch>,
    step: Step,
    deadline: TimerId,
    /// Set once a lock of ours may be held in Redis.
    token: Option<String>,
}

/// Reads and merged writes of PHP sessions, for one app. The app hands
/// its `on_reply` and `on_timer` events to [`SessionClient::on_reply`] and
/// [`SessionClient::on_timer`] when [`SessionClient::owns`] or
/// [`SessionClient::owns_timer`] says they are the client's; completions
/// come back from those as [`Done`].
pub struct SessionClient {
    store: SessionStore,
    inbox: Option<crate::reactor::Inbox>,
    next: u64,
    ops: HashMap<u64, Op>,
    tickets: HashMap<Ticket, u64>,
    /// Deadline and retry timers, and whether each is a retry.
    timers: HashMap<TimerId, (u64, bool)>,
    /// Replies still to come for finished ops (and lock releases): ours,
    /// and dropped.
    stray: HashSet<Ticket>,
}

impl SessionClient {
    /// A client of `store`.
    pub fn new(store: SessionStore) -> SessionClient {
        SessionClient {
            store,
            inbox: None,
            next: 0,
            ops: HashMap::new(),
            tickets: HashMap::new(),
            timers: HashMap::new(),
            stray: HashSet::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    /// Operations not yet finished.
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Whether `ticket` answers one of this client's requests.
    pub fn owns(&self, ticket: Ticket) -> bool {
        self.tickets.contains_key(&ticket)
            || self.stray.contains(&ticket)
            || self.inbox.as_ref().is_some_and(|i| i.ticket() == ticket)
    }

    /// Whether `timer` is one of this client's.
    pub fn owns_timer(&self, timer: TimerId) -> bool {
        self.timers.contains_key(&timer)
    }

    /// Reads session `id` (which must be [`crate::session::valid_id`]).
    /// The result comes as a [`Done`] with `tag`; `None` here if it
    /// failed at once.
    pub fn read(&mut self, ctx: &mut Context<'_>, id: &str, tag: u64) -> Option<Done> {
        self.start(ctx, id, None, tag)
    }

    /// Writes `patch` into session `id`: under the store's lock, re-reads
    /// it, applies only these changes, writes it in the same format and
    /// renews its lifetime. A session no longer in the store is not
    /// recreated ([`StoreError::NotFound`]).
    pub fn write(
        &mut self,
        ctx: &mut Context<'_>,
        id: &str,
        patch: Patch,
        tag: u64,
    ) -> Option<Done> {
        self.start(ctx, id, Some(patch), tag)
    }

    fn start(
        &mut self,
        ctx: &mut Context<'_>,
        id: &str,
        patch: Option<Patch>,
        tag: u64,
    ) -> Option<Done> {
        let write = patch.is_some();
        let fail = |result: StoreError| Done {
            tag,
            id: id.to_owned(),
            result: Err(result),
            write,
        };
        if !crate::session::valid_id(id) {
            return Some(fail(StoreError::NotFound));
        }
        self.next += 1;
        let op_id = self.next;
        let deadline = ctx.add_timer(self.store.timeout);
        let mut op = Op {
            tag,
            id: id.to_owned(),
            patch,
            step: Step::Files,
            deadline,
            token: None,
        };
        let started = match &self.store.backend {
            Backend::Files(files) => {
                if self.inbox.is_none() {
                    self.inbox = ctx.inbox();
                }
                match &self.inbox {
                    None => Err(StoreError::Unavailable("no inbox on this server".into())),
                    Some(inbox) => {
                        let inbox = inbox.clone();
                        let done: crate::session::files::Done = Box::new(move |result| {
                            let _ = inbox.send(FilesReply { op: op_id, result });
                        });
                        let when = Instant::now() + self.store.timeout;
                        let job = match op.patch.clone() {
                            None => Job::Read {
                                id: id.to_owned(),
                                deadline: when,
                                done,
                            },
                            Some(patch) => Job::Write {
                                id: id.to_owned(),
                                patch,
                                deadline: when,
                                done,
                            },
                        };
                        if files.submit(job) {
                            Ok(())
                        } else {
                            Err(StoreError::Unavailable(
                                "the session workers stopped".into(),
                            ))
                        }
                    }
                }
            }
            Backend::Redis { server, prefix } => {
                let key = format!("{prefix}{id}");
                let server = *server;
                if write {
                    let token = format!("sprocket|{}|{op_id}", std::process::id());
                    op.step = Step::Lock;
                    let t = lock_command(ctx, server, &key, &token);
                    op.token = Some(token);
                    t
                } else {
                    op.step = Step::Get;
                    ctx.redis(server, &[b"GET", key.as_bytes()])
                }
                .map(|t| {
                    self.tickets.insert(t, op_id);
                })
                .ok_or_else(|| StoreError::Unavailable("no such Redis server".into()))
            }
        };
        match started {
            Ok(()) => {
                self.timers.insert(deadline, (op_id, false));
                self.ops.insert(op_id, op);
                None
            }
            Err(e) => {
                ctx.cancel_timer(deadline);
                Some(fail(e))
            }
        }
    }

    /// Handles a reply the client [`owns`](Self::owns).
    pub fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        ticket: Ticket,
        reply: Reply<'_>,
    ) -> Option<Done> {
        match reply {
            Reply::Inbox(value) => {
                let files = value.downcast::<FilesReply>().ok()?;
                self.ops.contains_key(&files.op).then_some(())?;
                self.finish(ctx, files.op, files.result)
            }
            Reply::Redis(result) => {
                if self.stray.remove(&ticket) {
                    if let Ok(resp::Reply::Error(e)) = &result {
                        log::warn!("session store: a late Redis reply was an error: {e}");
                    }
                    return None;
                }
                let op_id = self.tickets.remove(&ticket)?;
                let reply = match result {
                    Ok(resp::Reply::Error(e)) => {
                        Err(StoreError::Unavailable(format!("Redis: {e}")))
                    }
                    Ok(r) => Ok(r),
                    Err(e) => Err(StoreError::Unavailable(format!("Redis: {e}"))),
                };
                self.redis_step(ctx, op_id, reply)
            }
            _ => None,
        }
    }

    /// Handles a timer the client [`owns_timer`](Self::owns_timer).
    pub fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) -> Option<Done> {
        let (op_id, retry) = self.timers.remove(&timer)?;
        if retry {
            let op = self.ops.get(&op_id)?;
            let Backend::Redis { server, prefix } = &self.store.backend else {
                return None;
            };
            let key = format!("{prefix}{}", op.id);
            let token = op.token.clone()?;
            let t = lock_command(ctx, *server, &key, &token)?;
            self.tickets.insert(t, op_id);
            return None;
        }
        let locked = self
            .ops
            .get(&op_id)
            .is_some_and(|op| matches!(op.step, Step::Lock));
        let why = if locked {
            StoreError::Locked
        } else {
            StoreError::Timeout
        };
        self.finish(ctx, op_id, Err(why))
    }

    fn redis_step(
        &mut self,
        ctx: &mut Context<'_>,
        op_id: u64,
        reply: Result<resp::Reply, StoreError>,
    ) -> Option<Done> {
        let Backend::Redis { server, prefix } = &self.store.backend else {
            return None;
        };
        let server = *server;
        let op = self.ops.get_mut(&op_id)?;
        let key = format!("{prefix}{}", op.id);
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return self.finish(ctx, op_id, Err(e)),
        };
        let step = std::mem::replace(&mut op.step, Step::Files);
        match (step, reply) {
            (Step::Get | Step::GetLocked, resp::Reply::Bulk(None)) => {
                self.finish(ctx, op_id, Err(StoreError::NotFound))
            }
            (Step::Get, resp::Reply::Bulk(Some(bytes))) => {
                let result = decode(&bytes, self.store.serializer).map_err(StoreError::Malformed);
                self.finish(ctx, op_id, result)
            }
            (Step::Lock, resp::Reply::Bulk(None)) => {
                // PHP holds the lock: try again shortly, until the deadline.
                op.step = Step::Lock;
                let t = ctx.add_timer(LOCK_RETRY);
                self.timers.insert(t, (op_id, true));
                None
            }
            (Step::Lock, resp::Reply::Simple(_)) => {
                op.step = Step::GetLocked;
                let t = ctx.redis(server, &[b"GET", key.as_bytes()])?;
                self.tickets.insert(t, op_id);
                None
            }
            (Step::GetLocked, resp::Reply::Bulk(Some(bytes))) => {
                let merged = decode(&bytes, self.store.serializer)
                    .map_err(StoreError::Malformed)
                    .and_then(|mut data| {
                        if let Some(patch) = &op.patch {
                            patch
                                .apply(&mut data)
                                .map_err(|e| StoreError::Unwritable(e.to_string()))?;
                        }
                        let bytes = encode(&data, self.store.serializer)
                            .map_err(|e| StoreError::Unwritable(e.to_string()))?;
                        Ok((data, bytes))
                    });
                match merged {
                    Err(e) => self.finish(ctx, op_id, Err(e)),
                    Ok((data, bytes)) => {
                        let ttl = self.store.lifetime.as_secs().max(1).to_string();
                        let t = ctx.redis(
                            server,
                            &[b"SET", key.as_bytes(), &bytes, b"EX", ttl.as_bytes()],
                        )?;
                        op.step = Step::Set(data);
                        self.tickets.insert(t, op_id);
                        None
                    }
                }
            }
            (Step::Set(data), resp::Reply::Simple(_)) => self.finish(ctx, op_id, Ok(data)),
            (_, other) => self.finish(
                ctx,
                op_id,
                Err(StoreError::Unavailable(format!(
                    "unexpected Redis reply {other:?}"
                ))),
            ),
        }
    }

    fn finish(
        &mut self,
        ctx: &mut Context<'_>,
        op_id: u64,
        result: Result<SessionData, StoreError>,
    ) -> Option<Done> {
        let op = self.ops.remove(&op_id)?;
        ctx.cancel_timer(op.deadline);
        // Retry timers die with the op; replies still to come (an op that
        // timed out, the lock's release) stay ours, to be dropped, so that
        // they never reach another app sharing the route.
        let timers: Vec<TimerId> = self
            .timers
            .iter()
            .filter(|(_, (o, _))| *o == op_id)
            .map(|(t, _)| *t)
            .collect();
        for t in timers {
            self.timers.remove(&t);
            ctx.cancel_timer(t);
        }
        let stray = &mut self.stray;
        self.tickets.retain(|t, o| {
            let keep = *o != op_id;
            if !keep {
                stray.insert(*t);
            }
            keep
        });
        if let (Some(token), Backend::Redis { server, prefix }) = (&op.token, &self.store.backend) {
            let key = format!("{prefix}{}_LOCK", op.id);
            let release = ctx.redis(
                *server,
                &[b"EVAL", RELEASE, b"1", key.as_bytes(), token.as_bytes()],
            );
            if let Some(t) = release {
                self.stray.insert(t);
            }
        }
        let write = op.patch.is_some();
        let family = if write {
            "session_writes"
        } else {
            "session_reads"
        };
        match &result {
            Ok(_) => ctx.count(family, "ok"),
            Err(e) => {
                ctx.count(family, e.outcome());
                if !matches!(e, StoreError::NotFound) {
                    log::warn!(
                        "session {}…: {} failed: {e}",
                        op.id.get(..6).unwrap_or(""),
                        if write { "write" } else { "read" }
                    );
                }
            }
        }
        Some(Done {
            tag: op.tag,
            id: op.id,
            result,
            write,
        })
    }
}

fn lock_command(ctx: &mut Context<'_>, server: RedisId, key: &str, token: &str) -> Option<Ticket> {
    let lock = format!("{key}_LOCK");
    ctx.redis(
        server,
        &[
            b"SET",
            lock.as_bytes(),
            token.as_bytes(),
            b"NX",
            b"PX",
            REDIS_LOCK_MS.as_bytes(),
        ],
    )
}

/// How [`SessionProvider`] finds and judges a connection's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// The session cookie (`session.name`, default `PHPSESSID`).
    pub cookie: String,
    /// Refuse handshakes without a readable session: 401, or 503 when the
    /// store is down or slow.
    pub required: bool,
    /// A dotted path into the session whose value is the user id.
    pub user_key: Option<String>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            cookie: "PHPSESSID".into(),
            required: false,
            user_key: None,
        }
    }
}

/// Reads the PHP session named by the handshake's cookie before the inner
/// app decides (the handshake waits, the reactor does not), and attaches
/// it and its user to the connection ([`Context::session`],
/// [`Context::user`]). What Ratchet's `SessionProvider` does, with writes
/// left to a [`SessionClient`] and a store that may be down.
///
/// An inner app answering [`Accept::Later`] decides through the context as
/// usual; the protocol used when it accepts with `None` is the one its
/// [`Application::protocols`] negotiate.
pub struct SessionProvider<A> {
    inner: A,
    client: SessionClient,
    options: SessionOptions,
    waiting: ConnMap<Request>,
}

impl<A: Application> SessionProvider<A> {
    /// Wraps `inner`.
    pub fn new(store: SessionStore, options: SessionOptions, inner: A) -> Self {
        SessionProvider {
            inner,
            client: SessionClient::new(store),
            options,
            waiting: ConnMap::new(),
        }
    }

    /// The wrapped app.
    pub fn inner(&mut self) -> &mut A {
        &mut self.inner
    }

    fn session_id<'r>(&self, req: &'r Request) -> Option<&'r str> {
        let cookies = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .map(|(_, v)| v.as_str());
        crate::session::cookie(cookies, &self.options.cookie)
            .filter(|id| crate::session::valid_id(id))
    }

    /// Attaches what a read found and returns the decision: the inner
    /// app's, or a refusal when a session is required and there is none.
    fn settle(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
        done: Done,
    ) -> Result<Accept, Reject> {
        match done.result {
            Ok(data) => {
                let session = Session::new(done.id, data, self.options.user_key.as_deref());
                let user = session.user.as_deref().map(Arc::from);
                ctx.set_session(conn, Some(Arc::new(session)));
                ctx.set_user(conn, user);
            }
            Err(e) if self.options.required => {
                return Err(if e.is_store_fault() {
                    Reject::new(503, "the session store is unavailable; try again")
                } else {
                    Reject::new(401, "no readable session: sign in first")
                });
            }
            Err(_) => {}
        }
        self.inner.accept(ctx, conn, req)
    }

    /// Applies the decision for a read that finished later.
    fn decide(&mut self, ctx: &mut Context<'_>, done: Done) {
        let conn = from_tag(done.tag);
        let Some(req) = self.waiting.remove(conn) else {
            return;
        };
        if !ctx.is_deciding(conn) {
            // Timed out (503 sent) or gone meanwhile: nothing to decide.
            return;
        }
        let decision = self.settle(ctx, conn, &req, done);
        ctx.decide(conn, decision);
    }
}

/// A connection as a request tag, and back.
fn tag_of(conn: ConnId) -> u64 {
    (u64::from(conn.generation()) << 32) | conn.index() as u64
}

fn from_tag(tag: u64) -> ConnId {
    ConnId::new(tag as u32, (tag >> 32) as u32)
}

impl<A: Application> Application for SessionProvider<A> {
    delegate_connection_events!(inner);

    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        let Some(id) = self.session_id(req) else {
            ctx.count("session_reads", "no_cookie");
            if self.options.required {
                return Err(Reject::new(
                    401,
                    format!(
                        "no session: the {} cookie is missing or not a session id",
                        self.options.cookie
                    ),
                ));
            }
            return self.inner.accept(ctx, conn, req);
        };
        let id = id.to_owned();
        if let Some(done) = self.client.read(ctx, &id, tag_of(conn)) {
            // Failed at once (no store): decided now.
            return self.settle(ctx, conn, req, done);
        }
        self.waiting.insert(conn, req.clone());
        Ok(Accept::Later(negotiate(
            self.inner.protocols(),
            &req.offered_protocols,
        )))
    }

    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        self.inner.http(ctx, conn, req)
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if self.client.owns_timer(timer) {
            if let Some(done) = self.client.on_timer(ctx, timer) {
                self.decide(ctx, done);
            }
        } else {
            self.inner.on_timer(ctx, timer)
        }
    }

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if self.client.owns(ticket) {
            if let Some(done) = self.client.on_reply(ctx, ticket, reply) {
                self.decide(ctx, done);
            }
        } else {
            self.inner.on_reply(ctx, ticket, reply)
        }
    }
}
