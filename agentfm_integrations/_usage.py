"""Token estimates, shared by both frameworks: the gateway counts no tokens (protocol §8.2)."""

from __future__ import annotations

import math

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "estimated_counts"]

CHARS_PER_TOKEN = 4
"""Rough English average; only used because the gateway reports no usage."""


def estimate_tokens(text: str) -> int:
    """Estimate a token count from characters (about four per token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimated_counts(prompt: str, completion: str) -> tuple[int, int, int]:
    """``(prompt_tokens, completion_tokens, total_tokens)``, estimated from characters."""
    prompt_tokens, completion_tokens = estimate_tokens(prompt), estimate_tokens(completion)
    return prompt_tokens, completion_tokens, prompt_tokens + completion_tokens
