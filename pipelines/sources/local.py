"""Local folder source: every non-hidden file under a root folder, with optional JSON sidecars, read safely.

- ``id``: the file's path relative to the root, with ``/`` separators (stable across runs and
  machines); a file reached through a followed link keeps the link's path.
- ``scope`` (every item's): the name given (``scope=``, ``--scope``), else the folder's resolved
  absolute path; for a single file, its resolved parent folder, so ingesting one file of a folder
  updates that folder's document of the same id.
- ``version``: ``sha256:<hex>`` of the file's bytes, plus ``+meta:<hash>`` of its sidecar when it
  has one, so editing either re-ingests the file (and ``pipelines.sync`` can tell which changed).
- ``stat`` (the change token): ``size:mtime_ns:ctime_ns:inode:device`` of the file, ``+`` the same of
  its sidecar when it has one, ``@<when it was taken, ns>``. ``list_items(known=...)`` (the index's
  records of this scope that nothing but their content can make stale, a
  ``pipelines.records.KnownRecords``, see ``pipelines.engine.list_and_plan``) works as git's index
  does: when the whole token (file and sidecar, both from the folder's one ``scandir`` listing's
  ``lstat``) equals the stored one (``known.tokens``), nothing is opened and no item is built: the
  file's id is yielded in a ``pipelines.records.UnchangedIds`` with the others of its folder (a
  followed link is yielded as the stored record's item instead); when only the sidecar's part changed, the
  file is not hashed (its stored hash is reused) and the sidecar is read. Racy files (git's "racy
  git"): a token taken less than ``RACY_NS`` (1 s) after the file's or the sidecar's mtime or ctime
  is never trusted, because a second write within the filesystem's timestamp granularity may
  leave size and times as they were; the next run reads them and stores a fresh token.
- Sidecar ``<file>.meta.json`` (optional): a JSON object ``{"title": "...", "url": "...",
  "groups": ["..."], <any other key>: ...}``; ``title``/``url`` (strings) and ``groups`` (a list of
  non-empty strings, ``pipelines.sources.acl``) fill the item, other keys become metadata.
  Sidecars are not documents. A sidecar that is invalid, unreadable, a folder or a link not
  followed fails its document: it is never ingested without its ACL.
- ``include`` / ``exclude``: glob patterns matched against the relative path and the file name.

Per-item isolation: ``list_items`` raises only when the root cannot be listed at all (missing,
unreadable, on a virtual filesystem); every problem with one entry is yielded as an
``ItemProblem`` for that entry and the listing goes on:

=========================================================  ========  ===================
entry                                                      status    error
=========================================================  ========  ===================
invalid sidecar (JSON, types, ``groups``), sidecar folder  failed    InvalidMetadataError
unreadable, permission denied, vanished while listing      failed    SourceError
name that is not valid UTF-8                               failed    SourceError
a folder that cannot be opened (id ``folder/``)            failed    SourceError
over ``max_bytes``                                         failed    DocumentTooLargeError
a type no parser handles                                   skipped   UnsupportedFormatError
a symbolic link not followed (or out of the root, a loop)  skipped   SymlinkError
FIFO, socket, device, anything on /proc, /sys, /dev        skipped   SpecialFileError
=========================================================  ========  ===================

A ``failed`` problem whose id ends with ``/`` stands for a folder: every stored document under it
counts as listed (``pipelines.sync``), so a folder that cannot be read never has its documents
deleted as gone. A ``skipped`` entry is not part of the source: a stored document with its id is
deleted (e.g. a link that an older version followed).

Safe reading (DESIGN.md 10): the root is what the user named and may itself be a link (it is
resolved once). Inside it, symbolic links are not followed unless ``follow_symlinks=True``, and
then only when they resolve inside the root (never out of it, never round a loop). Only regular
files are opened: the type is checked with ``lstat`` before, and with ``fstat`` on the opened
descriptor after. Every open walks the path from a descriptor of the root one component at a
time with ``O_NOFOLLOW | O_NONBLOCK`` (``..`` refused), so a file or folder swapped for a link or a
FIFO between listing and ``open()`` is refused, never followed, and never blocks. POSIX only.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import operator
import os
import stat
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

from indexers.errors import OndataError
from pipelines.errors import (
    DocumentTooLargeError,
    InvalidMetadataError,
    SourceError,
    SpecialFileError,
    SymlinkError,
)
from indexers.records import SourceRecord
from pipelines.parsing import guess_content_type, listed_supported, listed_type, unsupported_format
from pipelines.records import ItemProblem, KnownRecords, SourceItem, UnchangedIds
from pipelines.sources.acl import groups_from_list


SIDECAR_SUFFIX = ".meta.json"
MAX_SIDECAR_BYTES = 1024 * 1024
_VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_SAFE_OPEN = os.open in os.supports_dir_fd and os.scandir in os.supports_fd and bool(_NOFOLLOW)
_NAME = operator.attrgetter("name")
_S_IFMT, _S_IFREG = stat.S_IFMT(0xFFFFFFFF), stat.S_IFREG  # ``stat.S_ISREG(mode)`` as ``mode & _S_IFMT == _S_IFREG``
#: A change token taken within this long after the file's mtime/ctime is not trusted (racy git).
RACY_NS = 1_000_000_000


def stat_token(st: os.stat_result) -> str:
    """The file part of a change token: what changes when the file's content may have changed."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def _holds(stored: str, token: str, newest: int, *, whole: bool = True) -> bool:
    """Whether the stored change token ``stored`` (``<token>@<taken>``) is ``token`` (``whole``: the file's
    and the sidecar's parts; else the file's part only) and was not racy when taken: at least ``RACY_NS``
    after ``newest``, the latest mtime or ctime of the file (and sidecar) listed."""
    head, _, taken = stored.rpartition("@")
    if (head if whole else head.partition("+")[0]) != token or not taken.isdigit():
        return False
    return int(taken) - newest >= RACY_NS


def _newest(stats: Sequence[os.stat_result]) -> int:
    return max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats)


def _content_version(record: SourceRecord, *, sidecar: bool | None = None) -> str | None:
    """The content version stored in ``record`` (hash and any ``+meta:`` part) when it is a ``sha256:``
    hash and, unless ``sidecar`` is None, has a ``+meta:`` part exactly when the file has a sidecar."""
    version = record.version.partition("|")[0]
    if not version.startswith("sha256:") or (sidecar is not None and ("+meta:" in version) != sidecar):
        return None
    return version


def stored_content_version(token: str, st: os.stat_result, record: SourceRecord | None) -> str | None:
    """The content hash stored for a file listed with ``st`` when the file part of its stored token
    ``record.stat`` is unchanged and was not racy when taken; None when the file must be hashed."""
    if record is None or not record.stat or not _holds(record.stat, token, _newest((st,)), whole=False):
        return None
    version = _content_version(record)
    return version.partition("+meta:")[0] if version is not None else None


def stored_version(token: str, stats: Sequence[os.stat_result], record: SourceRecord) -> str | None:
    """The whole content version (hash and ``+meta:`` part) stored for a file and its sidecar listed with
    ``stats`` (the file's, then the sidecar's) when the whole stored token (file and sidecar) is
    ``token`` and was not racy when taken; None when the file or its sidecar must be read."""
    if not _holds(record.stat, token, _newest(stats)):
        return None
    return _content_version(record, sidecar=len(stats) > 1)


@lru_cache(maxsize=1)
def _virtual_devices() -> frozenset[int]:
    """Device ids of the virtual filesystems whose files are never read (/proc, /sys, /dev when mounted)."""
    devices = set()
    for path in _VIRTUAL_ROOTS:
        try:
            devices.add(os.stat(path).st_dev)
        except OSError:
            pass
    try:
        devices.discard(os.stat("/").st_dev)  # /dev as a plain folder of the root filesystem: not a mount
    except OSError:
        pass
    return frozenset(devices)


def _on_virtual_fs(real: str) -> bool:
    return any(real == root or real.startswith(root + "/") for root in _VIRTUAL_ROOTS)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


class LocalFolderSource:
    """DocumentSource over a folder (recursively, files in sorted order) or a single file. See the module docstring."""

    #: files unchanged by their token against ``known.tokens`` are yielded as ``UnchangedIds`` (``list_and_plan``)
    lists_unchanged_ids = True

    def __init__(
        self,
        root: str | Path,
        *,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        max_bytes: int | None = None,
        follow_symlinks: bool = False,
        scope: str | None = None,
    ) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if scope is not None and not scope.strip():
            raise ValueError("scope must not be empty or blank (leave it out for the folder's path)")
        self.root = Path(root)
        self._scope = scope
        self.include = tuple(include) or ("*",)
        self.exclude = tuple(exclude)
        self.max_bytes = max_bytes
        self.follow_symlinks = follow_symlinks
        self._known = KnownRecords.of(None)
        self._listing_scope: str | None = None
        self._match_all = self.include == ("*",) and not self.exclude

    def __repr__(self) -> str:
        return f"LocalFolderSource({str(self.root)!r})"

    @property
    def scope(self) -> str:
        """The source scope of every item: the name given, else the resolved folder (a file's parent folder)."""
        if self._scope is not None:
            return self._scope
        real = os.path.realpath(self.root)
        return real if os.path.isdir(real) or not os.path.lexists(real) else os.path.dirname(real)

    @property
    def single_file(self) -> bool:
        """True when the root names one file rather than a folder (the CLI's cleanup default is then ``none``)."""
        return os.path.lexists(self.root) and not os.path.isdir(os.path.realpath(self.root))

    # ------------------------------------------------------------------ the root

    def _base(self) -> tuple[str, str | None]:
        """(the resolved folder every path is relative to, the single file's real name or None)."""
        if not _SAFE_OPEN:
            raise SourceError("reading a folder safely needs a POSIX system (openat with O_NOFOLLOW)")
        if not os.path.lexists(self.root):
            raise SourceError(f"folder {self.root} does not exist")
        real = os.path.realpath(self.root)
        if not os.path.exists(real):
            raise SourceError(f"{self.root} is a link to {real}, which does not exist")
        if _on_virtual_fs(real):
            raise SourceError(f"{self.root} is on a virtual filesystem ({real}); its files are never read")
        if os.path.isdir(real):
            return real, None
        return os.path.dirname(real), os.path.basename(real)

    def _wanted(self, rel: str) -> bool:
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts) or rel.endswith(SIDECAR_SUFFIX):
            return False
        if self._match_all:
            return True
        name = parts[-1]
        if not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in self.include):
            return False
        return not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in self.exclude)

    # ------------------------------------------------------------------ listing

    def list_items(self, known: Mapping[str, SourceRecord] | None = None) -> Iterator[SourceItem | ItemProblem]:
        """The folder's items (see the module docstring); ``known``: the stored records of this scope by
        source id, whose change tokens let unchanged files skip hashing."""
        self._known = KnownRecords.of(known)
        self._listing_scope = self.scope  # resolved once per listing, not per file
        base, single = self._base()
        try:
            base_fd = os.open(base, _READ | _DIRECTORY)
        except OSError as exc:
            raise SourceError(f"cannot open folder {self.root}: {exc.strerror or exc}") from exc
        try:
            if single is not None:
                mode = os.stat(os.path.join(base, single)).st_mode  # resolved: the file the user named
                if not stat.S_ISREG(mode):
                    yield self._problem(self.root.name, SpecialFileError(
                        f"{self.root} is {_kind(mode)}, not a regular file; it is never read",
                        doc_id=self.root.name), "skipped")
                    return
                with os.scandir(base_fd) as it:
                    sidecar = next((e for e in it if e.name == single + SIDECAR_SUFFIX), None)
                yield self._file_entry(base, base_fd, (base_fd, [single]), (base_fd, []), self.root.name, sidecar)
                return
            ancestors = frozenset({_identity(os.fstat(base_fd))})
            yield from self._walk(base, base_fd, base_fd, [], "", ancestors)
        finally:
            os.close(base_fd)

    def _walk(self, base: str, base_fd: int, dir_fd: int, dir_parts: list[str], prefix: str,
              ancestors: frozenset[tuple[int, int]]) -> Iterator[SourceItem | ItemProblem]:
        """The entries of the folder open as ``dir_fd`` (``dir_parts`` below ``base``, listed as ``prefix``)."""
        try:
            with os.scandir(dir_fd) as it:
                entries = sorted(it, key=_NAME)
        except OSError as exc:
            if not prefix:
                raise SourceError(f"cannot list folder {self.root}: {exc.strerror or exc}") from exc
            yield self._problem(prefix, _os_error(exc, prefix, "list"), "failed")
            return
        sidecars: dict[str, Any] = {}
        files: list[Any] = []  # in sorted order; hidden names and sidecars are not documents
        for entry in entries:
            name = entry.name
            if name.endswith(SIDECAR_SUFFIX):
                sidecars[name] = entry
            elif not name.startswith("."):
                files.append(entry)
        tokens, virtual, match_all = self._known.tokens, _virtual_devices(), self._match_all
        unchanged: list[str] = []  # listed unchanged by their stored token: yielded as ids, no item built
        for entry in files:
            name = entry.name
            rel = prefix + name
            if not rel.isascii() and not _utf8(rel):
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                err = SourceError(f"the name {shown!r} is not valid UTF-8; rename it", doc_id=shown)
                yield self._problem(shown, err, "failed")
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield self._problem(rel, _os_error(exc, rel, "read"), "failed")
                continue
            sidecar = sidecars.get(name + SIDECAR_SUFFIX)
            stored = tokens.get(rel) if tokens else None
            if stored and st.st_mode & _S_IFMT == _S_IFREG and st.st_dev not in virtual \
                    and (match_all or self._wanted(rel)):  # the no-change path: one lstat, nothing opened
                if self._unchanged(stored, name, st, sidecar):
                    unchanged.append(rel)
                    continue
                stored = None  # tried: read it below
            parts = dir_parts + [name]  # below base
            target = (dir_fd, [name])  # what to open: below an open folder (one openat, no re-walk)
            if stat.S_ISLNK(st.st_mode):
                if not self.follow_symlinks:
                    if self._wanted(rel):
                        yield self._problem(rel, SymlinkError(
                            f"{rel} is a symbolic link; links are not followed (--follow-symlinks follows links "
                            "that stay inside the folder)", doc_id=rel), "skipped")
                    continue
                try:
                    parts = self._inside(base, parts, rel)
                    target = (base_fd, parts)
                    st = os.lstat(os.path.join(base, *parts))  # the resolved path holds no link
                except SymlinkError as exc:
                    if self._wanted(rel):
                        yield self._problem(rel, exc, "skipped")
                    continue
                except OSError as exc:
                    if self._wanted(rel):
                        yield self._problem(rel, _os_error(exc, rel, "read"), "failed")
                    continue
            if stat.S_ISDIR(st.st_mode):
                if _identity(st) in ancestors:
                    yield self._problem(rel, SymlinkError(
                        f"{rel} is a link back to a folder it is in (a loop); not followed", doc_id=rel), "skipped")
                    continue
                if unchanged:  # before the subfolder's own: the list stays as small as one folder
                    yield UnchangedIds(unchanged)
                    unchanged = []
                yield from self._folder(base, base_fd, target, parts, rel + "/", st, ancestors)
            elif match_all or self._wanted(rel):  # hidden names and sidecars are skipped above
                special = None if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)
                if special is None and st.st_dev in virtual:
                    special = "on a virtual filesystem"
                if special is not None:
                    yield self._problem(rel, SpecialFileError(f"{rel} is {special}, not a regular file; it is never read",
                                                              doc_id=rel), "skipped")
                    continue
                yield self._file_entry(base, base_fd, target, (dir_fd, dir_parts), rel, sidecar,
                                       st if stored is not None else None)
        if unchanged:
            yield UnchangedIds(unchanged)

    def _unchanged(self, stored: str, name: str, listed: os.stat_result, sidecar: Any) -> bool:
        """Whether the regular file ``name`` (its ``lstat`` from the listing) and its sidecar (their DirEntry's
        ``lstat``) are as the stored change token ``stored`` says and that token was not racy: nothing opened."""
        if self.max_bytes is not None and listed.st_size > self.max_bytes:
            return False  # read it (and fail it as too large)
        if not listed_supported(name):
            return False  # read it, and skip it as unsupported
        if sidecar is None:
            return _holds(stored, stat_token(listed), max(listed.st_mtime_ns, listed.st_ctime_ns))
        try:
            side = sidecar.stat(follow_symlinks=False)
        except OSError:
            return False
        if side.st_mode & _S_IFMT != _S_IFREG:
            return False  # a link, a folder...: read it, and fail it as the module docstring says
        return _holds(stored, f"{stat_token(listed)}+{stat_token(side)}",
                      max(listed.st_mtime_ns, listed.st_ctime_ns, side.st_mtime_ns, side.st_ctime_ns))

    def _folder(self, base: str, base_fd: int, target: tuple[int, list[str]], parts: list[str], prefix: str,
                listed: os.stat_result, ancestors: frozenset[tuple[int, int]]) -> Iterator[SourceItem | ItemProblem]:
        if listed.st_dev in _virtual_devices():
            rel = prefix.rstrip("/")
            yield self._problem(rel, SpecialFileError(
                f"{rel} is on a virtual filesystem; its files are never read", doc_id=rel), "skipped")
            return
        try:
            fd = _open_under(*target, directory=True)
        except OSError as exc:
            yield self._problem(prefix, _os_error(exc, prefix, "open the folder"), "failed")
            return
        try:
            st = os.fstat(fd)
            if _identity(st) != _identity(listed):  # swapped since it was listed
                yield self._problem(prefix, SourceError(f"{prefix} changed while the folder was read",
                                                        doc_id=prefix), "failed")
                return
            yield from self._walk(base, base_fd, fd, parts, prefix, ancestors | {_identity(st)})
        finally:
            os.close(fd)

    def _inside(self, base: str, parts: list[str], rel: str) -> list[str]:
        """The components, below ``base``, of where ``parts`` (listed as ``rel``) lead; SymlinkError when
        that is out of ``base``, a loop or nowhere."""
        try:
            real = os.path.realpath(os.path.join(base, *parts), strict=True)
        except OSError as exc:
            why = "loops" if exc.errno == errno.ELOOP else "leads nowhere (a broken link)"
            raise SymlinkError(f"{rel} is a symbolic link that {why}; not followed", doc_id=rel) from exc
        if real == base:
            raise SymlinkError(f"{rel} is a link back to the folder itself (a loop); not followed", doc_id=rel)
        if os.path.commonpath([real, base]) != base:
            raise SymlinkError(f"{rel} is a symbolic link to {real}, outside the folder; never followed out of it",
                               doc_id=rel)
        return os.path.relpath(real, base).split(os.sep)

    def _problem(self, rel: str, error: OndataError, status: str) -> ItemProblem:
        """A listing problem (the engine logs and reports it: ``pipelines.engine.log_problem``)."""
        return ItemProblem(rel, rel.rstrip("/").rsplit("/", 1)[-1] or rel, error, status)  # type: ignore[arg-type]

    def _file_entry(self, base: str, base_fd: int, target: tuple[int, list[str]], here: tuple[int, list[str]],
                    rel: str, sidecar: Any, listed: os.stat_result | None = None) -> SourceItem | ItemProblem:
        """The item of the regular file at ``target`` (an open folder, the parts below it), listed as ``rel``
        in the folder ``here`` (its descriptor, its parts below ``base``), where its sidecar is; ``listed``:
        the resolved ``lstat`` of a followed link to a regular file, which may let it be reused unread (a file
        listed as itself was tried by ``_walk``)."""
        name = rel.rsplit("/", 1)[-1]
        content_type, supported = listed_type(name)
        if not supported:
            return self._problem(rel, unsupported_format(name, content_type, doc_id=rel), "skipped")
        record = self._known.get(rel)
        if record is not None and listed is not None:
            reused = self._reused(rel, name, listed, sidecar, record)
            if reused is not None:
                return reused
        try:
            return self._item(base, base_fd, target, here, rel, sidecar)
        except (SymlinkError, SpecialFileError) as exc:
            return self._problem(rel, exc, "skipped")
        except OndataError as exc:
            return self._problem(rel, exc, "failed")

    def _reused(self, rel: str, name: str, listed: os.stat_result, sidecar: Any,
                record: SourceRecord) -> SourceItem | None:
        """The stored record's item when the followed link ``rel`` (the ``lstat`` of where it leads) and its
        sidecar are unchanged by their tokens (``_unchanged``; nothing opened); None when it must be read."""
        if not record.stat or not self._unchanged(record.stat, name, listed, sidecar):
            return None
        version = _content_version(record, sidecar=sidecar is not None)
        if version is None:
            return None
        return SourceItem.unchecked(id=rel, scope=self._listing_scope or self.scope, version=version, name=name,
                                    size=listed.st_size, content_type=listed_type(name)[0], filepath=rel,
                                    groups=tuple(record.groups), stat=record.stat)

    def _item(self, base: str, base_fd: int, target: tuple[int, list[str]], here: tuple[int, list[str]], rel: str,
              sidecar: Any) -> SourceItem:
        name = rel.rsplit("/", 1)[-1]
        fd = _open_file(*target, rel)
        with os.fdopen(fd, "rb") as fh:
            taken = time.time_ns()
            st = os.fstat(fh.fileno())
            size = st.st_size
            if self.max_bytes is not None and size > self.max_bytes:
                raise DocumentTooLargeError(f"{rel} is {size:,} bytes, over the limit of {self.max_bytes:,} bytes",
                                            doc_id=rel)
            token = stat_token(st)
            record = self._known.get(rel)
            version = stored_content_version(token, st, record)
            if version is None:
                h = hashlib.sha256()
                try:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                except OSError as exc:
                    raise _os_error(exc, rel, "read") from exc
                version = "sha256:" + h.hexdigest()
        meta: dict = {"title": "", "url": "", "groups": (), "metadata": {}}
        stats = [st]
        if sidecar is not None:
            raw, side_st = self._sidecar_bytes(base, base_fd, here, rel, sidecar)
            version += "+meta:" + hashlib.sha256(raw).hexdigest()[:16]
            meta = _sidecar_meta(raw, rel=rel, sidecar=sidecar.name)
            token += "+" + stat_token(side_st)
            stats.append(side_st)
        change_token = f"{token}@{taken}"
        if record is not None and record.stat and stored_version(token, stats, record) == version:
            change_token = record.stat  # the same file and sidecar as stored, trusted: keep the stored token
        return SourceItem(
            id=rel,
            scope=self._listing_scope or self.scope,
            version=version,
            name=name,
            size=size,
            content_type=guess_content_type(name),
            title=meta["title"],
            url=meta["url"],
            filepath=rel,
            groups=meta["groups"],
            metadata=meta["metadata"],
            stat=change_token,
        )

    def _sidecar_bytes(self, base: str, base_fd: int, here: tuple[int, list[str]], rel: str,
                       entry: Any) -> tuple[bytes, os.stat_result]:
        """The sidecar's bytes and its ``fstat``, read as safely as a document; every problem fails the document."""
        side_rel = rel + SIDECAR_SUFFIX
        target = (here[0], [entry.name])
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            raise _os_error(exc, side_rel, "read", doc_id=rel) from exc
        if stat.S_ISLNK(mode):
            if not self.follow_symlinks:
                raise InvalidMetadataError(f"sidecar {entry.name} is a symbolic link; links are not followed, "
                                           "so the document is not ingested without its metadata", doc_id=rel)
            try:
                target = (base_fd, self._inside(base, here[1] + [entry.name], side_rel))
            except SymlinkError as exc:
                raise InvalidMetadataError(f"sidecar {exc.message}", doc_id=rel) from exc
        elif stat.S_ISDIR(mode):
            raise InvalidMetadataError(f"sidecar {entry.name} is a folder, not a JSON file", doc_id=rel)
        elif not stat.S_ISREG(mode):
            raise InvalidMetadataError(f"sidecar {entry.name} is {_kind(mode)}, not a JSON file", doc_id=rel)
        try:
            fd = _open_file(*target, side_rel)
        except (SymlinkError, SpecialFileError) as exc:
            raise InvalidMetadataError(f"sidecar: {exc.message}", doc_id=rel) from exc
        except SourceError as exc:
            raise SourceError(f"sidecar: {exc.message}", doc_id=rel) from exc
        with os.fdopen(fd, "rb") as fh:
            try:
                side_st = os.fstat(fh.fileno())
                raw = fh.read(MAX_SIDECAR_BYTES + 1)
            except OSError as exc:
                raise _os_error(exc, side_rel, "read", doc_id=rel) from exc
        if len(raw) > MAX_SIDECAR_BYTES:
            raise InvalidMetadataError(f"sidecar {entry.name} is over {MAX_SIDECAR_BYTES:,} bytes", doc_id=rel)
        return raw, side_st

    # ------------------------------------------------------------------ reading

    def open(self, item: SourceItem) -> BinaryIO:
        """The item's bytes, re-checked now: a link, a special file or a path out of the root is refused."""
        base, single = self._base()
        if single is not None:
            if item.id != self.root.name:
                raise SourceError(f"{item.id} is not the file {self.root}", doc_id=item.id)
            parts = [single]
        elif self.follow_symlinks:
            parts = self._inside(base, _checked(item.id).split("/"), item.id)
        else:
            parts = _checked(item.id).split("/")
        base_fd = os.open(base, _READ | _DIRECTORY)
        try:
            fd = _open_file(base_fd, parts, item.id)
        finally:
            os.close(base_fd)
        return os.fdopen(fd, "rb")


# ---------------------------------------------------------------------- descriptors


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _checked(rel: str) -> str:
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts) or "\x00" in rel:
        raise SourceError(f"{rel!r} is not a path inside the folder", doc_id=rel or "?")
    return rel


def _open_under(base_fd: int, parts: list[str], *, directory: bool | None) -> int:
    """Open ``parts`` below ``base_fd`` one component at a time, never following a link (raises OSError)."""
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise OSError(errno.EINVAL, "not a path inside the folder")
    fd = base_fd
    try:
        for part in parts[:-1]:
            nxt = _open_at(part, _READ | _DIRECTORY | _NOFOLLOW, fd)
            if fd != base_fd:
                os.close(fd)
            fd = nxt
        last = _open_at(parts[-1], _READ | _NOFOLLOW | _NONBLOCK | (_DIRECTORY if directory else 0), fd)
    finally:
        if fd != base_fd:
            os.close(fd)
    return last


def _open_at(name: str, flags: int, dir_fd: int) -> int:
    """``os.open(name, flags, dir_fd=dir_fd)``; a link met under O_NOFOLLOW is always ELOOP (Linux may say ENOTDIR)."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.EMLINK):
            try:
                is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                is_link = False
            if is_link:
                raise OSError(errno.ELOOP, "a symbolic link, not followed", name) from exc
        raise


def _open_file(base_fd: int, parts: list[str], rel: str) -> int:
    """A blocking descriptor of the regular file at ``parts``; typed errors naming ``rel`` otherwise."""
    try:
        fd = _open_under(base_fd, parts, directory=False)
    except OSError as exc:
        raise _os_error(exc, rel, "open") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecialFileError(f"{rel} is {_kind(st.st_mode)}, not a regular file; it is never read", doc_id=rel)
        if st.st_dev in _virtual_devices():
            raise SpecialFileError(f"{rel} is on a virtual filesystem; it is never read", doc_id=rel)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _os_error(exc: OSError, rel: str, verb: str, *, doc_id: str | None = None) -> SourceError:
    """The typed error of an OSError on ``rel``."""
    doc = doc_id or rel
    if exc.errno == errno.ELOOP:
        return SymlinkError(f"{rel} is (or became) a symbolic link; not followed", doc_id=doc)
    if exc.errno == errno.ENOENT:
        return SourceError(f"{rel} vanished while the folder was read", doc_id=doc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SourceError(f"cannot {verb} {rel}: permission denied", doc_id=doc)
    if exc.errno == errno.ENOTDIR:
        return SourceError(f"cannot {verb} {rel}: a folder on its path is no longer a folder", doc_id=doc)
    return SourceError(f"cannot {verb} {rel}: {exc.strerror or exc}", doc_id=doc)


def _sidecar_meta(raw: bytes, *, rel: str, sidecar: str) -> dict[str, Any]:
    """title, url, groups and metadata of a sidecar's bytes; InvalidMetadataError naming the document."""
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise InvalidMetadataError(f"sidecar {sidecar} is not valid JSON: {exc}", doc_id=rel) from exc
    if not isinstance(meta, dict):
        raise InvalidMetadataError(f"sidecar {sidecar} must hold a JSON object, not {type(meta).__name__}",
                                   doc_id=rel)
    out: dict[str, Any] = {}
    for key in ("title", "url"):
        value = meta.pop(key, None)
        if value is not None and not isinstance(value, str):
            raise InvalidMetadataError(f"sidecar {sidecar}: {key} must be a string", doc_id=rel)
        out[key] = value or ""
    out["groups"] = groups_from_list(meta.pop("groups"), doc_id=rel, where=f"sidecar {sidecar}") if "groups" in meta else ()
    out["metadata"] = meta
    return out
