#!/usr/bin/env python3
"""A TCP proxy that stands for the Kafka broker in perf/chaos.sh.

    python3 perf/chaos_proxy.py LISTEN_PORT TARGET_PORT

Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT. SIGUSR1 "stops the
broker" as its clients see it: every connection is reset and the listening
socket closed (new connections are refused). SIGUSR2 "restarts" it: the port
listens again. The broker behind it keeps its log (tansu's memory storage
would lose it in a real restart). Python 3.11 stdlib only.
"""

import asyncio
import signal
import socket
import sys

LISTEN, TARGET = int(sys.argv[1]), int(sys.argv[2])
conns = set()
server = None


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(creader, cwriter):
    try:
        breader, bwriter = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        cwriter.transport.abort()
        return
    pair = (cwriter, bwriter)
    conns.add(pair)
    try:
        await asyncio.gather(pipe(creader, bwriter), pipe(breader, cwriter))
    finally:
        conns.discard(pair)


async def listen():
    global server
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN, reuse_address=True)


def cut():
    if server is not None:
        server.close()
    for c, b in list(conns):
        c.transport.abort()
        b.transport.abort()
    conns.clear()
    print("cut", flush=True)


def restore():
    asyncio.ensure_future(listen())
    print("restored", flush=True)


async def main():
    await listen()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGUSR2, restore)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    print("proxy 127.0.0.1:%d -> 127.0.0.1:%d" % (LISTEN, TARGET), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError:
        pass
