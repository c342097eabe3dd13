"""The official ``openai`` package as a drop-in client for the mesh.

The gateway speaks the OpenAI chat API under ``/v1``. ``model`` is a peer id (pins one
worker), an agent name or an engine name (the gateway picks the least loaded match).
Run it: ``python cookbook/05_openai_dropin.py``.
"""

from __future__ import annotations

import os

from _gateway import gateway
from openai import OpenAI


def main() -> None:
    with gateway() as url:
        client = OpenAI(
            base_url=f"{url}/v1",
            # The openai package insists on a key; a gateway without auth ignores it.
            api_key=os.environ.get("AGENTFM_API_KEY") or "unused",
        )
        # One entry per worker: the id is its peer id, extra fields describe the agent.
        for model in client.models.list():
            extra = model.model_extra or {}
            print(f"model: {model.id} ({extra.get('agentfm_name')}, {extra.get('agentfm_engine')})")

        reply = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello from openai"}]
        )
        print(f"reply: {reply.choices[0].message.content!r}")

        stream = client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "now stream it"}],
            stream=True,
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        print(f"streamed {len(pieces)} chunk(s): {''.join(pieces)!r}")


if __name__ == "__main__":
    main()
