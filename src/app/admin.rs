//! `/health` and `/metrics` as an ordinary app: mount it on the public
//! router, or on an admin listener of its own (`--admin-listen`), where
//! the router, `IpBlocklist` and the rest apply as for any app.

use super::{Application, ConnId, Context, Http, Message, Page, Request};

/// Serves `GET /health` (`200 ok`; with the Redis bus, a second line
/// `bus: up` or `bus: down`, still 200: the process serves, and delivers
/// locally, either way) and `GET /metrics` (the Prometheus text format),
/// whatever path it is mounted at: the last path segment picks the
/// endpoint. It accepts no WebSocket.
#[derive(Clone, Copy, Debug, Default)]
pub struct Admin;

impl Application for Admin {
    fn accept(
        &mut self,
        _: &mut Context<'_>,
        _: ConnId,
        req: &Request,
    ) -> Result<super::Accept, super::Reject> {
        Err(super::Reject::new(
            404,
            format!("{} is not a WebSocket endpoint", req.path),
        ))
    }

    fn http(&mut self, ctx: &mut Context<'_>, _: ConnId, req: &Request) -> Http {
        let endpoint = req.path.rsplit('/').next().unwrap_or("");
        if !matches!(endpoint, "health" | "metrics") {
            return Http::Pass;
        }
        if req.method != "GET" && req.method != "HEAD" {
            return Http::Respond(
                Page::text(405, format!("{} takes GET\n", req.path)).header("Allow", "GET, HEAD"),
            );
        }
        Http::Respond(match endpoint {
            "health" => match ctx.bus_up() {
                None => Page::text(200, "ok\n"),
                Some(true) => Page::text(200, "ok\nbus: up\n"),
                Some(false) => Page::text(200, "ok\nbus: down\n"),
            },
            _ => Page::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                ctx.metrics_text().into_bytes(),
            ),
        })
    }

    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
}
