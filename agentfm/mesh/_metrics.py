"""Prometheus counters the embedded gateway can fill honestly, rendered in text format 0.0.4."""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

TASK_STATUSES = ("ok", "error", "rejected", "timeout")
AUTH_OUTCOMES = ("ok", "missing", "malformed", "invalid", "rate_limited")
STREAM_PROTOCOLS = ("task", "artifacts", "feedback")
STREAM_REASONS = (
    "decode",
    "deadline",
    "reset",
    "peer_eof",
    "capacity_rejected",
    "version_mismatch",
    "unknown",
)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 180.0, 300.0, 600.0, 1800.0)
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """In-process counters; every label tuple exists from the start at zero, as in the gateway."""

    def __init__(self) -> None:
        self.tasks = dict.fromkeys(TASK_STATUSES, 0)
        self.auth = dict.fromkeys(AUTH_OUTCOMES, 0)
        self.stream_errors = {(p, r): 0 for p in STREAM_PROTOCOLS for r in STREAM_REASONS}
        self.duration_counts = [0] * len(DURATION_BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.artifact_bytes = 0
        self.artifacts_built = 0
        self.started = _process_start_time()

    def observe_task(self, status: str, seconds: float) -> None:
        """Count a finished task and its duration."""
        self.tasks[status] += 1
        self.duration_sum += seconds
        self.duration_count += 1
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.duration_counts[i] += 1

    def render(self, workers_online: int) -> bytes:
        """The exposition text for ``GET /metrics``."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> Callable[[str, float], None]:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

            def sample(labels: str, value: float) -> None:
                out.append(f"{name}{labels} {_num(value)}")

            return sample

        sample = family("agentfm_tasks_total", "counter", "Tasks dispatched, by outcome.")
        for status, count in self.tasks.items():
            sample(f'{{status="{status}"}}', count)

        name = "agentfm_task_duration_seconds"
        family(name, "histogram", "Task duration from dispatch to end of stream.")
        for bound, count in zip(DURATION_BUCKETS, self.duration_counts, strict=False):
            out.append(f'{name}_bucket{{le="{_num(bound)}"}} {count}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.duration_count}')
        out.append(f"{name}_sum {_num(self.duration_sum)}")
        out.append(f"{name}_count {self.duration_count}")

        family("agentfm_workers_online", "gauge", "Workers in the live telemetry table.")(
            "", workers_online
        )
        family("agentfm_artifact_bytes_sent_total", "counter", "Bytes of artifact zips received.")(
            "", self.artifact_bytes
        )
        family("agentfm_artifacts_built_total", "counter", "Artifact zips written to disk.")(
            "", self.artifacts_built
        )
        sample = family(
            "agentfm_stream_errors_total", "counter", "Stream failures, by protocol and reason."
        )
        for (protocol, reason), count in self.stream_errors.items():
            sample(f'{{protocol="{protocol}",reason="{reason}"}}', count)
        sample = family(
            "agentfm_auth_attempts_total", "counter", "Authentication attempts, by outcome."
        )
        for outcome, count in self.auth.items():
            sample(f'{{outcome="{outcome}"}}', count)
        out.extend(_process_families(self.started))
        return ("\n".join(out) + "\n").encode()


def _num(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _process_families(started: float) -> list[str]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lines = [
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {_num(round(usage.ru_utime + usage.ru_stime, 6))}",
    ]
    rss = _resident_bytes()
    if rss is not None:
        lines += [
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes {rss}",
        ]
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = None
    if open_fds is not None:
        lines += [
            "# HELP process_open_fds Number of open file descriptors.",
            "# TYPE process_open_fds gauge",
            f"process_open_fds {open_fds}",
        ]
    lines += [
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {_num(round(started, 2))}",
    ]
    return lines


def _process_start_time() -> float:
    """When this process started (Unix seconds), from /proc; now when unknown."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
