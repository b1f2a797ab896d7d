"""The echo A2A agent of a2a_echo.py in A2A's gRPC binding (`a2a-sdk[grpc]`, grpcio's asyncio
server, h2c), for `make test-targets`: `lf.a2a.v1.A2AService/SendMessage` answers with a
message holding the request's text, `SendStreamingMessage` streams it. Usage: python
a2a_grpc_echo.py PORT
"""

import asyncio
import os
import sys

import grpc

from a2a.server.request_handlers import GrpcHandler
from a2a.types import a2a_pb2_grpc

from a2a_echo import agent_card, handler_for


async def serve(port: int) -> None:
    url = f"127.0.0.1:{port}"
    handler = handler_for(agent_card(url, ["GRPC"]))
    # A2A_ECHO_GZIP=1: answers gzipped (grpcio reads gzipped requests whatever this says).
    gzip = grpc.Compression.Gzip if os.environ.get("A2A_ECHO_GZIP") else None
    server = grpc.aio.server(compression=gzip)
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)
    server.add_insecure_port(url)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
