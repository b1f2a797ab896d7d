"""An echo A2A agent on the official a2a-sdk (1.x, `a2a-sdk[http-server]`), for `make test-targets`.

Answers every message with its own text, as a message (SendMessage) or, streamed, as a task:
working status, an artifact, completed. JSON-RPC at /, v0.3 compatibility on, the HTTP+JSON
binding beside it (POST /message:send, /message:stream; v0.3's under /v1), the agent card at
/.well-known/agent-card.json. Usage: python a2a_echo.py PORT

With A2A_ECHO_TASK_MS=N every message starts a task instead: submitted, working for N ms, then
an artifact with the text and completed (what `returnImmediately` and `GetTask` are for); the
agent then also takes push-notification configs, and a2a-sdk's own sender (httpx) POSTs each
of the task's events to the URL a config names.
"""

import asyncio
import os
import sys

import httpx

import uvicorn
from starlette.applications import Starlette

from a2a.helpers.proto_helpers import get_message_text, new_task, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes.agent_card_routes import create_agent_card_routes
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.server.routes.rest_routes import create_rest_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState

TASK_MS = os.environ.get("A2A_ECHO_TASK_MS")


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message) if context.message else ""
        if TASK_MS is None:
            await event_queue.enqueue_event(
                new_text_message(text, context_id=context.context_id, task_id=context.task_id)
            )
            return
        await event_queue.enqueue_event(
            new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
        )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        await asyncio.sleep(float(TASK_MS) / 1000)
        await updater.add_artifact([new_text_part(text)], last_chunk=True)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # CancelTask: the task's status goes to canceled.
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_card(url: str, bindings: list[str], v03: bool = False) -> AgentCard:
    """The echo agent's card, its interfaces at `url` in each of `bindings` (A2A 1.0), and
    with `v03` its JSON-RPC in A2A 0.3 too (the compatibility layer's card needs it listed)."""
    interfaces = [
        AgentInterface(url=url, protocol_binding=b, protocol_version="1.0") for b in bindings
    ]
    if v03:
        interfaces.append(
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="0.3")
        )
    return AgentCard(
        name="echo",
        description="Echoes every message (a2a-bench test target)",
        version="1.0.0",
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=TASK_MS is not None, extended_agent_card=True
        ),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
    )


def extended_card(card: AgentCard) -> AgentCard:
    """The card GetExtendedAgentCard answers: `card` with one more skill."""
    extended = AgentCard()
    extended.CopyFrom(card)
    extended.skills.append(
        AgentSkill(id="echo-extended", name="echo, extended", description="echoes", tags=["echo"])
    )
    return extended


def handler_for(card: AgentCard) -> DefaultRequestHandler:
    """The request handler of the echo agent with `card`, its tasks in memory."""
    if TASK_MS is None:
        return DefaultRequestHandler(
            agent_executor=Echo(),
            task_store=InMemoryTaskStore(),
            agent_card=card,
            extended_agent_card=extended_card(card),
        )
    # Tasks: notified as a2a-sdk notifies, over one pooled httpx client.
    configs = InMemoryPushNotificationConfigStore()
    sender = BasePushNotificationSender(
        httpx.AsyncClient(limits=httpx.Limits(max_connections=64)), configs
    )
    return DefaultRequestHandler(
        agent_executor=Echo(),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        extended_agent_card=extended_card(card),
        push_config_store=configs,
        push_sender=sender,
    )


def main() -> None:
    port = int(sys.argv[1])
    url = f"http://127.0.0.1:{port}/"
    card = agent_card(url, ["JSONRPC", "HTTP+JSON"], v03=True)
    handler = handler_for(card)
    routes = (
        create_agent_card_routes(card)
        + create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)
        + create_rest_routes(handler, enable_v0_3_compat=True)
    )
    # Optional: seconds uvicorn keeps an idle connection open (default 5), then a PEM
    # certificate and key to serve https.
    keep_alive = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    tls = {"ssl_certfile": sys.argv[3], "ssl_keyfile": sys.argv[4]} if len(sys.argv) > 4 else {}
    # A2A_ECHO_GZIP=1: answers gzipped for a client that accepts them, as Starlette's
    # middleware does (bodies of 500 bytes or more; event streams left as they are).
    middleware = []
    if os.environ.get("A2A_ECHO_GZIP"):
        from starlette.middleware import Middleware
        from starlette.middleware.gzip import GZipMiddleware

        middleware.append(Middleware(GZipMiddleware, minimum_size=500))
    uvicorn.run(
        Starlette(routes=routes, middleware=middleware),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_keep_alive=keep_alive,
        **tls,
    )


if __name__ == "__main__":
    main()
