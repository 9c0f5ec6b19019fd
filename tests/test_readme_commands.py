"""Every command the README shows runs as written, or at least parses as written.

The commands are extracted from the README's ```bash blocks and indented code blocks, and its
```python blocks. In a sandbox folder (``data/`` linked from the repo, ``runs/baseline`` and
``runs/new`` copied from tests/data/eval) with ``ONDATA_EMBEDDER=hashing`` (so no model loads):

- ``ondata`` commands that need no cloud and write only inside the sandbox run for real (in README
  order: ingest, dry run, index stats, search, ask, eval report/compare, doctor);
- the others (Azure, ``serve``, ``schedule``, ``eval run`` which loads two models, paths outside the
  sandbox) are parsed by the CLI itself: unknown commands, options or missing arguments fail;
- bench scripts are parsed by their own argparse parser with the README's arguments, then stopped;
- ``prefect`` commands are parsed by Prefect's CLI; ``make`` targets by ``make -n``;
- the Python API example runs against the sandbox index; the On Your Data client example runs
  against ``ondata serve`` started on a free port (its port is the only thing changed).

A README command that fits none of these rules fails the test, so new commands get a rule.
"""

from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from indexers import local_generations
from ondata.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EVAL_DATA = ROOT / "tests" / "data" / "eval"
ENV_ASSIGN = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def readme_blocks() -> list[tuple[str, str, int]]:
    """``(language, text, first line)`` of each code block: fenced (with its language) or indented (``shell``)."""
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            blocks.append((fence.group(1) or "text", "\n".join(lines[i + 1:j]), i + 2))
            i = j + 1
            continue
        if lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append(("shell", "\n".join(l[4:] for l in lines[i:j]).strip("\n"), i + 1))
            i = j
            continue
        i += 1
    return blocks


def shell_commands() -> list[tuple[int, dict[str, str], list[str]]]:
    """``(README line, environment assignments, argv)`` of every shell command, in README order."""
    out = []
    for lang, text, first in readme_blocks():
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        joined = re.sub(r"\\\n\s*", " ", text)
        for offset, line in enumerate(joined.splitlines()):
            tokens = shlex.split(line, comments=True)
            if not tokens:
                continue
            if tokens[-1] == "&":
                tokens = tokens[:-1]
            env = {}
            while tokens and ENV_ASSIGN.match(tokens[0]):
                key, _, value = tokens.pop(0).partition("=")
                env[key] = value
            if tokens[:2] == ["nice", "-n"]:  # a priority prefix changes nothing about the command
                tokens = tokens[3:]
            if tokens:
                out.append((first + offset, env, tokens))
    return out


def python_blocks() -> list[tuple[int, str]]:
    return [(first, text) for lang, text, first in readme_blocks() if lang == "python"]


# ------------------------------------------------------------------ parse-only checks
def parse_ondata(args: list[str]) -> None:
    """Parse ``ondata ARGS`` with the real CLI (commands, options, arguments) without running it."""
    cmd, name, ctx = typer.main.get_command(app), "ondata", None
    while hasattr(cmd, "resolve_command"):
        ctx = cmd.make_context(name, list(args), parent=ctx)
        name, cmd, args = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
    cmd.make_context(name, list(args), parent=ctx)


class _Parsed(Exception):
    pass


def parse_bench(script: str, args: list[str]) -> None:
    """Run the bench script until its argparse parser has parsed ``args``, then stop it."""
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **kw):
        real(self, *a, **kw)
        raise _Parsed

    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [script, *args]
    argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    except _Parsed:
        return
    finally:
        argparse.ArgumentParser.parse_args = real
        sys.argv, sys.path[:] = old_argv, old_path
    raise AssertionError(f"{script} finished without parsing arguments")


def parse_prefect(args: list[str]) -> None:
    from prefect.cli._app import _app

    command, *_ = _app.parse_args(args, exit_on_error=False, print_error=False)
    assert callable(command)


def _runs_for_real(args: list[str]) -> bool:
    sub = args[0] if args else ""
    if sub in ("serve", "schedule", "chat") or any(a.startswith("az://") for a in args):
        return False
    if args[:2] == ["eval", "run"] or args[:2] == ["eval", "rescore"]:
        return False  # loads the embedding model and the scorer's pair model
    return not any(a.startswith(("/", "~")) for a in args)


# ------------------------------------------------------------------ the sandbox
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    (root / "data").symlink_to(ROOT / "data")
    shutil.copytree(EVAL_DATA / "run_a", root / "runs" / "baseline")
    shutil.copytree(EVAL_DATA / "run_b", root / "runs" / "new")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_shows_commands_of_every_kind():
    commands = shell_commands()
    kinds = {argv[0].rsplit("/", 1)[-1] for _, _, argv in commands}
    assert {"make", "ondata", "python", "prefect"} <= kinds
    assert sum(1 for _, _, argv in commands if argv[0].endswith("ondata")) >= 15
    assert len(python_blocks()) == 2


def test_readme_commands_run_or_parse_as_written(sandbox, monkeypatch):
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("ONDATA_EMBEDDER", "hashing")
    monkeypatch.setenv("COLUMNS", "160")
    for key in [k for k in os.environ if k.startswith(("AZURE_", "ONDATA_INDEX_DIR", "ONDATA_PROFILE"))]:
        monkeypatch.delenv(key)
    runner = CliRunner()
    done: dict[str, list[str]] = {"ran": [], "parsed": [], "skipped": []}
    failures = []
    for line, env, argv in shell_commands():
        shown = " ".join([*(f"{k}={v}" for k, v in env.items()), *argv])
        program = argv[0].rsplit("/", 1)[-1]
        try:
            if program == "ondata":
                if _runs_for_real(argv[1:]) and not env:
                    result = runner.invoke(app, argv[1:], catch_exceptions=False)
                    gate = argv[1:3] == ["eval", "compare"] and result.exit_code == 1 and "fail-under:" in result.output
                    assert result.exit_code == 0 or gate, result.output[-2000:]
                    done["ran"].append(shown)
                else:
                    parse_ondata(argv[1:])
                    done["parsed"].append(shown)
            elif program == "python" and len(argv) > 1 and argv[1].startswith("bench/"):
                parse_bench(argv[1], argv[2:])
                done["parsed"].append(shown)
            elif program == "python" and argv[1:3] == ["-m", "pytest"]:
                targets = [a for a in argv[3:] if not a.startswith("-")]
                marker = argv[argv.index("-m", 2) + 1] if "-m" in argv[2:] else None
                assert all((ROOT / t).exists() for t in targets if t != marker), targets
                if marker:
                    assert marker in (ROOT / "pyproject.toml").read_text(), f"pytest marker {marker} is not registered"
                done["parsed"].append(shown)
            elif program == "prefect":
                parse_prefect(argv[1:])
                done["parsed"].append(shown)
            elif program == "make":
                dry = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True)
                assert dry.returncode == 0, dry.stderr
                done["parsed"].append(shown)
            elif program == "export":
                assert all(ENV_ASSIGN.match(a) for a in argv[1:]), argv
                done["skipped"].append(shown)
            else:
                raise AssertionError("no rule for this kind of command: add one to tests/test_readme_commands.py")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - collect every failing command
            failures.append(f"README line {line}: {shown}\n    {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
    # what ran for real: the local walkthrough
    ran = " | ".join(done["ran"])
    for expected in ("ondata ingest data/samples/docs", "ondata index stats", "ondata index rebuild", "ondata search",
                     "ondata ask", "ondata eval report runs/baseline", "ondata eval compare runs/baseline runs/new",
                     "ondata doctor"):
        assert expected in ran, (expected, done)
    # the index lives on in the generation the README's rebuild swapped in; drop-old left only that one
    live = local_generations.live_name(sandbox / ".ondata")
    assert live.startswith("gen-") and [g.name for g in local_generations.generations(sandbox / ".ondata")] == [live]
    assert local_generations.has_index(sandbox / ".ondata") and (sandbox / "runs" / "baseline" / "report.html").is_file()


def test_readme_python_examples_run(sandbox, monkeypatch):
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("ONDATA_EMBEDDER", "hashing")
    if not local_generations.has_index(sandbox / ".ondata"):
        assert CliRunner().invoke(app, ["ingest", "data/samples/docs"]).exit_code == 0
    (first, api), (_, client) = python_blocks()
    api_run = subprocess.run([sys.executable, "-c", api], cwd=sandbox, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert api_run.returncode == 0, api_run.stderr
    assert "£500" in api_run.stdout and "'filepath': 'fleet_parts_price_list_2024.pdf'" in api_run.stdout

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "ondata.cli", "serve", "--port", str(port)], cwd=sandbox,
                              env={**os.environ, "ONDATA_SERVE_API_KEY": "change-me", "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.3)
        code = client.replace("127.0.0.1:8765", f"127.0.0.1:{port}")
        assert code != client, "the client example no longer talks to 127.0.0.1:8765"
        run = subprocess.run([sys.executable, "-c", code], cwd=sandbox, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "£500" in run.stdout and "fleet_parts_price_list_2024.pdf" in run.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
