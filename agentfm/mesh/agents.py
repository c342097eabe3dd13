"""Agent backends a mesh worker can run: a subprocess, a Python callable, an OpenAI proxy.

Every backend turns one prompt into a stream of raw output bytes, exactly what the real
worker forwards from its container's stdout and stderr. Files the agent writes into
``ctx.output_dir`` become the task's artifacts.

Example:
    >>> def shout(prompt: str, ctx: AgentContext) -> str:
    ...     return prompt.upper() + "\\n"
    >>> agent = CallableAgent(shout)
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future
    from pathlib import Path

    import httpx

__all__ = [
    "Agent",
    "AgentContext",
    "BreakStream",
    "CallableAgent",
    "CommandAgent",
    "OpenAIProxyAgent",
    "SandboxExit",
]

AgentFunction = Callable[[str, "AgentContext"], Any]

_READ_SIZE = 64 * 1024


class BreakStream(Exception):
    """Raise from an agent to end the task body with no marker, as a reset libp2p stream does."""


class SandboxExit(Exception):
    """The agent ended abnormally; the worker reports ``⚠️  Sandbox exited: <message>``."""


class StartFailed(Exception):
    """The agent could not be started at all; the worker reports ``❌ Failed to start task``."""


class AgentContext:
    """What an agent knows about the task it runs.

    Attributes:
        task_id: the task id (the artifact zip's basename).
        model: the worker's engine string, also exported to subprocesses as ``AGENTFM_MODEL``.
        worker_name: the agent name of the worker running the task.
    """

    __slots__ = ("_output_dir", "_running", "_used", "model", "task_id", "worker_name")

    def __init__(self, task_id: str, model: str, worker_name: str, output_dir: Path) -> None:
        self.task_id = task_id
        self.model = model
        self.worker_name = worker_name
        self._output_dir = output_dir
        self._used = False
        self._running: list[Future[Any]] = []

    def track(self, future: Future[Any]) -> None:
        """Count ``future`` (agent code on a thread) as part of the task until it returns."""
        self._running.append(future)

    @property
    def still_running(self) -> list[Future[Any]]:
        """Agent code of this task that has not returned yet (a thread cannot be killed)."""
        return [f for f in self._running if not f.done()]

    @property
    def output_dir(self) -> Path:
        """Folder whose contents become the task's artifacts; created on first use."""
        if not self._used:
            self._output_dir.mkdir(parents=True, exist_ok=True)
            self._used = True
        return self._output_dir

    @property
    def output_dir_used(self) -> bool:
        """Whether the output folder was created (so it may hold files)."""
        return self._used


class Agent(abc.ABC):
    """Base class of agent backends: produce raw output bytes for one prompt."""

    @abc.abstractmethod
    def stream(self, prompt: str, ctx: AgentContext) -> AsyncGenerator[bytes, None]:
        """Run the agent on ``prompt`` and yield its output bytes as they come.

        Raises:
            BreakStream: end the body without a terminal marker.
            SandboxExit: abnormal end, reported in-band before the marker.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most agents hold nothing
        """Release resources held across tasks (connections, clients)."""


def _encode(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8", "surrogatepass")
    raise TypeError(f"agent yielded {type(item).__name__}, expected str or bytes")


_DONE = object()


class CallableAgent(Agent):
    """Run a Python function as the agent.

    ``fn(prompt, ctx)`` may be sync or async and return a ``str``, an iterable of ``str``
    or an async iterable of ``str``. Sync functions (and sync iterators) run on this
    agent's own bounded thread pool (``max_threads``), never on the pool that serves
    artifacts, so hung agents cannot starve the rest of the mesh; pass ``threaded=False``
    for functions that return at once.

    ``timeout`` bounds a task like `CommandAgent`'s: past it the task ends with
    ``⚠️  Sandbox exited: signal: killed``. A thread cannot be killed, so the worker keeps
    the slot busy (and its telemetry says so) until the function really returns.

    Example:
        >>> async def lines(prompt: str, ctx: AgentContext):
        ...     for word in prompt.split():
        ...         yield word + "\\n"
        >>> agent = CallableAgent(lines, timeout=60)
    """

    def __init__(
        self,
        fn: AgentFunction,
        *,
        threaded: bool = True,
        timeout: float | None = None,
        max_threads: int = 32,
    ) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.fn = fn
        self.threaded = threaded
        self.timeout = timeout
        self.max_threads = max_threads
        self._native = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_threads, thread_name_prefix=f"agentfm-agent-{id(self):x}"
                )
            return self._pool

    async def _in_thread(self, ctx: AgentContext, fn: Callable[..., Any], *args: Any) -> Any:
        future = self._executor().submit(fn, *args)
        ctx.track(future)
        return await asyncio.wrap_future(future)

    async def stream(self, prompt: str, ctx: AgentContext) -> AsyncGenerator[bytes, None]:
        """Call the function and yield what it produces (within ``timeout``)."""
        if self.timeout is None:
            async for piece in self._produce(prompt, ctx):
                yield piece
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        produce = self._produce(prompt, ctx)
        try:
            while True:
                try:
                    piece = await asyncio.wait_for(
                        produce.__anext__(), max(0.0, deadline - loop.time())
                    )
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError:
                    raise SandboxExit("signal: killed") from None
                yield piece
        finally:
            with contextlib.suppress(Exception):
                await produce.aclose()

    async def _produce(self, prompt: str, ctx: AgentContext) -> AsyncGenerator[bytes, None]:
        if self._native or not self.threaded:
            result = self.fn(prompt, ctx)
        else:
            result = await self._in_thread(ctx, self.fn, prompt, ctx)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, (str, bytes)):
            yield _encode(result)
        elif isinstance(result, AsyncIterable):
            async for item in result:
                yield _encode(item)
        elif isinstance(result, Iterable):
            iterator: Iterator[Any] = iter(result)
            while True:
                if self.threaded:
                    item = await self._in_thread(ctx, next, iterator, _DONE)
                else:
                    item = next(iterator, _DONE)
                if item is _DONE:
                    break
                yield _encode(item)
        elif result is not None:
            raise TypeError(f"agent returned {type(result).__name__}, expected str or iterable")

    async def aclose(self) -> None:
        """Stop the thread pool (threads still inside a hung function are left to finish)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _go_exit_text(returncode: int) -> str:
    """Describe a process exit the way Go's ``exec.ExitError`` does."""
    if returncode < 0:
        try:
            name = signal.strsignal(-returncode) or f"signal {-returncode}"
        except ValueError:
            name = f"signal {-returncode}"
        return f"signal: {name.lower()}"
    return f"exit status {returncode}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# The watchdog: a tiny process told which agent process groups are alive. Its stdin is a
# pipe only this process writes to; when this process dies (even by SIGKILL, when no
# cleanup runs) the kernel closes the pipe, the watchdog reads EOF and kills every group
# still registered. It needs no preexec hook (unsafe with threads) and works wherever
# process groups do.
_WATCHDOG = r"""
import os, signal, sys
groups = set()
for line in sys.stdin.buffer:
    try:
        pgid = int(line[1:])
    except ValueError:
        continue
    (groups.add if line[:1] == b"+" else groups.discard)(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class _Watchdog:
    """The process-wide watchdog of subprocess agents (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _send(self, line: bytes) -> None:
        with self._lock:
            for _ in range(2):
                proc = self._proc
                if proc is None or proc.poll() is not None:
                    proc = self._proc = subprocess.Popen(
                        [sys.executable, "-S", "-c", _WATCHDOG],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,  # a Ctrl-C to our group must not stop it
                    )
                assert proc.stdin is not None
                try:
                    proc.stdin.write(line)
                    proc.stdin.flush()
                    return
                except OSError:
                    self._proc = None  # it died: start a new one and say it again

    def close(self) -> None:
        """At exit: EOF tells the watchdog to clean up and stop."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)

    def watch(self, pgid: int) -> None:
        """Kill group ``pgid`` if this process dies before `forget` is called."""
        if hasattr(os, "killpg"):
            self._send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        """The group is gone (killed and reaped): stop watching it."""
        if hasattr(os, "killpg"):
            self._send(b"-%d\n" % pgid)


WATCHDOG = _Watchdog()
atexit.register(WATCHDOG.close)


class CommandAgent(Agent):
    """Run a subprocess per task, the way the real worker runs its container.

    The prompt is appended as the last argument. The child gets ``AGENTFM_MODEL`` and
    ``AGENTFM_OUTPUT_DIR`` (its per-task artifact folder) in its environment; stdout and
    stderr are forwarded interleaved as they come. The child leads its own process group,
    so a timeout, a client disconnect or the mesh stopping kills everything it started;
    a watchdog process kills the group too if the mesh itself dies (even by SIGKILL).

    Example:
        >>> agent = CommandAgent(["python3", "-c", "import sys; print(sys.argv[-1])"], timeout=30)
    """

    def __init__(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        if not argv:
            raise ValueError("CommandAgent needs a non-empty argv")
        self.argv = list(argv)
        self.timeout = timeout
        self.env = dict(env or {})
        self.cwd = cwd

    async def stream(self, prompt: str, ctx: AgentContext) -> AsyncGenerator[bytes, None]:
        """Start the process and forward its output until it exits."""
        env = {**os.environ, **self.env}
        env["AGENTFM_MODEL"] = ctx.model
        env["AGENTFM_OUTPUT_DIR"] = str(ctx.output_dir)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                prompt,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            raise StartFailed(str(exc)) from exc
        # If the mesh is SIGKILLed, nothing below runs: the watchdog kills the group then.
        WATCHDOG.watch(proc.pid)
        assert proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                try:
                    if remaining is not None and remaining <= 0:
                        raise asyncio.TimeoutError
                    data = await asyncio.wait_for(proc.stdout.read(_READ_SIZE), remaining)
                except asyncio.TimeoutError:
                    # Kill the whole group, then keep forwarding what is already in the pipe.
                    _kill_group(proc.pid)
                    deadline = None
                    continue
                if not data:
                    break
                yield data
            returncode = await proc.wait()
        finally:
            # Like a container, nothing the agent started may outlive it.
            _kill_group(proc.pid)
            if proc.returncode is None:
                await proc.wait()
            WATCHDOG.forget(proc.pid)
        if returncode != 0:
            raise SandboxExit(_go_exit_text(returncode))


class OpenAIProxyAgent(Agent):
    """Forward prompts to an OpenAI-compatible server (Ollama, vLLM, llama.cpp), streaming tokens.

    Example:
        >>> agent = OpenAIProxyAgent("http://127.0.0.1:11434/v1", "llama3.2")
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"OpenAIProxyAgent(base_url={self.base_url!r}, model={self.model!r})"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(headers=headers, timeout=self.timeout)
        return self._client

    async def stream(self, prompt: str, ctx: AgentContext) -> AsyncGenerator[bytes, None]:
        """Send one streaming chat completion and yield each content delta."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        }
        async with self._http().stream(
            "POST", f"{self.base_url}/chat/completions", json=body
        ) as response:
            if response.status_code != 200:
                detail = (await response.aread())[:200].decode("utf-8", "replace")
                raise SandboxExit(f"upstream returned HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                    choice = event["choices"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
                delta = choice.get("delta") or {}
                text = delta.get("content") or choice.get("text") or ""
                if text:
                    yield text.encode()

    async def aclose(self) -> None:
        """Close the pooled HTTP connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
