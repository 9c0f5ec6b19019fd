"""A Dask cluster as separate processes: ``dask scheduler`` and ``dask worker`` CLIs, as on separate machines.

Used by ``bench/distributed.py`` and ``tests/test_distributed.py``. Nothing is shared with the caller's
process but the scheduler's address and what the environment of each worker says (``worker_env``),
so a task that works here needs no local-only state: it is pickled, sent over TCP and run in a
process that built its own objects from its own settings.

    cluster = DaskProcesses.start(tmp_path, workers=2, worker_env=lambda i: {...})
    try:
        DaskTaskRunner(address=cluster.address)
    finally:
        cluster.stop()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

BIN = Path(sys.executable).parent


@dataclass
class DaskProcesses:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def start(cls, directory: Path, *, workers: int, worker_env: Callable[[int], Mapping[str, str]] = lambda i: {},
              timeout: float = 60.0) -> "DaskProcesses":
        """A scheduler and ``workers`` single-threaded worker processes (no nanny); waits until all joined."""
        directory.mkdir(parents=True, exist_ok=True)
        scheduler_file = directory / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        base = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        sched = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            env=base, stdout=subprocess.DEVNULL, stderr=open(directory / "scheduler.log", "wb"),
            start_new_session=True)
        cluster = cls(address="", scheduler=sched)
        try:
            deadline = time.monotonic() + timeout
            while not scheduler_file.exists() or not scheduler_file.read_text().strip():
                if sched.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dask scheduler did not start: {(directory / 'scheduler.log').read_text()[-2000:]}")
                time.sleep(0.1)
            time.sleep(0.1)  # the file is written in one go, but give the writer a moment to close it
            cluster.address = json.loads(scheduler_file.read_text())["address"]
            for i in range(workers):
                cluster.workers.append(subprocess.Popen(
                    [str(BIN / "dask"), "worker", cluster.address, "--nthreads", "1", "--no-nanny",
                     "--no-dashboard", "--name", f"w{i}", "--local-directory", str(directory / f"w{i}")],
                    env={**base, **worker_env(i)}, stdout=subprocess.DEVNULL,
                    stderr=open(directory / f"worker-{i}.log", "wb"), start_new_session=True))
            cluster.wait_for_workers(workers, deadline=deadline, directory=directory)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def wait_for_workers(self, n: int, *, deadline: float, directory: Path) -> None:
        from distributed import Client

        with Client(self.address, timeout=max(1.0, deadline - time.monotonic())) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
                dead = [i for i, w in enumerate(self.workers) if w.poll() is not None]
                if dead or time.monotonic() > deadline:
                    log = (directory / f"worker-{dead[0] if dead else 0}.log").read_text()[-2000:]
                    raise RuntimeError(f"dask workers did not join: {log}")
                time.sleep(0.2)

    @property
    def pids(self) -> dict[str, int]:
        return {"scheduler": self.scheduler.pid, **{f"worker-{i}": w.pid for i, w in enumerate(self.workers)}}

    def stop(self) -> None:
        """SIGTERM the workers, then the scheduler (each its own process group); SIGKILL what lingers."""
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
