"""Build reputation from real answers, then run a batch that only trusted peers serve.

Anyone can advertise any name on a federated mesh. Here a third "echo" worker joins that
answers wrongly. We probe every echo peer once, rate each one into the gateway's signed
ledger (``client.peers.comment(..., rating=...)``), check an inclusion proof of a rating
against the ledger head, and then batch with ``min_honesty``: the SDK scatter and a
LangChain ``ChatAgentFM`` skip the peer we rated down, so it never gets a task.
Run it: ``python cookbook/14_trust_aware_batch.py``.
"""

from __future__ import annotations

from collections import Counter

from _gateway import gateway

from agentfm import AgentFMClient
from agentfm.mesh import AgentContext, CallableAgent, WorkerConfig
from agentfm_integrations.langchain import ChatAgentFM


def sloppy(prompt: str, ctx: AgentContext) -> str:
    return prompt[::-1] + "\n"  # looks busy, answers nonsense


SLOPPY = WorkerConfig("echo", "echo", CallableAgent(sloppy), max_tasks=4)


def main() -> None:
    with gateway(extra_workers=[SLOPPY]), AgentFMClient() as client:
        # 1. Probe each peer advertising "echo" once and rate it by what it answered.
        peers = [w.peer_id for w in client.workers.match("echo")]
        wrong = 0
        for peer in peers:
            answer = client.tasks.run(peer_id=peer, prompt="ping 42").text
            good = "ping 42" in answer
            wrong += not good
            receipt = client.peers.comment(
                peer,
                "correct echo" if good else "wrong answers",
                rating=0.5 if good else -1.0,
            )
            label = "+0.5 (correct)" if good else "-1.0 (wrong answers)"
            print(f"rated {peer} {label}: ledger entry {receipt.ledger_hash[:16]}…")
        print(f"probe: {len(peers)} echo peers, {wrong} answered wrongly")

        # 2. Every rating is a signed entry in the gateway's log; prove one is in it.
        entry = client.peers.log(peers[0]).entries[0]
        assert entry.entry_hash is not None
        proof = client.peers.proof(peers[0], entry.entry_hash)
        tampered = ("0" if entry.entry_hash[0] != "0" else "1") + entry.entry_hash[1:]
        print(
            f"proof verifies: {proof.verify(entry.entry_hash)}; "
            f"tampered: {proof.verify(tampered)} (tree of {proof.head.tree_size})"
        )
        for worker in client.peers.list():
            print(f"  {worker.peer_id[:16]}… honesty {worker.honesty_score:+.3f}")

        # 3. Trust-aware batches: only peers with honesty >= 0 get work.
        prompts = [f"question {i}" for i in range(20)]
        results = client.tasks.scatter_by_model(prompts, model="echo", min_honesty=0.0)
        untrusted = {p for p in peers if client.peers.get(p).honesty_score < 0}
        served = Counter(r.peer_id for r in results if r.ok)
        used = sum(served[p] for p in untrusted)
        print(
            f"trust-aware scatter: {sum(served.values())}/{len(prompts)} answered, "
            f"{used} by the untrusted peer"
        )

        chat = ChatAgentFM(model="echo", min_honesty=0.0)
        answers = chat.batch(prompts[:8])
        by = Counter(a.response_metadata["peer_id"] for a in answers)
        print(
            f"LangChain batch with min_honesty=0.0: {len(answers)} answers, "
            f"{sum(by[p] for p in untrusted)} by the untrusted peer"
        )
        # The app keeps building reputation as it runs: rate whoever served an answer.
        chat.rate_worker(answers[0], 0.5, "good answer in the batch")
        chat.close()


if __name__ == "__main__":
    main()
