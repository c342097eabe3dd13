"""One benchmark run of one client against the scatter mesh, in its own process.

``bench_scatter.py`` starts this script once per (workload, client) with a JSON spec as its
only argument, and reads one JSON line of measurements back. A fresh process per run gives
each client its own CPU and peak-RSS figures. The module imports only the standard library
at the top, because the benchmark's own venvs run it too (``_venvs.py``): the 0.3.0 SDK's,
where ``agentfm`` is the seed, and the newest openai/langchain-openai's, with no ``agentfm``.
``bench_langchain.py`` runs it as well, for ``ChatOpenAI`` from that venv.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import resource
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel, LanguageModelInput

Outcome = tuple[int, bool, str, float]  # (index, succeeded, text, item latency)


class Prompts(Sequence[str]):
    """The batch's prompts, made on demand so the harness itself holds no per-item memory."""

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [prompt_of(j) for j in range(self._n)[i]]
        if not 0 <= i < self._n:
            raise IndexError(i)
        return prompt_of(i)

    def __iter__(self) -> Iterator[str]:
        return (prompt_of(i) for i in range(self._n))


class Tally:
    """Checks each result as it arrives: ok, failed, wrong, duplicated; item latencies."""

    def __init__(self, n: int) -> None:
        self.seen = bytearray(n)
        self.ok = self.failed = self.wrong = self.duplicated = 0
        self.latencies = array("d")
        self.failures: Counter[str] = Counter()  # exception type name -> items

    def add(self, index: int, succeeded: bool, text: str, latency: float) -> None:
        if self.seen[index]:
            self.duplicated += 1
        self.seen[index] = 1
        if not succeeded:
            self.failed += 1
            self.failures[text.split("(", 1)[0]] += 1  # a failure's text is repr(exception)
        elif text.strip() != expected(index):
            self.wrong += 1  # a partial output or a rejection line counted as success
        else:
            self.ok += 1
        if latency == latency:  # not NaN
            self.latencies.append(latency)

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prompt_of(index: int) -> str:
    """The prompt of item ``index``; the agents answer ``done item-<index>``."""
    return f"summarise item-{index}"


def expected(index: int) -> str:
    """The right answer to item ``index``."""
    return f"done item-{index}"


def run_agentfm_async(spec: dict[str, Any], tally: Tally) -> None:
    """Our SDK's async scatter (``scatter_iter``: results as they complete)."""
    import uvloop

    from agentfm import AsyncAgentFMClient

    async def main() -> None:
        async with AsyncAgentFMClient(spec["url"], api_key=None) as client:
            async for r in client.tasks.scatter_iter(
                Prompts(spec["items"]),
                peer_ids=spec["peers"],
                max_concurrency=spec["concurrency"],
                **spec.get("options", {}),
            ):
                tally.add(r.index, r.ok, r.text, r.duration_seconds)

    uvloop.run(main())


def run_agentfm_sync(spec: dict[str, Any], tally: Tally) -> None:
    """Our SDK's sync scatter."""
    from agentfm import AgentFMClient

    with AgentFMClient(spec["url"], api_key=None) as client:
        for r in client.tasks.scatter_iter(
            Prompts(spec["items"]),
            peer_ids=spec["peers"],
            max_concurrency=spec["concurrency"],
            **spec.get("options", {}),
        ):
            tally.add(r.index, r.ok, r.text, r.duration_seconds)


def _seed(spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """agentfm-sdk 0.3.0's ``tasks.scatter`` (run from the seed venv)."""
    from agentfm import AgentFMClient

    client = AgentFMClient(spec["url"], api_key=None)
    results = client.tasks.scatter(
        prompts, peer_ids=spec["peers"], max_concurrency=spec["concurrency"]
    )
    return [(i, r.status == "success", r.text, float("nan")) for i, r in enumerate(results)]


def _openai(spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """The official AsyncOpenAI client, an ``asyncio.Semaphore`` and ``gather``."""
    import uvloop
    from openai import AsyncOpenAI

    async def main() -> list[Outcome]:
        client = AsyncOpenAI(base_url=spec["url"] + "/v1", api_key="bench")
        gate = asyncio.Semaphore(spec["concurrency"])

        async def one(index: int, prompt: str) -> Outcome:
            async with gate:
                started = time.perf_counter()
                try:
                    reply = await client.chat.completions.create(
                        model=spec["engine"], messages=[{"role": "user", "content": prompt}]
                    )
                except Exception as exc:  # a failed item, whatever the client raised
                    return (index, False, repr(exc), time.perf_counter() - started)
                text = reply.choices[0].message.content or ""
                return (index, True, text, time.perf_counter() - started)

        try:
            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))
        finally:
            await client.close()

    return uvloop.run(main())


def _langchain(spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """LangChain's ``ChatOpenAI.batch`` on ``/v1`` (``return_exceptions`` per spec)."""
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    llm = ChatOpenAI(model=spec["engine"], base_url=spec["url"] + "/v1", api_key=SecretStr("bench"))
    return _chat_batch(llm, spec, prompts)


def _chat_agentfm(spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """Our LangChain integration: ``ChatAgentFM.batch`` routed by the group's engine."""
    from agentfm_integrations.langchain import ChatAgentFM

    llm = ChatAgentFM(model=spec["engine"], gateway_url=spec["url"], api_key=None)
    return _chat_batch(llm, spec, prompts)


def _chat_batch(llm: BaseChatModel, spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """One ``batch`` call with ``max_concurrency`` = capacity, as LangChain users write it."""
    inputs: list[LanguageModelInput] = list(prompts)
    keep = bool(spec.get("options", {}).get("return_exceptions", False))
    try:
        replies = llm.batch(
            inputs, config={"max_concurrency": spec["concurrency"]}, return_exceptions=keep
        )
    except Exception:  # the default batch raises the first error: every result is lost
        return []
    out: list[Outcome] = []
    for index, reply in enumerate(replies):
        if isinstance(reply, Exception):
            out.append((index, False, repr(reply), float("nan")))
        else:
            out.append((index, True, str(reply.content), float("nan")))
    return out


class RawReplies:
    """The raw floor's reading of one keep-alive connection: the chunked framing walked with
    ``readuntil``/``readexactly``, no library and no checks beyond finding the marker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def ask(self, body: bytes) -> tuple[bool, str]:
        """Send one ``POST /api/execute``; return (the marker was seen, the text before it)."""
        reader = self._reader
        self._writer.write(
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        await reader.readuntil(b"\r\n\r\n")
        data = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            data += await reader.readexactly(size + 2)
            del data[-2:]
        text = data.decode()
        return "[AGENTFM: NO_FILES]" in text, text.split("\n[AGENTFM:")[0]


_MARKERS = ("[AGENTFM: NO_FILES]", "[AGENTFM: FILES_INCOMING]")


class ParsedReplies:
    """One keep-alive connection's replies, framed by the parser our fast path uses.

    llhttp through httptools when it is installed, else h11 (as ``agentfm._execute_pool``
    picks), and a 200 whose last line is a terminal marker counts: the least a correct
    client must do, against the raw floor's ``readuntil`` with no checks.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._body: list[bytes] = []
        self._done = False
        try:
            import httptools
        except ImportError:
            import h11

            self._h11: Any = h11.Connection(h11.CLIENT)
            self._ll: Any = None
        else:
            self._h11 = None
            self._ll = httptools.HttpResponseParser(self)

    # llhttp callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done = True

    async def ask(self, body: bytes) -> tuple[bool, str]:
        """Send one ``POST /api/execute``; return (a 200 ending in a marker, its text)."""
        self._body, self._done = [], False
        head = [(b"Host", b"x"), (b"Content-Type", b"application/json")]
        head.append((b"Content-Length", b"%d" % len(body)))
        if self._ll is not None:
            self._writer.write(
                b"POST /api/execute HTTP/1.1\r\n"
                + b"".join(b"%s: %s\r\n" % pair for pair in head)
                + b"\r\n"
                + body
            )
            while not self._done:
                data = await self._reader.read(65536)
                if not data:
                    return False, "EOF"
                self._ll.feed_data(data)
            status = self._ll.get_status_code()
        else:
            status = await self._ask_h11(body, head)
        text = b"".join(self._body).decode("utf-8", "replace")
        last = text.rstrip("\r\n").rpartition("\n")[2].strip()
        return status == 200 and last in _MARKERS, text.split("\n[AGENTFM:")[0]

    async def _ask_h11(self, body: bytes, head: list[tuple[bytes, bytes]]) -> int:
        import h11

        conn = self._h11
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        request = h11.Request(method="POST", target="/api/execute", headers=head)
        self._writer.write(
            conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                self._body.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status


async def raw_batch(
    spec: dict[str, Any], prompts: Sequence[str], replies: type[RawReplies | ParsedReplies]
) -> list[Outcome]:
    """The raw clients' batch: one keep-alive connection per capacity slot, pinned to a peer,
    each taking the next prompt as its last reply ends; no failover and no retry."""
    host, port = spec["url"].removeprefix("http://").split(":")
    slots = [p for p in spec["peers"] for _ in range(spec["concurrency"] // len(spec["peers"]))]
    todo = list(enumerate(prompts))
    todo.reverse()
    out: list[Outcome] = []

    async def slot(peer: str) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        conn = replies(reader, writer)
        while todo:
            index, prompt = todo.pop()
            body = json.dumps({"worker_id": peer, "prompt": prompt}).encode()
            started = time.perf_counter()
            ok, answer = await conn.ask(body)
            out.append((index, ok, answer, time.perf_counter() - started))
        writer.close()

    await asyncio.gather(*(slot(p) for p in slots))
    return out


def _raw(spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """The floor: keep-alive raw HTTP/1.1, one connection per capacity slot, no library."""
    import uvloop

    return uvloop.run(raw_batch(spec, prompts, RawReplies))


def _raw_parsed(spec: dict[str, Any], prompts: list[str]) -> list[Outcome]:
    """The raw floor's client with each reply parsed and its terminal marker checked."""
    import uvloop

    return uvloop.run(raw_batch(spec, prompts, ParsedReplies))


Runner = Callable[[dict[str, Any], Tally], None]


def listed(run: Callable[[dict[str, Any], list[str]], list[Outcome]]) -> Runner:
    """Adapt a client whose batch API takes and returns whole lists."""

    def runner(spec: dict[str, Any], tally: Tally) -> None:
        for outcome in run(spec, list(Prompts(spec["items"]))):
            tally.add(*outcome)

    return runner


# Imported before the clock starts: the figures compare running a batch, not importing.
PRELOAD = {
    "agentfm-async": ("uvloop", "agentfm"),
    "agentfm-sync": ("agentfm",),
    "seed": ("agentfm",),
    "openai": ("uvloop", "openai"),
    "raw": ("uvloop",),
    "raw-parsed": (
        "uvloop",
        "h11",
        *(("httptools",) if importlib.util.find_spec("httptools") else ()),
    ),
    "langchain": ("langchain_openai",),
    "chat-agentfm": ("agentfm", "agentfm_integrations.langchain"),
}

RUNNERS: dict[str, Runner] = {
    "agentfm-async": run_agentfm_async,
    "agentfm-sync": run_agentfm_sync,
    "seed": listed(_seed),
    "openai": listed(_openai),
    "raw": listed(_raw),
    "raw-parsed": listed(_raw_parsed),
    "langchain": listed(_langchain),
    "chat-agentfm": listed(_chat_agentfm),
}


def main() -> None:
    """Run the spec in ``argv[1]`` and print the measurements as one JSON line."""
    spec = json.loads(sys.argv[1])
    runner = RUNNERS[spec["client"]]
    for module in PRELOAD[spec["client"]]:
        importlib.import_module(module)
    if warm := spec.get("warmup", 0):
        # A throw-away batch first: lazy imports and first-call set-up stay off the clock,
        # for callers that compare against clients warmed in their own process.
        runner({**spec, "items": warm}, Tally(warm))
    tally = Tally(spec["items"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    runner(spec, tally)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "ok": tally.ok,
                "failed": tally.failed,
                "wrong": tally.wrong,
                "lost": spec["items"] - sum(tally.seen),
                "duplicated": tally.duplicated,
                "failure_kinds": dict(tally.failures),
                "p50": tally.percentile(0.50),
                "p99": tally.percentile(0.99),
                "rss_mb_before": rss_before / 1024,
                "rss_mb_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
