"""`ondata search` and `ondata ask` as a user runs them, on a hashing-embedder index of data/samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ondata.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    idx = tmp_path_factory.mktemp("cli") / "idx"
    out = _cli("ingest", str(ROOT / "data" / "samples" / "docs"), "--index", str(idx), "--embedder", "hashing")
    assert out.returncode == 0, out.stderr
    return idx


def test_search_json_finds_the_price_list(index_dir):
    # no --embedder: the CLI uses the model the index was built with
    out = _cli("search", "--index", str(index_dir), "--json", "--mode", "text", "battery pack 48V Cargo K2 price")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert hits and hits[0]["source_id"] == "fleet_parts_price_list_2024.pdf"
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))


RESTRICTED = {"fy2025_budget_summary.pdf", "customer_care_restructuring_2025.md"}  # sidecar groups


def _sources(index_dir, *args) -> set[str]:
    out = _cli("search", "--index", str(index_dir), "--json", "--top", "50", *args)
    assert out.returncode == 0, out.stderr
    return {h["source_id"] for h in json.loads(out.stdout)}


def test_search_table_and_group_trimming(index_dir):
    out = _cli("search", "--index", str(index_dir), "capital expenditure budget FY2025")
    assert out.returncode == 0 and "hits (hybrid)" in out.stdout
    query = "capital expenditure budget FY2025 customer care restructuring consultation"
    for mode in ("text", "vector", "hybrid"):
        public = _sources(index_dir, "--mode", mode, query)  # no --group: public-only
        assert public and not public & RESTRICTED, mode
        assert not _sources(index_dir, "--mode", mode, "--group", "nobody", query) & RESTRICTED
        assert _sources(index_dir, "--mode", mode, "--group", "finance", query) & RESTRICTED == {"fy2025_budget_summary.pdf"}
        assert _sources(index_dir, "--mode", mode, "--group", "hr", "--group", "finance", query) & RESTRICTED == RESTRICTED


def test_all_groups_sees_everything_and_warns_once_on_stderr(index_dir):
    out = _cli("search", "--index", str(index_dir), "--json", "--top", "50", "--all-groups",
               "capital expenditure budget FY2025 customer care restructuring consultation")
    assert out.returncode == 0, out.stderr
    assert {h["source_id"] for h in json.loads(out.stdout)} >= RESTRICTED
    warnings = [line for line in out.stderr.splitlines() if "--all-groups" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "security trimming is off" in warnings[0]
    both = _cli("search", "--index", str(index_dir), "--all-groups", "--group", "hr", "x")
    assert both.returncode == 2 and "either --group or --all-groups" in both.stderr
    empty = _cli("search", "--index", str(index_dir), "--group", "", "x")
    assert empty.returncode == 2 and "group name must not be empty" in empty.stderr


def test_ask_without_group_does_not_answer_from_a_restricted_document(index_dir):
    question = "How much capital expenditure is planned for FY2025?"  # the example
    out = _cli("ask", "--index", str(index_dir), "--json", question)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert "--all-groups" not in out.stderr
    assert not {d["filepath"] for d in answer["retrieved"]} & RESTRICTED
    assert "9.2" not in answer["answer"]
    member = json.loads(_cli("ask", "--index", str(index_dir), "--json", "--group", "finance", question).stdout)
    assert member["citations"] and member["citations"][0]["filepath"] == "fy2025_budget_summary.pdf"
    trusted = _cli("ask", "--index", str(index_dir), "--json", "--all-groups", question)
    assert json.loads(trusted.stdout)["citations"][0]["filepath"] == "fy2025_budget_summary.pdf"
    assert trusted.stderr.count("--all-groups") == 1


def test_ask_cites_and_abstains(index_dir):
    out = _cli("ask", "--index", str(index_dir), "--json", "Is delivery free for parts orders?")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["extractive"] and "[doc1]" in answer["answer"]
    assert answer["citations"][0]["filepath"] == "fleet_parts_price_list_2024.pdf"
    table = _cli("ask", "--index", str(index_dir), "Is delivery free for parts orders?")
    assert "Citations" in table.stdout and "£500" in table.stdout
    none = _cli("ask", "--index", str(index_dir), "--json", "What was Larkspur's net profit in 2023?")
    assert json.loads(none.stdout)["citations"] == []
    assert "not available" in json.loads(none.stdout)["answer"]


def test_errors_are_one_line(index_dir, tmp_path):
    bad_mode = _cli("search", "--index", str(index_dir), "--mode", "fuzzy", "x")
    assert bad_mode.returncode != 0 and "unknown search mode" in bad_mode.stderr and "Traceback" not in bad_mode.stderr
    missing = _cli("ask", "--index", str(tmp_path / "none"), "x")
    assert missing.returncode == 2 and "run `ondata ingest PATH` first" in missing.stderr


def test_filter_on_search_and_ask_uses_the_odata_subset(index_dir):
    where = "filepath eq 'employee_handbook.pdf' or search.in(source_id, 'it_security_guidelines.md')"
    out = _cli("search", "--index", str(index_dir), "--json", "--top", "20", "--filter", where, "leave days")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert hits and {h["source_id"] for h in hits} <= {"employee_handbook.pdf", "it_security_guidelines.md"}
    everything = json.loads(_cli("search", "--index", str(index_dir), "--json", "--top", "20", "leave days").stdout)
    assert {h["source_id"] for h in everything} - {"employee_handbook.pdf", "it_security_guidelines.md"}

    ask = _cli("ask", "--index", str(index_dir), "--json", "--filter", "not (filepath eq 'fleet_parts_price_list_2024.pdf')",
               "Is delivery free for parts orders?")
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert all(d["filepath"] != "fleet_parts_price_list_2024.pdf" for d in answer["retrieved"])
    assert isinstance(answer["abstained"], bool)

    bad = _cli("search", "--index", str(index_dir), "--filter", "page_start gt 3", "x")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
