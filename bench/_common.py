"""Helpers shared by the bench scripts: dataset location, SciFact-or-synthetic documents, a BEIR corpus source, peak RSS."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import resource
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.records import SourceItem  # noqa: E402


def datasets_dir() -> Path:
    return Path(os.environ.get("ONDATA_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def scifact_documents(n: int, *, min_chars: int = 200) -> tuple[list[tuple[str, str, str]], str]:
    """``(id, title, text)`` of n documents: SciFact abstracts of at least ``min_chars`` (``$ONDATA_SHARED_DATASETS``),
    topped up with seeded synthetic studies when there are too few or the dataset is absent; and where
    they came from (``scifact``, ``scifact+synthetic``, ``synthetic``)."""
    path = datasets_dir() / "scifact" / "corpus.jsonl.gz"
    out: list[tuple[str, str, str]] = []
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if len(rec.get("text", "")) < min_chars:
                    continue
                out.append((rec["_id"], rec.get("title", ""), f"{rec.get('title', '')}\n\n{rec['text']}"))
                if len(out) == n:
                    return out, "scifact"
    found = len(out)
    rng = random.Random(7)
    words = ("cell protein gene tissue signal receptor pathway cohort trial dose response model risk rate "
             "analysis sample effect level marker therapy patient outcome factor network structure").split()
    while len(out) < n:
        i = len(out)
        sents = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "." for _ in range(12)]
        out.append((f"synthetic-{i:05d}", f"Synthetic study {i}", f"Synthetic study {i}\n\n" + " ".join(sents)))
    return out, ("scifact+synthetic" if found else "synthetic")


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
