# -*- coding: utf-8 -*-
"""Drives a running sprocket's WAMP v1 broker with AutobahnPython 0.8.15
(module autobahn.wamp1, Twisted), a client this project did not write.
Three sessions check prefix, call, call errors, subscribe, every publish
form, unsubscribe and a push from the backend (POST /publish), asserting
exactly which session receives what, and the exact PUBLISH message the
library puts on the wire for each call.

Usage (Python 2.7, with autobahn==0.8.15 and Twisted==20.3.0):
    PUBLISH_URL=http://127.0.0.1:PORT/publish PUBLISH_SECRET=S \
        python client.py ws://127.0.0.1:PORT/wamp
Exit status: 0 when everything matched; 1 with a FAIL line otherwise.

About AutobahnPython 0.8.15's client (it was written for its own server,
which excludes the publisher by default and reads an empty eligible list
as "nobody"):
- publish(t, e) sends [7, t, e, null]; publish(t, e, excludeMe=True) sends
  [7, t, e] -- it leaves exclusion to the server's default, so against
  Ratchet or sprocket the publisher still gets the event;
  publish(t, e, excludeMe=False) sends [7, t, e, false].
- With exclude or eligible given it always sends an exclude list, and it
  defaults that list to [own session id] unless excludeMe=False.
- subscribe, publish and call send CURIEs as given (the server expands
  them); EVENT topics are matched after expanding with its own prefixes.
- A CALLERROR fails the Deferred with Exception(errorUri, desc, details).
"""

from __future__ import print_function

import json
import re
import os
import sys

import urllib2

from twisted.internet import defer, reactor, task, threads

from autobahn.twisted.websocket import connectWS
from autobahn.wamp1.protocol import WampClientFactory, WampClientProtocol

URL = sys.argv[1] if len(sys.argv) > 1 else None
# POST /publish of the binary's admin listener, and its bearer secret.
PUBLISH_URL = os.environ.get("PUBLISH_URL")
PUBLISH_SECRET = os.environ.get("PUBLISH_SECRET")
TOPIC = "http://example.com/autobahn/topic"
MARK = "http://example.com/autobahn/marker"
QUIET = 0.2
WAIT = 5.0

state = {"checks": 0, "status": None}


def ok(what):
    state["checks"] += 1
    print("ok %d - %s" % (state["checks"], what))
    sys.stdout.flush()


class Mismatch(Exception):
    pass


def expect(actual, expected, what):
    if actual != expected:
        raise Mismatch("%s\n  actual:   %r\n  expected: %r" % (what, actual, expected))


def finish(status, message=None):
    if state["status"] is not None:
        return
    state["status"] = status
    if message:
        print("FAIL (autobahn 0.8.15 client): %s" % message, file=sys.stderr)
    if reactor.running:
        reactor.stop()


class Session(WampClientProtocol):
    """Records every EVENT that reaches the socket and every message sent."""

    def onSessionOpen(self):
        self.got = []  # (topic as the handler got it, event)
        self.marks = 0
        self.raw_events = {}
        self.closing = False
        self.factory.opened.callback(self)

    def onMessage(self, msg, binary):
        if not binary:
            parsed = json.loads(msg)
            if parsed[0] == 8:
                self.raw_events[parsed[1]] = self.raw_events.get(parsed[1], 0) + 1
        WampClientProtocol.onMessage(self, msg, binary)

    def sendMessage(self, payload):
        self.factory.sent.append(json.loads(payload))
        WampClientProtocol.sendMessage(self, payload)

    def onClose(self, wasClean, code, reason):
        if not getattr(self, "closing", False):
            finish(1, "%s: connection closed by the server (%s %s)" % (self.factory.name, code, reason))
        self.factory.closed.callback(None)


def open_session(name):
    factory = WampClientFactory(URL)
    factory.protocol = Session
    factory.name = name
    factory.sent = []
    factory.opened = defer.Deferred()
    factory.closed = defer.Deferred()
    connectWS(factory)
    return factory.opened


@defer.inlineCallbacks
def wait_for(what, cond):
    deadline = reactor.seconds() + WAIT
    while not cond():
        if reactor.seconds() > deadline:
            raise Mismatch("timed out waiting for " + what)
        yield task.deferLater(reactor, 0.005, lambda: None)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def call_error(session, *args):
    """The (errorUri, desc, details) a call fails with."""
    try:
        result = yield session.call(*args)
    except Exception as e:
        defer.returnValue(e.args)
    raise Mismatch("call %r succeeded with %r, expected a CALLERROR" % (args, result))


@defer.inlineCallbacks
def sync(session):
    result = yield session.call("urn:sprocket:echo", "sync")
    expect(result, "sync", "%s: sync call" % session.factory.name)


@defer.inlineCallbacks
def run():
    a = yield open_session("a")
    b = yield open_session("b")
    c = yield open_session("c")
    sessions = [a, b, c]
    name = dict((s, s.factory.name) for s in sessions)

    # WELCOME
    for s in sessions:
        if not re.match(r"^[0-9a-f]{32}$", s.session_id):
            raise Mismatch("%s: session id %r" % (name[s], s.session_id))
        expect(s.session_protocol_version, 1, "%s: WAMP version" % name[s])
        if not s.session_server.startswith("sprocket/"):
            raise Mismatch("%s: server ident %r" % (name[s], s.session_server))
    expect(len(set(s.session_id for s in sessions)), 3, "distinct session ids")
    ok("WELCOME: three sessions, distinct 128-bit ids, version 1, sprocket ident")

    # prefix + call
    a.prefix("sp", "urn:sprocket:")
    expect((yield a.call("sp:add", 1, 2, 3.5)), 6.5, "sp:add 1 2 3.5")
    expect((yield a.call("urn:sprocket:add", 40, 2)), 42, "urn:sprocket:add 40 2")
    expect((yield a.call("sp:echo", {"deep": [1, None, "x"]})), {"deep": [1, None, "x"]}, "sp:echo")
    expect((yield a.call("sp:echo", "one", 2)), ["one", 2], "sp:echo with two arguments")
    expect(a.factory.sent[1][2], "sp:add", "the client sends the CURIE unexpanded")
    ok("prefix + call: CURIE and full-URI calls of urn:sprocket:add and urn:sprocket:echo return their results")

    # call errors
    expect((yield call_error(a, "sp:add", 1, "x")),
           ("urn:sprocket:error:invalid-argument", "arguments must be numbers", None),
           "add with a string")
    expect((yield call_error(b, "urn:sprocket:nope", 1)),
           ("urn:sprocket:error:no-such-procedure", "no procedure urn:sprocket:nope", None),
           "unknown procedure")
    expect((yield call_error(b, "sp:add", 1)),
           ("urn:sprocket:error:no-such-procedure", "no procedure sp:add", None),
           "b has no prefix sp (prefixes are per session)")
    ok("call errors: CALLERROR invalid-argument and no-such-procedure; prefixes are per session")

    # subscribe: a with a CURIE, b and c with the full URI
    a.prefix("ev", "http://example.com/autobahn/")
    for s in sessions:
        s.subscribe("ev:topic" if s is a else TOPIC, lambda topic, event, s=s: s.got.append((topic, event)))
        s.subscribe(MARK, lambda topic, event, s=s: setattr(s, "marks", s.marks + 1))
        yield sync(s)
    expect(a.factory.sent[-3], [5, "ev:topic"], "a subscribes with the CURIE")
    ok("subscribe: a with a CURIE, b and c with the full URI")

    counter = {"marks": 0}

    @defer.inlineCallbacks
    def step(publisher, args, kwargs, wire, receivers, what):
        """publisher.publish(*args, **kwargs) must send `wire` and reach
        exactly `receivers`; a marker everybody gets follows it (once a
        session has the marker, it would have had the event). With args
        None, `wire` is sent as is through the library's transport."""
        if args is None:
            publisher.sendMessage(json.dumps(wire))
        else:
            publisher.publish(*args, **kwargs)
        expect(publisher.factory.sent[-1], wire, "PUBLISH sent for %s" % what)
        publisher.publish(MARK, None, excludeMe=False)
        counter["marks"] += 1
        yield wait_for("the marker after " + what, lambda: all(s.marks >= counter["marks"] for s in sessions))
        for s in sessions:
            expected = [(TOPIC, wire[2])] if s in receivers else []
            got, s.got[:] = list(s.got), []
            expect(got, expected, "%s after %s" % (name[s], what))
        shown = json.dumps(wire)
        for s in sessions:
            shown = shown.replace(json.dumps(s.session_id), "<%s>" % name[s])
        ok("publish %s: sends %s, received by %s"
           % (what, shown, ", ".join(name[s] for s in receivers) or "nobody"))

    ida, idb, idc = [s.session_id for s in sessions]
    yield step(a, (TOPIC, {"n": 1}), {}, [7, TOPIC, {"n": 1}, None], [a, b, c],
               "(t, e): excludeMe null reaches the publisher too, as in Ratchet")
    yield step(a, (TOPIC, 2), {"excludeMe": False}, [7, TOPIC, 2, False], [a, b, c],
               "excludeMe=False")
    yield step(a, (TOPIC, 3), {"excludeMe": True}, [7, TOPIC, 3], [a, b, c],
               "excludeMe=True: the client omits the flag, so the publisher gets it too")
    # The wire form [7, t, e, true] through the library's own transport, as
    # AutobahnJS 0.8 and Ratchet's clients send it.
    # publish() cannot send excludeMe = true (AutobahnJS 0.8 and Ratchet's
    # clients do): the wire form through the library's own transport.
    yield step(a, None, None, [7, TOPIC, 4, True], [b, c], "excludeMe=true on the wire (sent raw)")
    yield step(b, (TOPIC, 5), {"exclude": [idb, idc]}, [7, TOPIC, 5, [idb, idc]], [a],
               "exclude=[b, c]")
    yield step(a, (TOPIC, 6), {"eligible": [idc]}, [7, TOPIC, 6, [ida], [idc]], [c],
               "eligible=[c]: the client adds exclude=[a]")
    yield step(a, (TOPIC, 7), {"eligible": [ida, idb]}, [7, TOPIC, 7, [ida], [ida, idb]], [b],
               "eligible=[a, b]: the client's exclude=[a] wins for a")
    yield step(a, (TOPIC, 8), {"excludeMe": False, "eligible": [ida, idb]},
               [7, TOPIC, 8, [], [ida, idb]], [a, b], "excludeMe=False, eligible=[a, b]")
    yield step(c, (TOPIC, 9), {"exclude": [], "eligible": []}, [7, TOPIC, 9, [], []], [a, b, c],
               "exclude=[], eligible=[]: everybody, as in Ratchet")
    yield step(c, (TOPIC, 10), {"eligible": []}, [7, TOPIC, 10, [idc], []], [a, b],
               "eligible=[]: everybody but the publisher (the client's exclude)")
    yield step(a, ("ev:topic", 11), {"excludeMe": False}, [7, "ev:topic", 11, False], [a, b, c],
               "to a CURIE topic")

    # unsubscribe: b gets nothing more, from the server's side too
    raw_b = b.raw_events.get(TOPIC)
    b.unsubscribe(TOPIC)
    yield sync(b)
    yield step(a, (TOPIC, "after"), {"excludeMe": False}, [7, TOPIC, "after", False], [a, c],
               "after b unsubscribed")
    yield step(c, (TOPIC, "again"), {"exclude": [], "eligible": []}, [7, TOPIC, "again", [], []],
               [a, c], "everybody, after b unsubscribed")
    expect(b.raw_events.get(TOPIC), raw_b, "EVENTs the server sent b after UNSUBSCRIBE")
    ok("unsubscribe: the server sends b nothing more on the topic")

    # a push from the backend (POST /publish) to one session only
    push_topic = "urn:sprocket:pushed"
    for s in sessions:
        s.subscribe(push_topic, lambda topic, event, s=s: s.got.append((topic, event)))
        yield sync(s)
    body = json.dumps({"topic": push_topic, "data": {"from": "backend"}, "eligible": [idb]})
    request = urllib2.Request(PUBLISH_URL, body, {
        "Authorization": "Bearer " + PUBLISH_SECRET, "Content-Type": "application/json"})
    answer = yield threads.deferToThread(lambda: urllib2.urlopen(request, timeout=5).read())
    expect(json.loads(answer), {"delivered": 1}, "POST /publish answer")
    yield wait_for("the pushed event", lambda: len(b.got) >= 1)
    for s in (a, c):
        yield sync(s)
    for s in sessions:
        got, s.got[:] = list(s.got), []
        expect(got, [(push_topic, {"from": "backend"})] if s is b else [], "%s after the push" % name[s])
    ok("push from the backend: POST /publish with eligible=[b] reaches b only; delivered 1")

    # a quiet period: nothing else arrives anywhere
    before = [dict(s.raw_events) for s in sessions]
    yield sleep(QUIET)
    for s, raw in zip(sessions, before):
        expect(s.got, [], "%s: no stray events" % name[s])
        expect(s.raw_events, raw, "%s: no stray EVENTs" % name[s])
    ok("quiet for %d ms: no stray events" % (QUIET * 1000))

    for s in sessions:
        s.closing = True
        s.sendClose(1000)
    yield defer.gatherResults([s.factory.closed for s in sessions])
    print("autobahn 0.8.15 client: %d passed, 0 failed" % state["checks"])


def main():
    if not URL or not PUBLISH_URL or not PUBLISH_SECRET:
        print("usage: PUBLISH_URL=http://HOST:PORT/publish PUBLISH_SECRET=S python client.py ws://HOST:PORT/wamp",
              file=sys.stderr)
        sys.exit(2)

    def done(_):
        finish(0)

    def failed(failure):
        if failure.check(Mismatch):
            finish(1, failure.getErrorMessage())
        else:
            finish(1, failure.getTraceback())

    reactor.callLater(30, finish, 1, "timed out after 30 s")
    reactor.callWhenRunning(lambda: run().addCallbacks(done, failed))
    reactor.run()
    sys.exit(state["status"] if state["status"] is not None else 1)


if __name__ == "__main__":
    main()
