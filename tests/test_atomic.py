"""indexers/atomic.py: the one write-temp-fsync-rename of the local index files."""

from __future__ import annotations

import os

import pytest

from indexers import atomic
from indexers.atomic import AtomicFile


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_commit_replaces_the_file_in_one_step(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    before = os.stat(target).st_ino
    with AtomicFile(target) as fh:
        fh.write(b"new content")
        fh.seek(0)
        fh.write(b"NEW")
        assert target.read_bytes() == b"old"  # nothing visible until the commit
    assert target.read_bytes() == b"NEW content"
    assert os.stat(target).st_ino != before  # a new inode: a reader mapping the old one keeps it
    assert _leftovers(tmp_path) == []


def test_an_exception_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with AtomicFile(target) as fh:
            fh.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_failed_rename_removes_the_temporary_and_raises(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    (target / "inside").write_text("x")  # os.replace of a file over a non-empty folder fails
    with pytest.raises(OSError):
        with AtomicFile(target) as fh:
            fh.write(b"x")
    assert target.is_dir() and _leftovers(tmp_path) == []


def test_sync_dir_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = atomic.fsync_dir
    monkeypatch.setattr(atomic, "fsync_dir", lambda p: (synced.append(((tmp_path / "p").exists(), p)), real(p)))
    with AtomicFile(tmp_path / "p", sync_dir=True) as fh:
        fh.write(b"x")
    assert synced == [(True, tmp_path)]
    with AtomicFile(tmp_path / "q") as fh:
        fh.write(b"x")
    assert len(synced) == 1  # only when asked


def test_the_temporary_name_is_per_process_and_thread(tmp_path):
    import threading

    names = set()
    both = threading.Barrier(2)  # both threads alive at once: their idents differ

    def one():
        both.wait()
        names.add(atomic.tmp_path(tmp_path / "f").name)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names.add(atomic.tmp_path(tmp_path / "f").name)
    assert all(n.startswith(f"f.tmp-{os.getpid()}-") for n in names)
    assert len(names) == 3
