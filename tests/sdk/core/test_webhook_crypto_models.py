"""Webhook signatures and receiver, SwarmKey, worker models and matching."""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm import SwarmKey, WebhookPayload, WebhookReceiver, WorkerProfile, verify_signature
from agentfm.resources.workers import filter_workers, match_workers
from agentfm.types.openai import ChatMessage, coerce_messages, flatten_messages
from agentfm.webhook import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from pathlib import Path

PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"


def test_verify_signature() -> None:
    body = b'{"status":"completed","task_id":"task_1","worker_id":"p"}'
    good = sign(body, "s3cret")
    assert verify_signature(body, good, "s3cret")
    assert verify_signature(body, good.upper(), "s3cret")
    assert not verify_signature(body, good, "other")
    assert not verify_signature(body + b" ", good, "s3cret")
    assert not verify_signature(body, None, "s3cret")
    assert verify_signature(body, None, None)


def test_receiver_port_zero_signature_and_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFM_WEBHOOK_SECRET", "env-secret")
    got: list[WebhookPayload] = []
    delivered = threading.Event()

    def callback(payload: WebhookPayload) -> None:
        got.append(payload)
        delivered.set()

    with WebhookReceiver(port=0, callback=callback) as hook:
        assert hook.port != 0
        assert hook.url.endswith(f":{hook.port}/cb")
        body = json.dumps({"status": "completed", "task_id": "task_1", "worker_id": PEER}).encode()
        with httpx.Client() as http:
            unsigned = http.post(
                hook.url, content=body, headers={"Content-Type": "application/json"}
            )
            assert unsigned.status_code == 401
            ok = http.post(
                hook.url + "?x=1",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(body, "env-secret"),
                },
            )
            assert ok.status_code == 200
            assert http.post(hook.url.replace("/cb", "/other"), content=body).status_code == 404
            assert http.post(hook.url, content=b"x" * 70_000).status_code == 413
        assert delivered.wait(5)
    assert got[0].task_id == "task_1"
    assert got[0].worker_id == PEER


def test_receiver_rejects_bad_payloads() -> None:
    with (
        WebhookReceiver(port=0, callback=lambda p: None, secret=None) as hook,
        httpx.Client() as http,
    ):
        assert http.post(hook.url, content=b"{not json").status_code == 400
        assert http.post(hook.url, content=b'{"task_id": "t"}').status_code == 400
        assert (
            http.post(hook.url, content=b"{}", headers={"Content-Type": "text/plain"}).status_code
            == 415
        )


def test_swarm_key_roundtrip_and_secrecy(tmp_path: Path) -> None:
    key = SwarmKey.generate()
    assert key.key_hex not in repr(key)
    assert key.key_hex not in str(key)
    path = key.save(tmp_path / "k" / "swarm.key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert SwarmKey.load(path) == key
    with pytest.raises(ValueError):
        SwarmKey("zz" * 32)
    with pytest.raises(ValueError, match="base16"):
        SwarmKey.from_string(f"/key/swarm/psk/1.0.0/\n/base64/\n{'a' * 64}\n")
    with pytest.raises(FileNotFoundError):
        SwarmKey.load(tmp_path / "missing")


def worker(
    peer: str, name: str, engine: str, current: int = 0, max_tasks: int = 2, **kw: object
) -> WorkerProfile:
    return WorkerProfile.model_validate(
        {
            "peer_id": peer,
            "name": name,
            "hardware": f"{engine} (CPU: 8 Cores)",
            "current_tasks": current,
            "max_tasks": max_tasks,
            "status": "AVAILABLE",
            **kw,
        }
    )


def test_worker_profile_fields() -> None:
    w = WorkerProfile.model_validate(
        {
            "peer_id": PEER,
            "hardware": "llama (v2) (GPU VRAM: 1.0/8.0 GB)",
            "honesty_score": -0.25,
            "cpu_usage_pct": -1,
            "current_tasks": 3,
            "max_tasks": 2,
            "last_seen": "2026-01-01T00:00:00Z",
            "unknown_future_field": 1,
        }
    )
    assert w.engine == "llama (v2)"
    assert w.model == "llama (v2)"
    assert w.free_slots == 0
    assert w.load_ratio == 1.5
    assert w.honesty_score == -0.25
    assert w.last_seen is not None
    assert WorkerProfile(peer_id=PEER, hardware="").engine == ""


def test_match_tiers_and_order() -> None:
    workers = [
        worker("p1", "echo", "llama", current=1),
        worker("p2", "echo", "llama", current=0),
        worker("p3", "llama", "mistral"),
        worker("p4", "other", "ECHO"),
        worker("p5", "echo", "x", online=False),
    ]
    assert [w.peer_id for w in match_workers(workers, "echo")] == ["p2", "p1"]
    assert [w.peer_id for w in match_workers(workers, "LLAMA")] == ["p3"]
    assert [w.peer_id for w in match_workers(workers, "p4")] == ["p4"]
    assert match_workers(workers, "nothing") == []
    full = [worker("p6", "busy", "e", current=2, max_tasks=2)]
    assert match_workers(full, "busy", available_only=True) == []
    assert [w.peer_id for w in filter_workers(workers, model="llama", agent_name="ECHO")] == [
        "p1",
        "p2",
    ]


def test_flatten_and_coerce_messages() -> None:
    messages = [
        ChatMessage(role="system", content="S"),
        {"role": "", "content": "Hi"},
        {"role": "assistant", "content": ""},
    ]
    assert flatten_messages(messages) == "system: S\n\nuser: Hi\n\nassistant:"
    assert coerce_messages([ChatMessage(role="user", content="x")]) == [
        {"role": "user", "content": "x"}
    ]
    with pytest.raises(ValueError):
        coerce_messages(["nope"])  # type: ignore[list-item]
