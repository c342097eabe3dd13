"""Fire-and-forget tasks with a signed webhook callback.

``submit_async`` returns a task id at once; when the task ends the gateway POSTs
``{"task_id", "worker_id", "status"}`` to your webhook, signed with HMAC-SHA256 of the body
(header ``X-AgentFM-Signature``). `WebhookReceiver` checks the signature and hands you a
`WebhookPayload`. Run it: ``python cookbook/04_async_webhook.py``.
"""

from __future__ import annotations

import os
import queue
import secrets

import httpx
from _gateway import gateway

from agentfm import AgentFMClient, WebhookPayload, WebhookReceiver
from agentfm.mesh import EmbeddedMesh

# Both sides share this secret: the gateway signs with it, the receiver verifies it. A real
# gateway reads it from AGENTFM_WEBHOOK_SECRET; so does WebhookReceiver when secret= is omitted.
SECRET = os.environ.get("AGENTFM_WEBHOOK_SECRET") or secrets.token_hex(16)


# A gateway refuses webhook URLs on private or loopback addresses by default (SSRF
# protection). Our receiver listens on 127.0.0.1, so this mesh opts in, like a real
# gateway started with AGENTFM_WEBHOOK_ALLOW_PRIVATE=1. Leave it off in production.
MESH = EmbeddedMesh.demo(webhook_secret=SECRET, allow_private_webhooks=True)


def main() -> None:
    received: queue.Queue[WebhookPayload] = queue.Queue()

    with (
        gateway(MESH),
        AgentFMClient() as client,
        # port=0: the OS picks a free port; .url is the address to give the gateway.
        WebhookReceiver(port=0, callback=received.put, secret=SECRET) as receiver,
    ):
        worker = client.workers.match("echo")[0]
        ack = client.tasks.submit_async(
            worker_id=worker.peer_id, prompt="work on this later", webhook_url=receiver.url
        )
        print(f"submitted {ack.task_id}: {ack.status}")

        payload = received.get(timeout=30)  # the callback runs on the receiver's thread
        print(f"webhook: task {payload.task_id} is {payload.status} (worker {payload.worker_id})")

        # Only correctly signed callbacks reach `callback`; anyone else gets a 401.
        forged = {"task_id": ack.task_id, "worker_id": worker.peer_id, "status": "completed"}
        answer = httpx.post(receiver.url, json=forged, timeout=10)
        print(f"a forged, unsigned callback gets HTTP {answer.status_code}")
    assert received.empty()


if __name__ == "__main__":
    main()
