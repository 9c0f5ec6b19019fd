"""A run folder: ``config.json``, ``results.jsonl`` (one record per question) and ``summary.json``.

``results.jsonl`` is appended one line per answered question and flushed, so a killed run keeps
what it did; a re-run with the same folder skips the questions already recorded (by question hash)
and refuses to continue when the configuration differs (keys under ``"meta"`` are not compared).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from eval.errors import RunStoreError

log = logging.getLogger(__name__)

CONFIG = "config.json"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    os.replace(tmp, path)


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys (dotted) whose values differ between two configs, ignoring ``meta``."""
    diffs: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b)):
                if not prefix and key == "meta":
                    continue
                walk(a.get(key), b.get(key), f"{prefix}{key}.")
        elif a != b:
            diffs.append(prefix.rstrip("."))

    walk(old, new, "")
    return diffs


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    def exists(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise RunStoreError(f"{self.path} is not an evaluation run (no {CONFIG})")
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def start(self, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Create the folder or resume it; returns the records already done, by question id.

        Raises ``RunStoreError`` when the folder holds a run with a different configuration.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if self.exists():
            old = self.read_config()
            diffs = config_differences(old, config)
            if diffs:
                raise RunStoreError(
                    f"{self.path} holds a run with a different configuration ({', '.join(diffs)}); "
                    "use another --out folder or delete this one"
                )
            done = {r["qid"]: r for r in self.read_results() if not r.get("error")}
            log.info("resuming %s: %d questions already done", self.path, len(done))
            return done
        _atomic_write(self.config_path, json.dumps(config, indent=2, default=str) + "\n")
        return {}

    def write_config(self, config: Mapping[str, Any]) -> None:
        _atomic_write(self.config_path, json.dumps(config, indent=2, default=str) + "\n")

    def append(self, record: Mapping[str, Any]) -> None:
        with open(self.results_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            fh.flush()

    def read_results(self) -> list[dict[str, Any]]:
        """Every record; for a question recorded more than once (an error, then a retry) the last wins."""
        if not self.results_path.is_file():
            return []
        by_qid: dict[str, dict[str, Any]] = {}
        with open(self.results_path, encoding="utf-8") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    log.warning("%s line %d is truncated (a killed run?); ignored", self.results_path, number)
                    continue
                by_qid.pop(record["qid"], None)
                by_qid[record["qid"]] = record
        return list(by_qid.values())

    def write_results(self, records: Iterable[Mapping[str, Any]]) -> None:
        _atomic_write(self.results_path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        _atomic_write(self.summary_path, json.dumps(summary, indent=2, default=str) + "\n")

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.is_file():
            raise RunStoreError(f"{self.path} has no {SUMMARY}; finish the run with `ondata eval run`")
        return json.loads(self.summary_path.read_text(encoding="utf-8"))
