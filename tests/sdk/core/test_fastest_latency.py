"""`FastestLatency` always answers the lowest latency among the peers, however they move."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm._scatter._choice import FastestLatency
from agentfm._scatter._types import _Peer


@settings(max_examples=300, deadline=None)
@given(
    moves=st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 2.0), st.booleans()), max_size=40)
)
def test_the_cached_fastest_is_the_minimum_latency(moves: list[tuple[int, float, bool]]) -> None:
    peers = [_Peer(f"p{n}", n) for n in range(4)]
    fastest = FastestLatency()
    for index, latency, ask in moves:
        peer = peers[index]
        old, peer.latency = peer.latency, latency
        fastest.moved(old, latency)
        if ask:
            measured = [p.latency for p in peers if p.latency is not None]
            assert fastest.get(peers) == (min(measured) if measured else None)
    measured = [p.latency for p in peers if p.latency is not None]
    assert fastest.get(peers) == (min(measured) if measured else None)
