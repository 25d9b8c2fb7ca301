"""Peer: Python `websockets` (asyncio, one thread).

/echo echoes, /chat relays to all other /chat clients, GET /health answers 200.
Usage: python ws_server.py PORT
"""

import asyncio
import signal
import sys

from websockets.asyncio.server import broadcast, serve

CHAT = set()


def process_request(connection, request):
    if request.path == "/health":
        return connection.respond(200, "ok\n")
    if request.path not in ("/echo", "/chat"):
        return connection.respond(404, "not found\n")
    return None


async def handler(ws):
    if ws.request.path == "/echo":
        async for msg in ws:
            await ws.send(msg)
    else:
        CHAT.add(ws)
        try:
            async for msg in ws:
                broadcast([c for c in CHAT if c is not ws], msg)
        finally:
            CHAT.discard(ws)


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=process_request,
        compression=None,
        max_size=16 << 20,
        max_queue=None,
        ping_interval=None,
        backlog=1024,
    ):
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9001))
