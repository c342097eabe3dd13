"""Cheap, honest host readings for worker telemetry (CPU %, free RAM, core count)."""

from __future__ import annotations

import os


def cpu_cores() -> int:
    """Number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read_cpu_times() -> tuple[int, int] | None:
    """Return (busy, total) jiffies from the aggregate line of /proc/stat."""
    try:
        with open("/proc/stat", "rb") as fh:
            line = fh.readline()
    except OSError:
        return None
    parts = line.split()
    if not parts or parts[0] != b"cpu":
        return None
    values = [int(v) for v in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class CpuSampler:
    """Host CPU usage between two successive :meth:`sample` calls, in percent."""

    def __init__(self) -> None:
        self._last = _read_cpu_times()
        self.percent = 0.0
        if self._last is not None and self._last[1] > 0:
            # Until a second reading exists, the average since boot is the honest figure.
            self.percent = round(100.0 * self._last[0] / self._last[1], 2)

    def sample(self) -> float:
        """Take a reading and return the usage since the previous one."""
        now = _read_cpu_times()
        if now is None or self._last is None:
            # Without /proc/stat the 1-minute load average per core is the next honest figure.
            try:
                load = os.getloadavg()[0]
            except OSError:
                return self.percent
            self.percent = round(min(100.0, 100.0 * load / cpu_cores()), 2)
            return self.percent
        busy = now[0] - self._last[0]
        total = now[1] - self._last[1]
        self._last = now
        if total > 0:
            self.percent = round(100.0 * busy / total, 2)
        return self.percent


def ram_free_gb() -> float:
    """Available memory in GiB (``MemAvailable`` from /proc/meminfo), 0 when unknown."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return round(int(line.split()[1]) / (1024 * 1024), 2)
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0.0
    return round(pages / (1024**3), 2)
