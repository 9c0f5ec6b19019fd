"""`ondata chat` driven as a user drives it: through a pipe and through a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal import read_until

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "COLUMNS": "160", "TERM": "dumb", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    idx = tmp_path_factory.mktemp("chat") / "idx"
    out = subprocess.run([sys.executable, "-m", "ondata.cli", "ingest", str(ROOT / "data" / "samples" / "docs"),
                          "--index", str(idx), "--embedder", "hashing"], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert out.returncode == 0, out.stderr
    return idx


def test_chat_through_a_pipe_keeps_history_and_runs_the_commands(index_dir):
    lines = [
        "Is delivery free for parts orders?",
        "/sources",
        "and what about small orders?",
        "/sources",
        "/top 2",
        "/top 99",
        "/filter filepath eq x",
        "/filter filepath eq 'employee_handbook.pdf'",
        "How many days a year can I work from another country?",
        "/group finance, hr",
        "/group",
        "/reset",
        "/sources",
        "/nope",
        "/quit",
        "never asked",
    ]
    out = subprocess.run([sys.executable, "-m", "ondata.cli", "chat", "--index", str(index_dir)], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "£500" in text and "Citations" in text  # an answer, then its citations
    assert "Sources for: Is delivery free for parts orders?" in text
    # the follow-up was searched with the conversation: its query carries the first question's words
    assert "Sources for: and what about small orders? delivery free parts" in text
    assert "at most 2 sources per answer" in text and "usage: /top N with N from 1 to 20" in text
    assert "error: expected a literal at position 12 of the filter" in text
    assert "filter: filepath eq 'employee_handbook.pdf'" in text
    assert "Employee Handbook" in text.split("filter: filepath eq 'employee_handbook.pdf'", 1)[1]
    assert "groups: finance, hr" in text and text.count("groups: finance, hr") == 2
    assert "conversation forgotten" in text and "no question asked yet" in text
    assert "unknown command /nope" in text and "never asked" not in text
    assert "Traceback" not in out.stderr


def _chat(index_dir, lines, *args):
    return subprocess.run([sys.executable, "-m", "ondata.cli", "chat", "--index", str(index_dir), *args],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)


def test_chat_is_public_only_until_groups_are_given(index_dir):
    question = "How much capital expenditure is planned for FY2025?"
    out = _chat(index_dir, ["/group", question, "/sources", "/group finance", question, "/sources",
                            "/group -", "/group", question, "/sources", "/quit"])
    assert out.returncode == 0, out.stderr
    # each /group line prints "groups: ...", so the output splits into what each caller saw
    _, public, member, empty, cleared = out.stdout.split("groups: ")
    assert public.startswith("none (public chunks only)") and member.startswith("finance")
    assert cleared.startswith("none (public chunks only)") and "Sources for:" not in empty
    assert all(part.count("Sources for:") == 1 for part in (public, member, cleared))
    assert "FY2025 Budget Summary" in member  # the member's answer, citations and sources
    assert "FY2025 Budget Summary" not in public and "FY2025 Budget Summary" not in cleared
    assert "--all-groups" not in out.stderr

    trusted = _chat(index_dir, ["/group", question, "/sources", "/quit"], "--all-groups")
    assert trusted.returncode == 0, trusted.stderr
    assert "groups: all (--all-groups: no security trimming)" in trusted.stdout
    assert "FY2025 Budget Summary" in trusted.stdout.split("Sources for:")[1]
    assert trusted.stderr.count("warning: --all-groups") == 1


def test_chat_in_a_pseudo_terminal_answers_then_leaves_on_ctrl_d(index_dir):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ondata.cli", "chat", "--index", str(index_dir)], stdin=slave, stdout=slave,
                            stderr=slave, cwd=ROOT, env=ENV, close_fds=True)
    os.close(slave)
    try:
        assert b"/help for commands" in read_until(master, b"you> ")
        os.write(master, b"What does a replacement 48V battery pack for the Cargo K2 cost?\n")
        answer = read_until(master, b"you> ")
        assert b"529" in answer and b"Citations" in answer
        os.write(master, b"/help\n")
        assert b"/sources" in read_until(master, b"you> ")
        os.write(master, b"\x04")  # Ctrl-D at the prompt
        proc.wait(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
