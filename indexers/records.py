"""Record types that cross module boundaries: chunks, search requests and hits, source records.

All are frozen dataclasses. ``metadata`` mappings are treated as read-only by convention.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final, Iterable, Literal, Mapping, Union

from indexers.filters import Filter

SearchMode = Literal["text", "vector", "hybrid"]


class AllGroups:
    """The type of ``ALL_GROUPS``: the caller may see every chunk (security trimming off).

    A singleton (copies and pickles stay the same object; test with ``groups is ALL_GROUPS``). It
    is neither a collection nor a truth value, so it can never be mistaken for "no groups":
    ``bool(ALL_GROUPS)``, ``len`` and iteration raise ``TypeError``.
    """

    _instance: "AllGroups | None" = None

    def __new__(cls) -> "AllGroups":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_GROUPS"

    def __reduce__(self) -> str:
        return "ALL_GROUPS"

    def __copy__(self) -> "AllGroups":
        return self

    def __deepcopy__(self, _memo: Any) -> "AllGroups":
        return self

    def __bool__(self) -> bool:
        raise TypeError("ALL_GROUPS has no truth value; test it with `groups is ALL_GROUPS`")


#: The caller may see every chunk: security trimming off. The one way to see everything; pass it
#: explicitly (``groups=ALL_GROUPS``, ``--all-groups`` on the CLI). Never the default.
ALL_GROUPS: Final = AllGroups()

#: The groups a caller searches with: its group names (``()``: public chunks only), or ``ALL_GROUPS``.
Groups = Union[tuple[str, ...], AllGroups]

_EXPECTED = ("a collection of non-empty group names such as ('finance',), () for public chunks only, "
             "or ALL_GROUPS to see everything")


def check_groups(value: Any, *, what: str = "groups") -> Groups:
    """``value`` as a caller's groups: a tuple of non-empty names (de-duplicated, order kept) or ``ALL_GROUPS``.

    The one validator for every place where a caller's groups enter (``SearchRequest``,
    ``get_chunks``, the retriever, the OYD facade, principals, the CLI, eval). Anything but a
    collection of non-empty strings is a ``TypeError`` saying what was given and what is expected:
    ``None`` (it used to mean "trusted"), a bare ``str`` (``"finance"`` is never split into
    characters), ``bytes``, a number, a mapping, or a collection holding a non-string or an
    empty / blank name. ``what`` names the value in the message (e.g. ``"Principal.groups"``).
    """
    if value is ALL_GROUPS:
        return ALL_GROUPS
    if isinstance(value, tuple) and all(type(g) is str and g.strip() for g in value):  # the hot path
        return value if len(set(value)) == len(value) else tuple(dict.fromkeys(value))
    if value is None:
        raise TypeError(f"{what} is None; expected {_EXPECTED} (None no longer means a trusted caller)")
    if isinstance(value, str):
        hint = f" (write ({value.strip()!r},) for one group)" if value.strip() else ""
        raise TypeError(f"{what} is the string {value!r}, which is not split into names{hint}; expected {_EXPECTED}")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} is {type(value).__name__} {bytes(value)[:40]!r}; expected {_EXPECTED}")
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{what} is {_describe(value)}; expected {_EXPECTED}")
    names = tuple(value)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"{what}[{i}] is {_describe(name)}; expected {_EXPECTED}")
        if not name.strip():
            raise TypeError(f"{what}[{i}] is an empty name {name!r}; expected {_EXPECTED}")
    return tuple(dict.fromkeys(names))


def narrow_groups(groups: Groups, to: Iterable[str] | None) -> Groups:
    """The caller's ``groups`` narrowed to the names ``to`` (None: not narrowed): never wider than either.

    ``ALL_GROUPS`` narrowed to ``("a", "b")`` is ``("a", "b")``; a tuple keeps only its names that are
    in ``to`` (so a public-only caller stays public-only). What a request asks for (On Your Data's
    ``group_ids`` filter) can thus only take away from what its principal may see.
    """
    groups = check_groups(groups)
    if to is None:
        return groups
    names = check_groups(tuple(to), what="the narrowing groups")
    if groups is ALL_GROUPS:
        return names
    allowed = set(names)
    return tuple(g for g in groups if g in allowed)


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float)):
        return f"the {type(value).__name__} {value!r}"
    if value is ALL_GROUPS:
        return "ALL_GROUPS (only allowed as the whole value)"
    return f"a {type(value).__name__}"


def chunk_id_for(source_id: str, chunk_index: int, content: str, *, scope: str = "") -> str:
    """Deterministic chunk id derived from the source scope and id, the position and the content.

    Never from a run counter: re-ingesting the same document yields the same ids; the same file
    in two scopes gets two ids. ``scope=""`` (no scope) gives the ids of indexes built before scopes.
    The result is URL- and Azure-AI-Search-key-safe (hex only).
    """
    h = hashlib.sha256()
    if scope:
        h.update(scope.encode("utf-8"))
        h.update(b"\x01")
    h.update(source_id.encode("utf-8"))
    h.update(b"\x00")
    h.update(str(chunk_index).encode("ascii"))
    h.update(b"\x00")
    h.update(content.encode("utf-8"))
    return h.hexdigest()[:32]


#: Reserved ``Chunk.metadata`` key: ``[[offset_in_content, page], ...]`` where a chunk spans several
#: pages (each entry is where a page starts in ``content``). Stored with the metadata by every backend.
PAGE_OFFSETS_KEY = "_page_offsets"


def source_key(source_id: str) -> str:
    """A key-safe, deterministic rendering of a source id (for backends with restricted key alphabets)."""
    return hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, ready to be embedded and indexed.

    ``scope`` names the source scope the document belongs to (a folder's resolved path, a Blob
    ``account/container/prefix``, or a name given with ``--scope``); ``(scope, source_id)`` names a
    document uniquely. ``source_version`` is the stored version of the source the chunk was cut from
    (content version plus pipeline fingerprint, see ``pipelines.sync``); ``source_chunks`` is how
    many chunks that source version has in total. Together they let an index tell a completely
    written source from one cut short by a crash (see ``SourceRecord``). ``source_stat`` is the
    source's change token of that version (``SourceItem.stat``), stored in the index's manifest.
    """

    id: str
    source_id: str
    content: str
    chunk_index: int
    title: str = ""
    url: str = ""
    filepath: str = ""
    page_start: int | None = None
    page_end: int | None = None
    char_start: int = 0
    char_end: int = 0
    section: str = ""
    groups: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source_version: str = ""
    source_chunks: int = 0
    scope: str = ""
    source_stat: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("Chunk.id must not be empty")
        if self.chunk_index < 0:
            raise ValueError("Chunk.chunk_index must be >= 0")
        if self.page_start is not None and self.page_end is not None and self.page_end < self.page_start:
            raise ValueError("Chunk.page_end must be >= page_start")
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups))

    def page_at(self, offset: int) -> int | None:
        """The page holding character ``offset`` of ``content`` (``page_start`` when the chunk has one page)."""
        page = self.page_start
        for start, p in self.metadata.get(PAGE_OFFSETS_KEY, ()) or ():
            if start > offset:
                break
            page = int(p)
        return page


@dataclass(frozen=True)
class IndexStats:
    """What a SearchIndex holds (``SearchIndex.stats()``); backends add fields of their own."""

    model_id: str
    dimensions: int
    chunks: int
    sources: int


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """What an index knows about one document of one scope: its version and how many chunks it holds.

    ``complete`` is False when the stored chunks do not add up to one whole version of the
    source (a run was killed mid-way): the next run must re-ingest it. ``scope`` is the source
    scope (``""``: stored before scopes existed); ``groups`` the ACL groups of its chunks;
    ``ingested_at`` when it was last written (ISO 8601 UTC, ``""`` when the backend does not know);
    ``stat`` the change token the source listed it with (``SourceItem.stat``, ``""``: unknown), which
    lets the source skip re-reading a document whose token has not changed.
    """

    source_id: str
    version: str
    chunk_count: int
    complete: bool = True
    scope: str = ""
    groups: tuple[str, ...] = ()
    ingested_at: str = ""
    stat: str = ""


@dataclass(frozen=True)
class ScopeRecord:
    """Where the documents of one scope were ingested from, and with which settings: what ``ondata index
    rebuild`` re-reads (only those roots) to build a new index.

    ``kind``: ``folder`` (``root`` the resolved absolute path of the folder, or of the file for a
    single-file ingest) or ``blob`` (``root`` the container, ``prefix`` the blob prefix, ``account``
    the storage account name; never a credential). ``include`` / ``exclude`` / ``follow_symlinks`` /
    ``cleanup`` as the run was given them; ``chunking`` the chunking settings (a JSON object) and
    ``embedding`` ``<model id>/<dimensions>`` of the last run; ``ingested_at`` when it was recorded.
    A scope can hold several records (single files ingested one by one): they are keyed by
    (``scope``, ``kind``, ``root``, ``prefix``), and the latest run of a key replaces its record.
    """

    scope: str
    kind: Literal["folder", "blob"]
    root: str
    prefix: str = ""
    account: str = ""
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    cleanup: str = "scoped"
    chunking: str = "{}"
    embedding: str = ""
    ingested_at: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("folder", "blob"):
            raise ValueError(f"ScopeRecord.kind must be 'folder' or 'blob', not {self.kind!r}")
        if not self.root:
            raise ValueError("ScopeRecord.root must not be empty")
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.scope, self.kind, self.root, self.prefix)

    def where(self) -> str:
        """The source as a user names it: the folder (or file), or ``az://container/prefix``."""
        if self.kind == "folder":
            return self.root
        return f"az://{self.root}/{self.prefix}" if self.prefix else f"az://{self.root}"  # the prefix exactly as given

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["include"], d["exclude"] = list(self.include), list(self.exclude)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScopeRecord":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SearchRequest:
    """One search against a SearchIndex.

    - ``text``: the keyword query (modes ``text`` and ``hybrid``).
    - ``vector``: the query embedding (modes ``vector`` and ``hybrid``), a sequence of floats.
    - ``filter``: a ``Filter`` over chunk fields (translated to SQL or OData by the backend).
    - ``groups``: the caller's groups (validated by ``check_groups``). A tuple restricts results to
      chunks sharing at least one group with it, plus chunks without groups when
      ``public_when_no_groups`` is True; the default ``()`` sees public chunks only (deny by
      default). ``ALL_GROUPS`` turns security trimming off: the one explicit way to see everything.
    - ``top``: how many hits to return; ``k_candidates``: how many each arm of a hybrid search
      contributes before fusion (defaults to max(50, top)).
    """

    text: str | None = None
    vector: tuple[float, ...] | None = None
    mode: SearchMode = "hybrid"
    top: int = 5
    filter: Filter | None = None
    groups: Groups = ()
    public_when_no_groups: bool = True
    k_candidates: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("text", "vector", "hybrid"):
            raise ValueError(f"unknown search mode {self.mode!r}; expected text, vector or hybrid")
        if self.top < 1:
            raise ValueError("top must be >= 1")
        if self.mode in ("text", "hybrid") and not (self.text and self.text.strip()):
            raise ValueError(f"mode {self.mode!r} needs a non-empty text query")
        if self.mode in ("vector", "hybrid") and self.vector is None:
            raise ValueError(f"mode {self.mode!r} needs a query vector")
        if self.vector is not None and not isinstance(self.vector, tuple):
            object.__setattr__(self, "vector", tuple(float(x) for x in self.vector))
        object.__setattr__(self, "groups", check_groups(self.groups, what="SearchRequest.groups"))

    @property
    def candidates(self) -> int:
        return self.k_candidates if self.k_candidates is not None else max(50, self.top)


@dataclass(frozen=True)
class SearchHit:
    """A chunk found by a search, with its fused score and, where known, each arm's score and rank."""

    chunk: Chunk
    score: float
    text_score: float | None = None
    vector_score: float | None = None
    text_rank: int | None = None
    vector_rank: int | None = None
