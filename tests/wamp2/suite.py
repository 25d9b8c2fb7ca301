#!/usr/bin/env python3
"""WAMP v2 interop suite: Autobahn|Python 26.10.2 (asyncio) against a router.

Usage: python suite.py URL REALM [CASE_PREFIX...]

Every case runs once per serializer (json, msgpack) in fresh sessions and
prints one JSON line:
    {"case": "py/json/call.args_kwargs", "ok": true, "got": {...}, "info": {...}}
`got` holds what the case observed and should be the same on every router
(error URIs, argument lists, orders); `info` holds values that legitimately
differ between routers (session ids, authid/authrole values, publication
ids) and is never compared. The exit status is 1 if any case failed.
"""

import asyncio
import json
import os
import random
import sys
import time
import traceback
from urllib.parse import urlparse

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import (
    CallOptions,
    CallResult,
    ComponentConfig,
    PublishOptions,
    RegisterOptions,
    SubscribeOptions,
)

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer}
CASE_TIMEOUT = 20.0  # seconds for one case, sessions included
STEP = 5.0  # seconds to wait for any one expected message
QUIET = 0.5  # seconds to wait to be sure something does NOT arrive


class Failed(Exception):
    """A case's assertion failed; the message says what was expected."""


def check(cond, what):
    if not cond:
        raise Failed(what)


async def wait(fut, what, timeout=STEP):
    try:
        return await asyncio.wait_for(asyncio.shield(fut) if asyncio.isfuture(fut) else fut, timeout)
    except asyncio.TimeoutError:
        raise Failed(f"timed out after {timeout} s waiting for {what}") from None


def uid():
    return f"{int(time.time() * 1000) % 100000000}{random.randrange(1000000)}"


class Client(ApplicationSession):
    """One WAMP session; `joined` resolves to the SessionDetails (or to the
    CloseDetails of an ABORT), `closed` to the CloseDetails of the end."""

    def __init__(self, config, loop):
        super().__init__(config)
        self.joined = loop.create_future()
        self.closed = loop.create_future()
        self.lost = loop.create_future()
        self.raw = {}  # request id -> future for replies to raw messages

    @property
    def welcome_roles(self):
        return sorted((self._router_roles or {}).keys())

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_result(details)
        if not self.closed.done():
            self.closed.set_result(details)
        self.disconnect()

    def onUserError(self, fail, msg):
        # Expected here: the procedures that raise on purpose and the
        # handlers cancelled by INTERRUPT. Autobahn would log each.
        pass

    def onOpen(self, transport):
        self.proto = transport
        super().onOpen(transport)

    def close_code(self):
        p = getattr(self, "proto", None)
        return [getattr(p, "remoteCloseCode", None), getattr(p, "remoteCloseReason", None)]

    def onDisconnect(self):
        for fut in (self.joined, self.closed, self.lost):
            if not fut.done():
                fut.set_result(None)
        for fut in self.raw.values():
            if not fut.done():
                fut.set_result(None)

    def onMessage(self, msg):
        # Replies to messages sent with send_raw() (built by hand to carry
        # what the library itself refuses to send) go to their future.
        rid = getattr(msg, "request", None)
        if self.raw and rid in self.raw and isinstance(
            msg, (message.Error, message.Subscribed, message.Registered, message.Published, message.Result)
        ):
            fut = self.raw.pop(rid)
            if not fut.done():
                fut.set_result(msg)
            return
        super().onMessage(msg)

    def send_raw(self, msg):
        fut = asyncio.get_running_loop().create_future()
        self.raw[msg.request] = fut
        self._transport.send(msg)
        return fut


class Ctx:
    """Per-case state: the router URL, realm, serializer and the sessions
    opened (all closed at the end of the case)."""

    def __init__(self, url, realm, ser):
        self.url, self.realm, self.ser = url, realm, ser
        self.sessions = []
        self.protocols = []
        self.info = {}

    async def session(self, realm=None, expect_join=True):
        loop = asyncio.get_running_loop()
        created = loop.create_future()

        def make():
            # Called once the WebSocket handshake is done.
            s = Client(ComponentConfig(realm or self.realm), loop)
            self.sessions.append(s)
            if not created.done():
                created.set_result(s)
            return s

        u = urlparse(self.url)
        factory = WampWebSocketClientFactory(make, url=self.url, serializers=[SERIALIZERS[self.ser]()])
        _, proto = await loop.create_connection(factory, u.hostname, u.port)
        self.protocols.append(proto)
        s = await wait(created, "the WebSocket handshake")
        details = await wait(s.joined, "WELCOME or ABORT")
        if expect_join:
            check(details is not None and hasattr(details, "session"), f"join failed: {details!r}")
        return s, details

    async def close(self):
        for s in self.sessions:
            try:
                if s.is_attached():
                    s.leave()
                    await asyncio.wait_for(asyncio.shield(s.closed), 2)
            except Exception:
                pass
        for p in self.protocols:
            try:
                p.transport.abort()
            except Exception:
                pass


CASES = []


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn

    return deco


def app_error(e):
    """An ApplicationError as comparable data."""
    return {"error": e.error, "args": list(e.args), "kwargs": dict(e.kwargs or {})}


async def expect_error(coro, what):
    try:
        r = await asyncio.wait_for(coro, STEP)
    except ApplicationError as e:
        return e
    except asyncio.TimeoutError:
        raise Failed(f"{what}: no answer within {STEP} s") from None
    raise Failed(f"{what}: expected an error, got result {r!r}")


# --- 1, 2: session ------------------------------------------------------------


@case("join")
async def c_join(ctx):
    s, d = await ctx.session()
    sub = getattr(s.proto, "websocket_protocol_in_use", None)
    check(sub == f"wamp.2.{ctx.ser}", f"negotiated subprotocol {sub!r}")
    check(isinstance(d.session, int) and d.session > 0, f"session id {d.session!r}")
    check(d.realm == ctx.realm, f"realm {d.realm!r}")
    check(isinstance(d.authid, str) and d.authid, f"authid {d.authid!r}")
    check(isinstance(d.authrole, str) and d.authrole, f"authrole {d.authrole!r}")
    roles = s.welcome_roles or []
    check("broker" in roles and "dealer" in roles, f"router roles {roles}")
    ctx.info.update(session=d.session, authid=d.authid, authrole=d.authrole, authmethod=d.authmethod)
    return {"realm": d.realm, "roles": roles, "authid": True, "authrole": True, "subprotocol": sub}


@case("abort.no_such_realm")
async def c_no_such_realm(ctx):
    s, d = await ctx.session(realm="nosuchrealm", expect_join=False)
    check(d is not None and not hasattr(d, "session"), f"expected ABORT, got {d!r}")
    check(d.reason == "wamp.error.no_such_realm", f"ABORT reason {d.reason!r}")
    ctx.info["message"] = d.message
    return {"reason": d.reason}


# --- 3, 4: RPC and errors -------------------------------------------------------


@case("call.args_kwargs")
async def c_call_args_kwargs(ctx):
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.echo{uid()}"
    await callee.register(lambda *a, **kw: CallResult(*reversed(a), n=len(a), **kw), p)
    r = await wait(caller.call(p, 1, "two", [3], {"four": 4}, x=1.5, y="why", z=None), "RESULT")
    check(isinstance(r, CallResult), f"expected CallResult, got {r!r}")
    got = {"args": list(r.results), "kwargs": dict(r.kwresults)}
    check(got["args"] == [{"four": 4}, [3], "two", 1], f"args {got['args']}")
    check(got["kwargs"] == {"n": 4, "x": 1.5, "y": "why", "z": None}, f"kwargs {got['kwargs']}")
    return got


@case("call.single_and_none")
async def c_call_single(ctx):
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.add{uid()}"
    await callee.register(lambda a, b: a + b, p)
    await callee.register(lambda: None, p + ".nothing")
    r = await wait(caller.call(p, 2, 3), "RESULT")
    n = await wait(caller.call(p + ".nothing"), "RESULT")
    check(r == 5, f"add(2, 3) = {r!r}")
    check(n is None, f"nothing() = {n!r}")
    return {"add": r, "nothing": n}


@case("error.no_such_procedure")
async def c_no_such_procedure(ctx):
    s, _ = await ctx.session()
    e = await expect_error(s.call(f"com.example.nobody{uid()}"), "call of an unregistered procedure")
    check(e.error == "wamp.error.no_such_procedure", f"error {e.error}")
    return {"error": e.error}


@case("error.application")
async def c_app_error(ctx):
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.fails{uid()}"

    def fails():
        raise ApplicationError("com.example.error.custom", 1, 2, foo="bar")

    await callee.register(fails, p)
    e = await expect_error(caller.call(p), "a raising procedure")
    got = app_error(e)
    check(got == {"error": "com.example.error.custom", "args": [1, 2], "kwargs": {"foo": "bar"}}, f"got {got}")
    return got


@case("error.procedure_already_exists")
async def c_already_exists(ctx):
    a, _ = await ctx.session()
    b, _ = await ctx.session()
    p = f"com.example.taken{uid()}"
    await a.register(lambda: 1, p)
    e = await expect_error(b.register(lambda: 2, p), "second register")
    e2 = await expect_error(a.register(lambda: 3, p), "second register by the same session")
    check(e.error == "wamp.error.procedure_already_exists", f"other session: {e.error}")
    check(e2.error == "wamp.error.procedure_already_exists", f"same session: {e2.error}")
    r = await wait(b.call(p), "RESULT")
    check(r == 1, f"the first registration answers: {r!r}")
    return {"other": e.error, "same": e2.error, "answer": r}


async def invalid_uri(ctx, kind, uri):
    """Send KIND with a syntactically invalid URI, built by hand (the library
    refuses to send some of them). The router must refuse it: either
    ERROR wamp.error.invalid_uri (what the spec asks) or by ending the
    session; `got` records which."""
    s, _ = await ctx.session()
    rid = s._request_id_gen.next()
    good = "com.example.good"
    if kind == "subscribe":
        m = message.Subscribe(rid, good)
        m.topic = uri
    elif kind == "register":
        m = message.Register(rid, good)
        m.procedure = uri
    elif kind == "publish":
        m = message.Publish(rid, good, args=[1], acknowledge=True)
        m.topic = uri
    else:
        m = message.Call(rid, good, args=[1])
        m.procedure = uri
    reply = await wait(s.send_raw(m), f"a reply to {kind.upper()} {uri!r} or the end of the session")
    if reply is None:
        ctx.info["close"] = s.close_code()
        return {"refused": "session closed"}
    check(isinstance(reply, message.Error), f"{kind} {uri!r} accepted: {reply!r}")
    check(reply.error == "wamp.error.invalid_uri", f"error {reply.error}")
    return {"refused": reply.error}


for _kind in ("subscribe", "register", "publish", "call"):
    for _label, _uri in (("empty_component", "com..bad"), ("space", "com.bad uri")):

        def _mk(kind=_kind, uri=_uri):
            async def fn(ctx):
                return await invalid_uri(ctx, kind, uri)

            return fn

        case(f"error.invalid_uri.{_kind}.{_label}")(_mk())


# --- 5, 6, 7: progressive results, timeout, cancel --------------------------------


@case("call.progressive")
async def c_progressive(ctx):
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.progress{uid()}"

    async def prog(n, details=None):
        check(details.progress is not None, "caller did not ask for progressive results")
        for i in range(n):
            details.progress(i, step=i)
            await asyncio.sleep(0.02)
        return CallResult("done", total=n)

    await callee.register(prog, p, options=RegisterOptions(details_arg="details"))
    seen = []
    r = await wait(
        caller.call(p, 3, options=CallOptions(on_progress=lambda *a, **kw: seen.append([list(a), kw]))), "RESULT"
    )
    check(seen == [[[0], {"step": 0}], [[1], {"step": 1}], [[2], {"step": 2}]], f"progress {seen}")
    final = [list(r.results), dict(r.kwresults)]
    check(final == [["done"], {"total": 3}], f"final {final}")
    return {"progress": seen, "final": final}


@case("call.timeout")
async def c_timeout(ctx):
    """CALL.Options.timeout=1 on a callee that takes 10 s. The router cancels:
    the caller gets wamp.error.canceled, the callee an INTERRUPT. (The spec
    says milliseconds; Crossbar reads the number as seconds, so 1 is used:
    1 ms or 1 s both end well before the callee would.)"""
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.slow{uid()}"
    interrupted = asyncio.get_running_loop().create_future()

    async def slow():
        try:
            await asyncio.sleep(10)
            return "late"
        except asyncio.CancelledError:
            interrupted.set_result(True)
            raise

    await callee.register(slow, p)
    t0 = time.monotonic()
    try:
        r = await asyncio.wait_for(caller.call(p, options=CallOptions(timeout=3)), 8)
        raise Failed(f"call with timeout=1 answered {r!r}")
    except ApplicationError as err:
        e = err
    except asyncio.TimeoutError:
        raise Failed("call with timeout=1 not ended by the router within 8 s") from None
    took = time.monotonic() - t0
    got_int = await wait(interrupted, "the callee's INTERRUPT")
    check(e.error == "wamp.error.canceled", f"error {e.error}")
    ctx.info.update(seconds=round(took, 2), args=list(e.args))
    return {"error": e.error, "callee_interrupted": got_int}


def call_request_id(session, fut):
    for rid, req in session._call_reqs.items():
        if req.on_reply is fut:
            return rid
    raise Failed("cannot find the CALL's request id")


async def cancel_case(ctx, mode):
    """A long call cancelled with CANCEL.Options.mode=MODE (sent by hand:
    Autobahn|Python's own cancel() sends no mode).
    kill:       the callee gets INTERRUPT; the caller's ERROR
                wamp.error.canceled comes after the callee's ERROR
                (the callee takes 1 s to send it).
    killnowait: INTERRUPT to the callee, ERROR to the caller at once.
    skip:       no INTERRUPT; the spec sends the caller ERROR at once.
                Crossbar 26.10.1 sends the caller nothing at all, not
                even when the callee's YIELD comes later: both are
                accepted, `got.caller` says which."""
    loop = asyncio.get_running_loop()
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.long{uid()}"
    started = loop.create_future()
    interrupted = loop.create_future()
    length = 1.5 if mode == "skip" else 10

    async def long():
        started.set_result(True)
        try:
            await asyncio.sleep(length)
            return "late"
        except asyncio.CancelledError:
            interrupted.set_result(time.monotonic())
            # The callee takes 1 s to answer the INTERRUPT: with kill the
            # caller's ERROR waits for it, with killnowait it does not.
            await asyncio.sleep(1.0)
            raise

    await callee.register(long, p)
    fut = caller.call(p)
    await wait(started, "the INVOCATION")
    rid = call_request_id(caller, fut)
    t0 = time.monotonic()
    caller._transport.send(message.Cancel(rid, mode=mode))
    try:
        r = await asyncio.wait_for(asyncio.shield(fut), length + 1.5 if mode == "skip" else STEP)
        raise Failed(f"cancelled call answered {r!r}")
    except ApplicationError as err:
        e = err
    except asyncio.TimeoutError:
        if mode != "skip":
            raise Failed(f"no ERROR for the cancelled call within {STEP} s") from None
        e = None
    t_err = time.monotonic()
    ctx.info["seconds"] = round(t_err - t0, 3)
    if mode == "skip":
        check(not interrupted.done(), "skip: the callee got an INTERRUPT")
        if e is None:
            return {"caller": "nothing", "callee_interrupted": False}
        check(e.error == "wamp.error.canceled", f"error {e.error}")
        check(t_err - t0 < 1.0, f"skip: ERROR after {t_err - t0:.2f} s, not at once")
        return {"caller": e.error, "callee_interrupted": False}
    t_int = await wait(interrupted, "the callee's INTERRUPT")
    if mode == "kill":
        check(t_err >= t_int + 0.9, f"kill: caller's ERROR {t_err - t_int:.3f} s after the INTERRUPT, not after the callee's ERROR")
    else:
        check(t_err - t0 < 0.9, f"killnowait: caller's ERROR after {t_err - t0:.3f} s, it waited for the callee")
    check(e.error == "wamp.error.canceled", f"error {e.error}")
    ctx.info["args"] = list(e.args)
    return {"caller": e.error, "callee_interrupted": True}


for _mode in ("kill", "killnowait", "skip"):
    case(f"call.cancel.{_mode}")(lambda ctx, m=_mode: cancel_case(ctx, m))


# --- 8: shared registrations ------------------------------------------------------


async def shared(ctx, policy):
    p = f"com.example.shared{uid()}"
    callees = []
    for i in (1, 2, 3):
        s, _ = await ctx.session()
        await s.register(lambda i=i: i, p, options=RegisterOptions(invoke=policy))
        callees.append(s)
    caller, _ = await ctx.session()
    answers = [await wait(caller.call(p), "RESULT") for _ in range(6)]
    return p, callees, answers


@case("shared.roundrobin")
async def c_rr(ctx):
    _, _, answers = await shared(ctx, "roundrobin")
    check(answers == [1, 2, 3, 1, 2, 3], f"answers {answers}")
    return {"answers": answers}


@case("shared.first")
async def c_first(ctx):
    _, _, answers = await shared(ctx, "first")
    check(answers == [1] * 6, f"answers {answers}")
    return {"answers": answers}


@case("shared.last")
async def c_last(ctx):
    _, _, answers = await shared(ctx, "last")
    check(answers == [3] * 6, f"answers {answers}")
    return {"answers": answers}


@case("shared.random")
async def c_random(ctx):
    _, _, answers = await shared(ctx, "random")
    check(all(a in (1, 2, 3) for a in answers), f"answers {answers}")
    ctx.info["answers"] = answers
    return {"all_from_callees": True}


@case("shared.first_after_leave")
async def c_first_leave(ctx):
    p, callees, _ = await shared(ctx, "first")
    callees[0].leave()
    await wait(callees[0].closed, "GOODBYE")
    caller = ctx.sessions[-1]
    answers = [await wait(caller.call(p), "RESULT") for _ in range(3)]
    check(answers == [2, 2, 2], f"answers {answers}")
    return {"answers": answers}


@case("shared.policy_mismatch")
async def c_mismatch(ctx):
    a, _ = await ctx.session()
    b, _ = await ctx.session()
    p = f"com.example.mixed{uid()}"
    await a.register(lambda: 1, p, options=RegisterOptions(invoke="roundrobin"))
    e = await expect_error(b.register(lambda: 2, p, options=RegisterOptions(invoke="random")), "mismatched policy")
    e2 = await expect_error(b.register(lambda: 2, p), "single after shared")
    # Crossbar's URI for a conflicting policy (the spec names none).
    want = "wamp.error.procedure_exists_with_different_invocation_policy"
    check(e.error == want, f"random after roundrobin: {e.error}")
    check(e2.error == want, f"single after roundrobin: {e2.error}")
    return {"random_after_roundrobin": e.error, "single_after_roundrobin": e2.error}


# --- 9, 10: callee gone, caller identification -------------------------------------


@case("call.callee_gone")
async def c_callee_gone(ctx):
    callee, _ = await ctx.session()
    caller, _ = await ctx.session()
    p = f"com.example.vanishing{uid()}"
    started = asyncio.get_running_loop().create_future()

    async def handler():
        started.set_result(True)
        await asyncio.sleep(10)

    await callee.register(handler, p)
    fut = caller.call(p)
    await wait(started, "the INVOCATION")
    callee.leave()
    e = await expect_error(fut, "call whose callee left")
    check(e.error == "wamp.error.canceled", f"error {e.error}")
    ctx.info["args"] = list(e.args)
    return {"error": e.error}


@case("call.caller_disclosed")
async def c_disclose_caller(ctx):
    """Autobahn|Python 26 has no CallOptions(disclose_me=...): the CALL is
    sent as is, and the router discloses by its own policy (Crossbar: the
    role's `disclose.caller`). The callee's details.caller must be the
    caller's session id."""
    callee, _ = await ctx.session()
    caller, cd = await ctx.session()
    p = f"com.example.whocalls{uid()}"
    await callee.register(
        lambda details=None: [details.caller, details.caller_authid], p,
        options=RegisterOptions(details_arg="details"),
    )
    r = await wait(caller.call(p), "RESULT")
    check(r[0] == cd.session, f"details.caller {r[0]!r}, caller is {cd.session}")
    check(r[1] == cd.authid, f"details.caller_authid {r[1]!r}, caller's authid {cd.authid!r}")
    return {"caller_is_caller": True, "caller_authid_is_callers": True}


# --- 11, 12: pub/sub -----------------------------------------------------------------


class Inbox:
    """Collects events of one subscription."""

    def __init__(self):
        self.events = []
        self.cond = asyncio.Event()

    def __call__(self, *args, **kwargs):
        details = kwargs.pop("details", None)
        self.events.append({"args": list(args), "kwargs": kwargs, "details": details})
        self.cond.set()

    async def one(self, what):
        while not self.events:
            self.cond.clear()
            try:
                await asyncio.wait_for(self.cond.wait(), STEP)
            except asyncio.TimeoutError:
                raise Failed(f"no EVENT within {STEP} s: {what}") from None
        return self.events.pop(0)

    async def none(self, what):
        await asyncio.sleep(QUIET)
        check(not self.events, f"unexpected EVENT: {what}: {self.events}")


async def subscribed(ctx, topic, n, options=None):
    out = []
    for _ in range(n):
        s, d = await ctx.session()
        box = Inbox()
        await s.subscribe(box, topic, options=options or SubscribeOptions(details_arg="details"))
        out.append((s, d, box))
    return out


async def publish_ack(pub, topic, *args, **kwargs):
    opts = kwargs.pop("options", None) or PublishOptions()
    opts.acknowledge = True
    return await wait(pub.publish(topic, *args, options=opts, **kwargs), "PUBLISHED")


@case("pubsub.args_kwargs")
async def c_pub_args(ctx):
    t = f"com.example.topic{uid()}"
    [(_, _, box)] = await subscribed(ctx, t, 1)
    pub, _ = await ctx.session()
    await publish_ack(pub, t, 1, "two", [3], k={"v": True}, n=None)
    ev = await box.one("args/kwargs")
    got = {"args": ev["args"], "kwargs": ev["kwargs"]}
    check(got == {"args": [1, "two", [3]], "kwargs": {"k": {"v": True}, "n": None}}, f"got {got}")
    return got


@case("pubsub.exclude_me")
async def c_exclude_me(ctx):
    t = f"com.example.me{uid()}"
    [(s, _, box)] = await subscribed(ctx, t, 1)
    await publish_ack(s, t, "default")
    await box.none("publisher got its own event with exclude_me unset")
    await publish_ack(s, t, "false", options=PublishOptions(exclude_me=False))
    ev = await box.one("exclude_me=False")
    check(ev["args"] == ["false"], f"args {ev['args']}")
    return {"default": "excluded", "exclude_me_false": ev["args"]}


@case("pubsub.exclude_eligible")
async def c_exclude_eligible(ctx):
    t = f"com.example.lists{uid()}"
    subs = await subscribed(ctx, t, 3)
    pub, _ = await ctx.session()
    ids = [d.session for _, d, _ in subs]
    await publish_ack(pub, t, "ex", options=PublishOptions(exclude=[ids[1]]))
    await publish_ack(pub, t, "el", options=PublishOptions(eligible=[ids[0], ids[1]]))
    await publish_ack(pub, t, "both", options=PublishOptions(eligible=[ids[0], ids[1]], exclude=[ids[0]]))
    await asyncio.sleep(QUIET)
    seen = [[e["args"][0] for e in box.events] for _, _, box in subs]
    check(seen == [["ex", "el"], ["el", "both"], ["ex"]], f"per subscriber {seen}")
    return {"per_subscriber": seen}


@case("pubsub.exclude_eligible_authid")
async def c_authid_lists(ctx):
    t = f"com.example.authids{uid()}"
    subs = await subscribed(ctx, t, 2)
    pub, _ = await ctx.session()
    authids = [d.authid for _, d, _ in subs]
    ctx.info["authids"] = authids
    check(authids[0] != authids[1], f"both subscribers have authid {authids[0]!r}: cannot tell them apart")
    await publish_ack(pub, t, "ex", options=PublishOptions(exclude_authid=[authids[0]]))
    await publish_ack(pub, t, "el", options=PublishOptions(eligible_authid=[authids[0]]))
    await asyncio.sleep(QUIET)
    seen = [[e["args"][0] for e in box.events] for _, _, box in subs]
    check(seen == [["el"], ["ex"]], f"per subscriber {seen}")
    return {"per_subscriber": seen}


@case("pubsub.acknowledge")
async def c_ack(ctx):
    t = f"com.example.ack{uid()}"
    pub, _ = await ctx.session()
    p = await publish_ack(pub, t, "x")
    check(isinstance(p.id, int) and p.id > 0, f"publication id {p.id!r}")
    r = pub.publish(t, "no ack")
    check(r is None, f"publish without acknowledge returned {r!r}")
    ctx.info["publication"] = p.id
    return {"publication_id": "int"}


@case("pubsub.publisher_disclosed")
async def c_disclose_pub(ctx):
    """Autobahn|Python 26 has no PublishOptions(disclose_me=...): the router
    discloses by its own policy (Crossbar: the role's `disclose.publisher`)."""
    t = f"com.example.who{uid()}"
    [(_, _, box)] = await subscribed(ctx, t, 1)
    pub, pd = await ctx.session()
    p = await publish_ack(pub, t, "x")
    ev = await box.one("disclose_me")
    d = ev["details"]
    check(d.publisher == pd.session, f"details.publisher {d.publisher!r}, publisher is {pd.session}")
    check(d.publication == p.id, f"details.publication {d.publication!r}, PUBLISHED said {p.id}")
    ctx.info["details_topic"] = d.topic
    return {"publisher_is_publisher": True, "publication_matches": True}


@case("pubsub.prefix")
async def c_prefix(ctx):
    base = f"com.example{uid()}"
    [(_, _, box)] = await subscribed(ctx, base, 1, SubscribeOptions(match="prefix", details_arg="details"))
    pub, _ = await ctx.session()
    await publish_ack(pub, base + ".a.b", "deep")
    await publish_ack(pub, base, "self")
    await publish_ack(pub, base + "x.c", "sibling")  # string prefix, not a component prefix
    await publish_ack(pub, "org.other.a", "other")
    await asyncio.sleep(QUIET)
    seen = [[e["args"][0], e["details"].topic] for e in box.events]
    want = [["deep", base + ".a.b"], ["self", base], ["sibling", base + "x.c"]]
    check(seen == want, f"events {seen}")
    return {"events": [[a, t.replace(base, "BASE")] for a, t in seen]}


@case("pubsub.wildcard")
async def c_wildcard(ctx):
    u = uid()
    [(_, _, box)] = await subscribed(
        ctx, f"com{u}..event", 1, SubscribeOptions(match="wildcard", details_arg="details")
    )
    pub, _ = await ctx.session()
    await publish_ack(pub, f"com{u}.x.event", "hit")
    await publish_ack(pub, f"com{u}.x.y.event", "too deep")
    await publish_ack(pub, f"com{u}.event", "too shallow")
    await publish_ack(pub, f"com{u}.y.other", "other")
    await asyncio.sleep(QUIET)
    seen = [[e["args"][0], e["details"].topic] for e in box.events]
    check(seen == [["hit", f"com{u}.x.event"]], f"events {seen}")
    return {"events": [[a, t.replace(u, "")] for a, t in seen]}


# --- 13: meta API ----------------------------------------------------------------------


@case("meta.session")
async def c_meta_session(ctx):
    s, d = await ctx.session()
    other, od = await ctx.session()
    n = await wait(s.call("wamp.session.count"), "wamp.session.count")
    ids = await wait(s.call("wamp.session.list"), "wamp.session.list")
    me = await wait(s.call("wamp.session.get", d.session), "wamp.session.get")
    check(isinstance(n, int) and n >= 2, f"count {n!r}")
    check(isinstance(ids, list) and d.session in ids and od.session in ids, f"list {ids!r}")
    check(isinstance(me, dict), f"get {me!r}")
    check(me.get("session") == d.session, f"get: session {me.get('session')!r}")
    check(me.get("authid") == d.authid and me.get("authrole") == d.authrole, f"get: {me!r}")
    e = await expect_error(s.call("wamp.session.get", 1), "wamp.session.get of an unknown id")
    ctx.info.update(count=n, keys=sorted(me))
    return {"count_int": True, "list_has_both": True, "get_keys": ["authid", "authrole", "session"],
            "get_unknown": e.error}


@case("meta.subscription_events")
async def c_meta_sub(ctx):
    watcher, _ = await ctx.session()
    boxes = {}
    for ev in ("on_create", "on_subscribe", "on_unsubscribe", "on_delete"):
        boxes[ev] = Inbox()
        await watcher.subscribe(boxes[ev], f"wamp.subscription.{ev}")
    other, od = await ctx.session()
    t = f"com.example.watched{uid()}"
    sub = await other.subscribe(lambda *a: None, t)
    await sub.unsubscribe()
    got = {}
    for ev in ("on_create", "on_subscribe", "on_unsubscribe", "on_delete"):
        e = await boxes[ev].one(ev)
        args = e["args"]
        check(args and args[0] == od.session, f"{ev}: args[0] {args[:1]!r}, the subscriber is {od.session}")
        if ev == "on_create":
            check(isinstance(args[1], dict) and args[1].get("uri") == t, f"on_create: {args!r}")
            check(args[1].get("id") == sub.id, f"on_create: id {args[1].get('id')!r}, SUBSCRIBED {sub.id}")
            got[ev] = {"nargs": len(args), "match": args[1].get("match")}
        else:
            check(args[1] == sub.id, f"{ev}: args[1] {args[1]!r}, the subscription is {sub.id}")
            got[ev] = {"nargs": len(args)}
    return got


@case("meta.session_join_leave")
async def c_meta_join_leave(ctx):
    watcher, _ = await ctx.session()
    joins, leaves = Inbox(), Inbox()
    await watcher.subscribe(joins, "wamp.session.on_join")
    await watcher.subscribe(leaves, "wamp.session.on_leave")
    other, od = await ctx.session()
    j = await joins.one("on_join")
    info = j["args"][0] if j["args"] else None
    check(isinstance(info, dict) and info.get("session") == od.session, f"on_join args {j['args']!r}")
    check(info.get("authid") == od.authid and info.get("authrole") == od.authrole, f"on_join {info!r}")
    other.leave()
    lv = await leaves.one("on_leave")
    check(lv["args"] and lv["args"][0] == od.session, f"on_leave args {lv['args']!r}")
    ctx.info.update(on_join_keys=sorted(info), on_leave_args=len(lv["args"]))
    return {"on_join_session": True, "on_leave_session": True}


# --- 14: goodbye -----------------------------------------------------------------------


async def goodbye(ctx, reason):
    """leave(REASON): the router answers GOODBYE (the spec's reply reason is
    wamp.close.goodbye_and_out; Crossbar 26.10.1 always answers
    wamp.close.normal: both are accepted)."""
    s, _ = await ctx.session()
    s.leave(reason, "bye")
    d = await wait(s.closed, "GOODBYE")
    check(d is not None, "connection dropped instead of GOODBYE")
    check(d.reason in ("wamp.close.goodbye_and_out", "wamp.close.normal"), f"reply reason {d.reason!r}")
    return {"reply": d.reason}


case("goodbye.normal")(lambda ctx: goodbye(ctx, "wamp.close.normal"))
case("goodbye.close_realm")(lambda ctx: goodbye(ctx, "wamp.close.close_realm"))


# --- runner ------------------------------------------------------------------------------


async def run_one(url, realm, ser, name, fn):
    ctx = Ctx(url, realm, ser)
    line = {"case": f"py/{ser}/{name}"}
    try:
        got = await asyncio.wait_for(fn(ctx), CASE_TIMEOUT)
        line.update(ok=True, got=got)
    except Failed as e:
        line.update(ok=False, error=str(e))
    except asyncio.TimeoutError:
        line.update(ok=False, error=f"case did not finish within {CASE_TIMEOUT} s")
    except Exception as e:
        line.update(ok=False, error=f"{type(e).__name__}: {e}", trace=traceback.format_exc(limit=4))
    finally:
        await ctx.close()
    if ctx.info:
        line["info"] = ctx.info
    print(json.dumps(line, default=repr), flush=True)
    return line["ok"]


async def main():
    if len(sys.argv) < 3:
        print("usage: suite.py URL REALM [CASE_PREFIX...]", file=sys.stderr)
        return 2
    url, realm, prefixes = sys.argv[1], sys.argv[2], sys.argv[3:]
    failed = 0
    total = 0
    for ser in SERIALIZERS:
        for name, fn in CASES:
            if prefixes and not any(name.startswith(p) for p in prefixes):
                continue
            total += 1
            if not await run_one(url, realm, ser, name, fn):
                failed += 1
    print(f"suite.py: {total - failed}/{total} cases passed", file=sys.stderr)
    # Leave at once: a callee's handler left pending by a case (the callee
    # that vanished mid-call) would otherwise be cancelled by asyncio.run()
    # and Autobahn would log a traceback answering on a closed transport.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed or not total else 0)


if __name__ == "__main__":
    asyncio.run(main())
