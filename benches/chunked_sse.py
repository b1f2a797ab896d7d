#!/usr/bin/env python3
"""A server streaming like a token-streaming A2A agent, for measuring the HTTP client.

    python3 benches/chunked_sse.py PORT [EVENTS] [GAP_SECONDS]

Every POST is answered with `SendStreamingMessage`-shaped server-sent events in chunked
transfer coding: a task, EVENTS artifact updates and a final status, each event its own chunk
and its own write, GAP_SECONDS apart (a GET gets "ok"). The reference target (`a2a-bench serve
a2a-echo`) sends its three events at once with a Content-Length; this is the other shape real
servers (sse-starlette, a2a-sdk) have. Standard library only.
"""
import asyncio
import socket
import sys

PORT = int(sys.argv[1])
EVENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
GAP = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
FIRST = b'data: {"id":1,"jsonrpc":"2.0","result":{"task":{"contextId":"c","id":"t","status":{"state":"TASK_STATE_WORKING"}}}}\n\n'
TOKEN = b'data: {"id":1,"jsonrpc":"2.0","result":{"artifactUpdate":{"artifact":{"artifactId":"a","parts":[{"text":"token token token token"}]},"contextId":"c","lastChunk":false,"taskId":"t"}}}\n\n'
LAST = b'data: {"id":1,"jsonrpc":"2.0","result":{"statusUpdate":{"contextId":"c","final":true,"status":{"state":"TASK_STATE_COMPLETED"},"taskId":"t"}}}\n\n'


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


async def handle(reader, writer):
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n")
            for event in [FIRST] + [TOKEN] * EVENTS + [LAST]:
                writer.write(chunk(event))
                await writer.drain()
                if GAP:
                    await asyncio.sleep(GAP)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT)
    print(f"serving on http://127.0.0.1:{PORT}/", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
