"""The echo A2A agent of a2a_echo.py in A2A's gRPC binding (`a2a-sdk[grpc]`, grpcio's asyncio
server, h2c), for `make test-targets`: `lf.a2a.v1.A2AService/SendMessage` answers with a
message holding the request's text, `SendStreamingMessage` streams it. Usage: python
a2a_grpc_echo.py PORT
"""

import asyncio
import sys

import grpc

from a2a.server.request_handlers import DefaultRequestHandler, GrpcHandler
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from a2a.types import a2a_pb2_grpc

from a2a_echo import Echo


async def serve(port: int) -> None:
    url = f"127.0.0.1:{port}"
    card = AgentCard(
        name="echo",
        description="Echoes every message (a2a-bench test target)",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="GRPC", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
    )
    handler = DefaultRequestHandler(
        agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card
    )
    server = grpc.aio.server()
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)
    server.add_insecure_port(url)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
