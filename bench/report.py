"""Progress reports a benchmark worker process writes for the orchestrator (stdlib only).

A worker (the Handoff fold worker, the Quix Streams peer) counts the records its
handler sees and, from a daemon thread, rewrites a small JSON file every 200 ms:
how many records, when the first and the latest one were handled (wall clock,
comparable across processes on one machine), whether it is ready and which
partitions it owns. The orchestrator only reads these files, so measuring adds
one integer increment and one clock read per record to the worker.

Stdlib only: the Quix peer imports this from its own virtual environment.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc."""
    with open(f"/proc/{pid or os.getpid()}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Progress:
    """What a worker tells the orchestrator; `tick()` is called once per handled record."""

    def __init__(self, path: Path, interval_s: float = 0.2):
        self.path = path
        self.count = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.ready = False
        self.partitions: list[int] = []
        self.extra: dict[str, Any] = {}
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-progress", daemon=True)

    def tick(self) -> None:
        now = time.time()
        if not self.count:
            self.first_at = now
        self.count += 1
        self.last_at = now

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.write()

    def snapshot(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(),
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "ready": self.ready,
            "partitions": list(self.partitions),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss": rss_bytes(),
            "written_at": time.time(),
            **self.extra,
        }

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        tmp.replace(self.path)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.write()


def read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data
