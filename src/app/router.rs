//! Composite applications: [`Aggregate`] fans every event out to all of its
//! children; [`Router`] gives each connection to the child mounted at its
//! path (Ratchet's `App::route`).

use super::{
    Accept, Application, ConnError, ConnId, ConnMap, Context, Http, Message, Page, Reject, Reply,
    Request, Ticket, TimerId,
};

/// Sends every event to each child in turn (the seeds' `AggregateApplication`):
/// e.g. a logger, a presence tracker and the real app side by side.
///
/// A handshake is accepted only if every child accepts it; the subprotocol
/// is the first one a child chose. One child may decide later
/// ([`Accept::Later`]); the aggregate then waits for that child's decision.
/// A second child deciding later for the same handshake is a programming
/// error: the handshake is refused with 500 and logged. Timers and replies
/// go to the child that started them.
#[derive(Default)]
pub struct Aggregate {
    children: Vec<Box<dyn Application>>,
}

impl Aggregate {
    /// An aggregate with no children.
    pub fn new() -> Self {
        Aggregate::default()
    }

    /// Adds a child; events reach children in the order they were added.
    pub fn with(mut self, child: impl Application + 'static) -> Self {
        self.children.push(Box::new(child));
        self
    }

    fn each(
        &mut self,
        ctx: &mut Context<'_>,
        mut f: impl FnMut(&mut dyn Application, &mut Context<'_>),
    ) {
        for (i, child) in self.children.iter_mut().enumerate() {
            ctx.child(i, |ctx| f(child.as_mut(), ctx));
        }
    }
}

impl Application for Aggregate {
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        let mut chosen = None;
        let mut later = false;
        for (i, child) in self.children.iter_mut().enumerate() {
            match ctx.child(i, |ctx| child.accept(ctx, conn, req))? {
                Accept::Now(proto) => chosen = chosen.or(proto),
                Accept::Later(proto) if !later => {
                    later = true;
                    chosen = chosen.or(proto);
                }
                Accept::Later(_) => {
                    log::error!("{conn}: two children of an Aggregate decide later; refusing");
                    return Err(Reject::new(500, "internal error"));
                }
            }
        }
        Ok(if later {
            Accept::Later(chosen)
        } else {
            Accept::Now(chosen)
        })
    }
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        for (i, child) in self.children.iter_mut().enumerate() {
            match ctx.child(i, |ctx| child.http(ctx, conn, req)) {
                Http::Pass => {}
                answer => return answer,
            }
        }
        Http::Pass
    }
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.each(ctx, |c, ctx| c.on_start(ctx));
    }
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        self.each(ctx, |c, ctx| c.on_shutdown(ctx));
    }
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        self.each(ctx, |c, ctx| c.on_open(ctx, conn, req));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        self.each(ctx, |c, ctx| c.on_message(ctx, conn, msg));
    }
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        self.each(ctx, |c, ctx| c.on_close(ctx, conn, code, reason));
    }
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        self.each(ctx, |c, ctx| c.on_error(ctx, conn, error));
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some((i, child)) = pick(&mut self.children, timer.route().hop(ctx.depth())) {
            ctx.child(i, |ctx| child.on_timer(ctx, timer));
        }
    }
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if let Some((i, child)) = pick(&mut self.children, ticket.route().hop(ctx.depth())) {
            ctx.child(i, |ctx| child.on_reply(ctx, ticket, reply));
        }
    }
}

/// The child a completion is addressed to, if it exists.
fn pick(
    children: &mut [Box<dyn Application>],
    hop: Option<usize>,
) -> Option<(usize, &mut Box<dyn Application>)> {
    let i = hop?;
    let child = children.get_mut(i);
    if child.is_none() {
        log::error!("completion for child {i}, which does not exist; dropped");
    }
    child.map(|c| (i, c))
}

/// Picks an application by the request path; unknown paths get 404.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, Box<dyn Application>)>,
    /// Path prefixes of routes mounted with [`Router::prefixes`]: (prefix,
    /// index into `routes`).
    prefixes: Vec<(String, usize)>,
    pages: Vec<(String, Page)>,
    /// Route (index into `routes`) of each connection, from its accept.
    by_conn: ConnMap<u32>,
}

impl Router {
    /// A router with no routes.
    pub fn new() -> Self {
        Router::default()
    }

    /// Mounts `app` at exactly `path` (e.g. `/chat`).
    pub fn route(mut self, path: impl Into<String>, app: impl Application + 'static) -> Self {
        self.routes.push((path.into(), Box::new(app)));
        self
    }

    /// Mounts `app` at every path that begins with one of `prefixes`
    /// (e.g. `/app/` and `/apps/`), for apps that read the rest of the
    /// path. Exact routes come first; among prefixes, the longest match.
    pub fn prefixes(mut self, prefixes: &[&str], app: impl Application + 'static) -> Self {
        let i = self.routes.len();
        self.routes.push((prefixes.join(" "), Box::new(app)));
        self.prefixes
            .extend(prefixes.iter().map(|p| (p.to_string(), i)));
        self
    }

    /// Serves `page` to plain HTTP GETs of exactly `path` (e.g. a demo
    /// page at `/`).
    pub fn page(mut self, path: impl Into<String>, page: Page) -> Self {
        self.pages.push((path.into(), page));
        self
    }

    fn find(&self, path: &str) -> Option<usize> {
        // A prefix route is named by its prefixes joined with spaces,
        // which no request path equals.
        if let Some(i) = self.routes.iter().position(|(p, _)| p == path) {
            return Some(i);
        }
        self.prefixes
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|&(_, i)| i)
    }

    /// The child serving `conn` and its index.
    fn child_of(&mut self, conn: ConnId) -> Option<(usize, &mut Box<dyn Application>)> {
        let i = *self.by_conn.get(conn)? as usize;
        self.routes.get_mut(i).map(|(_, app)| (i, app))
    }

    /// Runs `f` on the child serving `conn`, as that child.
    fn with_child(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        f: impl FnOnce(&mut dyn Application, &mut Context<'_>),
    ) {
        if let Some((i, app)) = self.child_of(conn) {
            ctx.child(i, |ctx| f(app.as_mut(), ctx));
        }
    }
}

impl Application for Router {
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        if let Some((_, page)) = self.pages.iter().find(|(p, _)| *p == req.path) {
            if req.method != "GET" && req.method != "HEAD" {
                return Http::Respond(
                    Page::text(405, format!("{} takes GET\n", req.path))
                        .header("Allow", "GET, HEAD"),
                );
            }
            return Http::Respond(page.clone());
        }
        match self.find(&req.path) {
            Some(i) => {
                let app = &mut self.routes[i].1;
                ctx.child(i, |ctx| app.http(ctx, conn, req))
            }
            None => Http::Respond(Page::text(404, format!("no application at {}\n", req.path))),
        }
    }
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        let Some(i) = self.find(&req.path) else {
            return Err(Reject::new(404, format!("no application at {}", req.path)));
        };
        let app = &mut self.routes[i].1;
        let decision = ctx.child(i, |ctx| app.accept(ctx, conn, req))?;
        self.by_conn.insert(conn, i as u32);
        Ok(decision)
    }
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        for (i, (_, app)) in self.routes.iter_mut().enumerate() {
            ctx.child(i, |ctx| app.on_start(ctx));
        }
    }
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        for (i, (_, app)) in self.routes.iter_mut().enumerate() {
            ctx.child(i, |ctx| app.on_shutdown(ctx));
        }
    }
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        if !self.by_conn.contains(conn) {
            let Some(i) = self.find(&req.path) else {
                return;
            };
            self.by_conn.insert(conn, i as u32);
        }
        self.with_child(ctx, conn, |app, ctx| app.on_open(ctx, conn, req));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        self.with_child(ctx, conn, |app, ctx| app.on_message(ctx, conn, msg));
    }
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        self.with_child(ctx, conn, |app, ctx| app.on_close(ctx, conn, code, reason));
        self.by_conn.remove(conn);
    }
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        self.with_child(ctx, conn, |app, ctx| app.on_error(ctx, conn, error));
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let hop = timer.route().hop(ctx.depth());
        if let Some(i) = hop
            && let Some((_, app)) = self.routes.get_mut(i)
        {
            ctx.child(i, |ctx| app.on_timer(ctx, timer));
        }
    }
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        let hop = ticket.route().hop(ctx.depth());
        if let Some(i) = hop
            && let Some((_, app)) = self.routes.get_mut(i)
        {
            ctx.child(i, |ctx| app.on_reply(ctx, ticket, reply));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::Recorder;
    use crate::app::{Chat, Echo};

    fn req(path: &str, offered: &[&str]) -> Request {
        let head = crate::http::head::parse_head(
            format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n")
                .leak()
                .as_bytes(),
            &Default::default(),
        )
        .unwrap();
        Request::new(&head, "127.0.0.1:1".parse().unwrap(), offered)
    }

    #[test]
    fn router_routes_by_path_and_404s() {
        let mut r = Router::new()
            .route("/echo", Echo)
            .route("/chat", Chat::default());
        let mut rec = Recorder::default();
        let (a, b, c) = (ConnId::new(0, 1), ConnId::new(1, 2), ConnId::new(2, 3));
        let refused = r.accept(&mut rec.ctx(), a, &req("/nope", &[]));
        assert_eq!(refused.unwrap_err().status, 404);
        assert_eq!(
            r.accept(&mut rec.ctx(), a, &req("/echo?x=1", &[])),
            Ok(Accept::Now(None))
        );
        rec.open = vec![a, b, c];
        r.on_open(&mut rec.ctx(), a, &req("/echo", &[]));
        r.on_open(&mut rec.ctx(), b, &req("/chat", &[]));
        r.on_open(&mut rec.ctx(), c, &req("/chat", &[]));
        r.on_message(&mut rec.ctx(), a, Message::Text("hi"));
        r.on_message(&mut rec.ctx(), b, Message::Binary(b"yo"));
        assert_eq!(
            rec.sent,
            vec![(a, b"hi".to_vec(), true), (c, b"yo".to_vec(), false)]
        );
        r.on_close(&mut rec.ctx(), c, 1000, "");
        rec.sent.clear();
        r.on_message(&mut rec.ctx(), b, Message::Text("alone"));
        assert!(rec.sent.is_empty(), "closed member must not receive");
    }

    #[test]
    fn prefix_routes_take_what_exact_routes_leave() {
        let mut r = Router::new()
            .route("/app/exact", Echo)
            .prefixes(&["/app/", "/apps/"], Echo)
            .prefixes(&["/app/long/"], Echo);
        assert_eq!(r.find("/app/exact"), Some(0));
        assert_eq!(r.find("/app/key1"), Some(1));
        assert_eq!(r.find("/apps/1/events"), Some(1));
        assert_eq!(r.find("/app/long/x"), Some(2));
        assert_eq!(r.find("/app"), None);
        assert_eq!(r.find("/application"), None);
        let mut rec = Recorder::default();
        let refused = r.accept(&mut rec.ctx(), ConnId::new(0, 1), &req("/appx", &[]));
        assert_eq!(refused.unwrap_err().status, 404);
    }

    #[test]
    fn aggregate_fans_out_and_any_refusal_wins() {
        struct Refuse;
        impl Application for Refuse {
            fn accept(
                &mut self,
                _: &mut Context<'_>,
                _: ConnId,
                _: &Request,
            ) -> Result<Accept, Reject> {
                Err(Reject::new(403, "no"))
            }
            fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
            fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
            fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
        }
        let mut agg = Aggregate::new().with(Echo).with(Echo);
        let mut rec = Recorder::default();
        let a = ConnId::new(0, 1);
        rec.open = vec![a];
        agg.on_message(&mut rec.ctx(), a, Message::Text("x"));
        assert_eq!(rec.sent.len(), 2, "both children saw the message");
        let mut agg = Aggregate::new().with(Echo).with(Refuse);
        let refused = agg.accept(&mut rec.ctx(), a, &req("/", &[]));
        assert_eq!(refused.unwrap_err().status, 403);
    }

    /// Counts its timers; starts one on every message.
    #[derive(Default)]
    struct Ticks(std::rc::Rc<std::cell::Cell<u32>>);
    impl Application for Ticks {
        fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
        fn on_message(&mut self, ctx: &mut Context<'_>, _: ConnId, _: Message<'_>) {
            ctx.add_timer(std::time::Duration::from_secs(1));
        }
        fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
        fn on_timer(&mut self, _: &mut Context<'_>, _: TimerId) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn timers_reach_only_the_child_that_made_them() {
        let counts: Vec<std::rc::Rc<std::cell::Cell<u32>>> =
            (0..4).map(|_| Default::default()).collect();
        let tick = |i: usize| Ticks(counts[i].clone());
        // Router /a → Ticks 0; /b → Aggregate [Ticks 1, Ticks 2]; /c → Ticks 3.
        let mut r = Router::new()
            .route("/a", tick(0))
            .route("/b", Aggregate::new().with(tick(1)).with(tick(2)))
            .route("/c", tick(3));
        let mut rec = Recorder::default();
        let (a, b) = (ConnId::new(0, 1), ConnId::new(1, 1));
        rec.open = vec![a, b];
        r.on_open(&mut rec.ctx(), a, &req("/a", &[]));
        r.on_open(&mut rec.ctx(), b, &req("/b", &[]));
        r.on_message(&mut rec.ctx(), b, Message::Text("start timers"));
        r.on_message(&mut rec.ctx(), a, Message::Text("start one"));
        let timers: Vec<TimerId> = rec.timers.iter().map(|t| t.0).collect();
        assert_eq!(timers.len(), 3);
        assert_eq!(format!("{:?}", timers[0].route()), "app 0:/1/0");
        for t in timers {
            r.on_timer(&mut rec.ctx(), t);
        }
        let seen: Vec<u32> = counts.iter().map(|c| c.get()).collect();
        assert_eq!(seen, [1, 1, 1, 0], "each timer to its maker, none to /c");
    }
}
