"""The echo A2A agent of a2a_v03_echo.py (a2a-sdk 0.3, A2A v0.3) in v0.3's gRPC binding
(`a2a-sdk[grpc]` 0.3.x, grpcio's asyncio server, h2c), for `make test-targets`:
`a2a.v1.A2AService/SendMessage` answers with a message holding the request's text,
`SendStreamingMessage` streams it, `GetAgentCard` gives the card; with A2A_ECHO_TASK_MS, tasks
followed by `GetTask`, `TaskSubscription` or a push, and `CancelTask`, as in a2a_v03_echo.py.
Usage: python a2a_v03_grpc_echo.py PORT
"""

import asyncio
import sys

import grpc

from a2a.grpc import a2a_pb2_grpc
from a2a.server.request_handlers import GrpcHandler

from a2a_v03_echo import agent_card, request_handler


async def serve(port: int) -> None:
    url = f"127.0.0.1:{port}"
    card, _ = agent_card(url, "GRPC")
    server = grpc.aio.server()
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(card, request_handler()), server)
    server.add_insecure_port(url)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
