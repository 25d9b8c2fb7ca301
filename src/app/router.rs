//! Composite applications: [`Aggregate`] fans every event out to all of its
//! children; [`Router`] gives each connection to the child mounted at its
//! path (Ratchet's `App::route`).

use super::{
    Application, ConnError, ConnId, ConnMap, Context, Message, Page, Reject, Request, TimerId,
};

/// Sends every event to each child in turn (the seeds' `AggregateApplication`):
/// e.g. a logger, a presence tracker and the real app side by side.
///
/// A handshake is accepted only if every child accepts it; the subprotocol
/// is the first one a child chose.
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
}

impl Application for Aggregate {
    fn accept(&mut self, req: &Request) -> Result<Option<String>, Reject> {
        let mut chosen = None;
        for child in &mut self.children {
            let proto = child.accept(req)?;
            chosen = chosen.or(proto);
        }
        Ok(chosen)
    }
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        self.children
            .iter_mut()
            .for_each(|c| c.on_open(ctx, conn, req));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        self.children
            .iter_mut()
            .for_each(|c| c.on_message(ctx, conn, msg));
    }
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        self.children
            .iter_mut()
            .for_each(|c| c.on_close(ctx, conn, code, reason));
    }
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        self.children
            .iter_mut()
            .for_each(|c| c.on_error(ctx, conn, error));
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.children
            .iter_mut()
            .for_each(|c| c.on_timer(ctx, timer));
    }
}

/// Picks an application by the request path; unknown paths get 404.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, Box<dyn Application>)>,
    pages: Vec<(String, Page)>,
    /// Route (index into `routes`) of each open connection.
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

    /// Serves `page` to plain HTTP GETs of exactly `path` (e.g. a demo
    /// page at `/`).
    pub fn page(mut self, path: impl Into<String>, page: Page) -> Self {
        self.pages.push((path.into(), page));
        self
    }

    fn find(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|(p, _)| p == path)
    }

    fn child(&mut self, conn: ConnId) -> Option<&mut Box<dyn Application>> {
        let route = *self.by_conn.get(conn)? as usize;
        self.routes.get_mut(route).map(|(_, app)| app)
    }
}

impl Application for Router {
    fn http(&mut self, req: &Request) -> Option<Page> {
        if let Some((_, page)) = self.pages.iter().find(|(p, _)| *p == req.path) {
            return Some(page.clone());
        }
        let route = self.find(&req.path)?;
        self.routes[route].1.http(req)
    }
    fn accept(&mut self, req: &Request) -> Result<Option<String>, Reject> {
        match self.find(&req.path) {
            Some(i) => self.routes[i].1.accept(req),
            None => Err(Reject::new(404, format!("no application at {}", req.path))),
        }
    }
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        let Some(route) = self.find(&req.path) else {
            return;
        };
        self.by_conn.insert(conn, route as u32);
        self.routes[route].1.on_open(ctx, conn, req);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        if let Some(app) = self.child(conn) {
            app.on_message(ctx, conn, msg);
        }
    }
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        if let Some(app) = self.child(conn) {
            app.on_close(ctx, conn, code, reason);
        }
        self.by_conn.remove(conn);
    }
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        if let Some(app) = self.child(conn) {
            app.on_error(ctx, conn, error);
        }
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.routes
            .iter_mut()
            .for_each(|(_, app)| app.on_timer(ctx, timer));
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
        assert_eq!(r.accept(&req("/nope", &[])).unwrap_err().status, 404);
        assert_eq!(r.accept(&req("/echo?x=1", &[])), Ok(None));
        let mut rec = Recorder::default();
        let (a, b, c) = (ConnId::new(0, 1), ConnId::new(1, 2), ConnId::new(2, 3));
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
    fn aggregate_fans_out_and_any_refusal_wins() {
        struct Refuse;
        impl Application for Refuse {
            fn accept(&mut self, _: &Request) -> Result<Option<String>, Reject> {
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
        assert_eq!(agg.accept(&req("/", &[])).unwrap_err().status, 403);
    }
}
