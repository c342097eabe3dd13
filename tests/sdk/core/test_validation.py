"""Client-side checks that run before anything is sent."""

from __future__ import annotations

import pytest

from agentfm import InvalidRequestError, is_peer_id
from agentfm._validation import (
    mint_task_id,
    pick_peer,
    require_positive_int,
    require_prompt,
    require_task_id,
    require_timeout,
)

ED25519 = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"
RSA = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
SECP = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"


@pytest.mark.parametrize("peer", [ED25519, RSA, SECP])
def test_valid_peer_ids(peer: str) -> None:
    assert is_peer_id(peer)


@pytest.mark.parametrize(
    "peer",
    ["", "echo", "12D3KooW", ED25519[:-1] + "0", ED25519 + "x", RSA[:-2], "Qm" + "1" * 44, None, 5],
)
def test_malformed_peer_ids(peer: object) -> None:
    assert not is_peer_id(peer)


def test_pick_peer_alias() -> None:
    assert pick_peer(ED25519, None) == ED25519
    assert pick_peer(None, ED25519) == ED25519
    with pytest.raises(InvalidRequestError):
        pick_peer(None, None)
    with pytest.raises(InvalidRequestError):
        pick_peer(ED25519, RSA)
    # Never stricter than the gateway: any non-empty string goes through (the gateway
    # answers 404 "Worker not found or offline" for an id it does not know).
    for placeholder in ("12D3KooWA", "12D3KooWAlpha", "nope", " "):
        assert pick_peer(placeholder, None) == placeholder
    for bad in ("", 5):
        with pytest.raises(InvalidRequestError):
            pick_peer(bad, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("prompt", ["", None, 3])
def test_bad_prompts(prompt: object) -> None:
    with pytest.raises(InvalidRequestError):
        require_prompt(prompt)


@pytest.mark.parametrize("prompt", ["   ", "\n\t"])
def test_whitespace_prompts_pass_as_go_accepts_them(prompt: str) -> None:
    assert require_prompt(prompt) == prompt


def test_task_ids() -> None:
    assert require_task_id("task_abc-1.2") == "task_abc-1.2"
    minted = mint_task_id()
    assert require_task_id(minted) == minted
    assert minted.startswith("task_")
    for bad in ["", "_x", "a/b", "x" * 129, "tâsk"]:
        with pytest.raises(InvalidRequestError):
            require_task_id(bad)


def test_timeouts_and_counts() -> None:
    assert require_timeout(None) is None
    assert require_timeout(2) == 2.0
    for bad in [0, -1, float("nan"), float("inf"), True, "3"]:
        with pytest.raises(InvalidRequestError):
            require_timeout(bad)  # type: ignore[arg-type]
    for bad_count in [0, -1, 1.5, True]:
        with pytest.raises(InvalidRequestError):
            require_positive_int(bad_count, name="max_concurrency")
    assert issubclass(InvalidRequestError, ValueError)
