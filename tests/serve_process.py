"""Test helpers (no tests here): a real `ondata serve` subprocess over a small ACL'd index, and what it printed."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHAT = "/openai/deployments/ondata/chat/completions?api-version=2024-10-21"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def serving(app):
    """An ASGI ``app`` served by uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def ondata_command() -> list[str]:
    return [sys.executable, "-c", "from ondata.cli import main; main()"]


def make_index(directory: Path) -> Path:
    """The ACL'd corpus of ``test_retrieval_corpus`` in a local index at ``directory`` (hashing embedder)."""
    from test_retrieval_corpus import build_index

    index, _ = build_index(directory)
    index.close()
    return directory


class ServeProcess:
    """``ondata serve ARGS`` on a free port; ``url``; ``stderr_text()``; ``stop()``."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 90.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="ondata-serve-"))
        self._stderr_path = self.log_dir / f"serve-{self.port}.stderr"
        self._stdout_path = self.log_dir / f"serve-{self.port}.stdout"
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(
            [*ondata_command(), "serve", "--port", str(self.port), *args], cwd=self.log_dir, env=full_env,
            stdout=self._stdout_path.open("wb"), stderr=self._stderr_path.open("wb"))
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ondata serve exited with {self.proc.returncode}: {self.stderr_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"ondata serve did not start: {self.stderr_text()}")
            time.sleep(0.2)

    def stderr_text(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def stdout_text(self) -> str:
        return self._stdout_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def oyd_body(question: str, *, index_name: str = "docs", query_type: str = "simple", **params: Any) -> dict[str, Any]:
    p = {"index_name": index_name, "query_type": query_type, "strictness": 1, "top_n_documents": 20,
         "include_contexts": ["citations", "intent", "all_retrieved_documents"], **params}
    return {"messages": [{"role": "user", "content": question}], "data_sources": [{"type": "azure_search", "parameters": p}]}


def retrieved_files(response: httpx.Response) -> set[str]:
    ctx = response.json()["choices"][0]["message"]["context"]
    return {d["filepath"] for d in ctx.get("all_retrieved_documents", [])} | {c["filepath"] for c in ctx.get("citations", [])}
