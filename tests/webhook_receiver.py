"""A real HTTP webhook receiver for tests: plain ASGI under uvicorn, in this process.

It verifies each request as a partner system would, with the Standard Webhooks
reference library (`standardwebhooks`) and the secret written as `whsec_...`; records
what arrived, and answers 2xx for a verified delivery, `reject_status` for one that does
not verify, and `fail_status` to the first `fail_first` requests whatever they carry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

from shared.webhook import secret_text
from vroegsignaal.dev.stack.procs import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    failure: str | None


@dataclass
class WebhookReceiver:
    secret: bytes
    fail_first: int = 0
    fail_status: int = 503
    reject_status: int = 400
    port: int = 0
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/webhook"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        failure: str | None = None
        try:
            Webhook(secret_text(self.secret)).verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as invalid:
            failure = str(invalid)
        self.received.append(Received(headers, body, failure is None, failure))
        if len(self.received) <= self.fail_first:
            status = self.fail_status
        elif failure is not None:
            status = self.reject_status
        else:
            status = 204
        # A redirect points back here, so a client that followed it would be seen.
        location = [(b"location", self.url.encode())] if 300 <= status < 400 else []
        await send({"type": "http.response.start", "status": status, "headers": location})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def webhook_receiver(
    secret: bytes,
    *,
    fail_first: int = 0,
    fail_status: int = 503,
    reject_status: int = 400,
    port: int | None = None,
) -> AsyncIterator[WebhookReceiver]:
    """Serve a WebhookReceiver on `port` (a free one by default) until the block ends."""
    receiver = WebhookReceiver(
        secret,
        fail_first=fail_first,
        fail_status=fail_status,
        reject_status=reject_status,
        port=port or free_port(),
    )
    server = uvicorn.Server(
        uvicorn.Config(receiver, host=HOST, port=receiver.port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    serving.result()
                    raise RuntimeError("the webhook receiver stopped before it started")
                await asyncio.sleep(0.02)
        yield receiver
    finally:
        server.should_exit = True
        await serving
