"""An echo A2A agent on a2a-sdk 0.3 (`a2a-sdk[http-server]` 0.3.x, A2A v0.3: the protocol most
deployed agents still speak), for `make test-targets`.

Answers every message with its own text, a message (`message/send`, or the one event of
`message/stream`), JSON-RPC at /, v0.3's HTTP+JSON binding beside it (POST /v1/message:send,
GET /v1/tasks/{id}, GET /v1/card, ...), the agent card at /.well-known/agent-card.json.
Usage: python a2a_v03_echo.py PORT

With A2A_ECHO_TASK_MS=N every message starts a task instead: submitted, working for N ms, then
an artifact with the text and completed (what `blocking: false` and `tasks/get` are for); the
agent then also takes push-notification configs, and a2a-sdk 0.3's own sender (httpx) POSTs
the task, as it stands after each of its events, to the URL a config names.
"""

import asyncio
import os
import sys

import httpx
import uvicorn
from starlette.routing import Route

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.apps.rest.rest_adapter import RESTAdapter
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, Part, TextPart
from a2a.utils import get_message_text, new_agent_text_message, new_task

TASK_MS = os.environ.get("A2A_ECHO_TASK_MS")


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message) if context.message else ""
        if TASK_MS is None:
            await event_queue.enqueue_event(
                new_agent_text_message(text, context.context_id, context.task_id)
            )
            return
        task = context.current_task or new_task(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await asyncio.sleep(float(TASK_MS) / 1000)
        await updater.add_artifact([Part(root=TextPart(text=text))], last_chunk=True)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # CancelTask: the task's status goes to canceled.
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_card(url: str, transport: str = "JSONRPC") -> tuple[AgentCard, AgentCard]:
    """The agent's card at `url` (its preferred transport `transport`), and its extended card
    (one more skill)."""
    card = AgentCard(
        name="echo",
        description="Echoes every message (a2a-bench test target, A2A v0.3)",
        url=url,
        preferred_transport=transport,
        version="1.0.0",
        capabilities=AgentCapabilities(streaming=True, push_notifications=TASK_MS is not None),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
        supports_authenticated_extended_card=True,
    )
    # agent/getAuthenticatedExtendedCard: the card with one more skill.
    extended = card.model_copy(deep=True)
    extended.skills.append(
        AgentSkill(id="echo-extended", name="echo, extended", description="echoes", tags=["echo"])
    )
    return card, extended


def request_handler() -> DefaultRequestHandler:
    """The echo's handler: an in-memory task store; with A2A_ECHO_TASK_MS, push configs and
    a2a-sdk's push sender too."""
    extra = {}
    if TASK_MS is not None:
        # Tasks: notified as a2a-sdk notifies, over one pooled httpx client.
        configs = InMemoryPushNotificationConfigStore()
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        extra = {"push_config_store": configs,
                 "push_sender": BasePushNotificationSender(client, configs)}
    return DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(), **extra)


def main() -> None:
    port = int(sys.argv[1])
    card, extended = agent_card(f"http://127.0.0.1:{port}/")
    handler = request_handler()
    app = A2AStarletteApplication(
        agent_card=card, http_handler=handler, extended_agent_card=extended
    ).build()
    # The HTTP+JSON binding's routes, as a2a-sdk 0.3's REST application mounts them.
    rest = RESTAdapter(agent_card=card, http_handler=handler, extended_agent_card=extended)
    for (path, method), endpoint in rest.routes().items():
        app.router.routes.append(Route(path, endpoint, methods=[method]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
