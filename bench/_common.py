"""Helpers shared by the bench scripts: dataset location, a BEIR corpus source, peak RSS."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import resource
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.records import SourceItem  # noqa: E402


def datasets_dir() -> Path:
    return Path(os.environ.get("ONDATA_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def require(path: Path) -> Path:
    if not path.exists():
        print(f"SKIP: {path} is absent (set ONDATA_SHARED_DATASETS to the shared datasets folder)")
        sys.exit(0)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class BeirCorpusSource:
    """DocumentSource over a BEIR corpus.jsonl(.gz): each record is one text document, streamed."""

    def __init__(self, path: Path, *, limit: int | None = None) -> None:
        self.path = path
        self.limit = limit

    def __repr__(self) -> str:
        return f"BeirCorpusSource({self.path.name}, limit={self.limit})"

    @property
    def scope(self) -> str:
        return f"beir:{self.path.resolve()}"

    def _records(self) -> Iterator[dict]:
        opener = gzip.open if self.path.suffix == ".gz" else open
        with opener(self.path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if self.limit is not None and n >= self.limit:
                    return
                yield json.loads(line)

    @staticmethod
    def _text(rec: dict) -> bytes:
        return f"{rec.get('title', '')}\n\n{rec['text']}".encode("utf-8")

    def list_items(self, known=None) -> Iterator[SourceItem]:
        for rec in self._records():
            data = self._text(rec)
            yield SourceItem(
                id=f"{rec['_id']}.txt", scope=self.scope, version=hashlib.sha256(data).hexdigest(), name=f"{rec['_id']}.txt",
                size=len(data), content_type="text/plain", title=rec.get("title", ""), filepath=f"{rec['_id']}.txt",
            )

    def open(self, item: SourceItem) -> BinaryIO:
        want = item.id[: -len(".txt")]
        for rec in self._records():
            if rec["_id"] == want:
                return io.BytesIO(self._text(rec))
        raise KeyError(item.id)


class SeekableBeirCorpusSource(BeirCorpusSource):
    """Same, but decompresses once to a temporary file and opens items by byte offset (streamed, O(1) memory per item)."""

    def __init__(self, path: Path, *, limit: int | None = None) -> None:
        super().__init__(path, limit=limit)
        import tempfile

        self._tmp = tempfile.NamedTemporaryFile(prefix="beir-", suffix=".jsonl")
        self._offsets: dict[str, int] = {}
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as src:
            pos = 0
            for n, line in enumerate(src):
                if limit is not None and n >= limit:
                    break
                self._offsets[json.loads(line)["_id"] + ".txt"] = pos
                self._tmp.write(line)
                pos += len(line)
        self._tmp.flush()

    def _records(self) -> Iterator[dict]:
        with open(self._tmp.name, encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def open(self, item: SourceItem) -> BinaryIO:
        with open(self._tmp.name, "rb") as fh:
            fh.seek(self._offsets[item.id])
            return io.BytesIO(self._text(json.loads(fh.readline())))
