"""No secret is ever printed: every `ondata` command, failing and succeeding, with and without `--debug`.

Fake secrets sit in the environment (Azure OpenAI / AI Search keys, the serve key, a storage SAS and
connection string); ingest reads a real Azurite container through a connection string and through a
SAS token (with `--debug`, urllib3 and azure-core log every request URL and its headers); serve is
called with the key in a header, a bearer token and a `sig=` in the query string. All stdout, stderr
and the audit log file are searched for every secret value: none may appear.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from serve_process import CHAT, ROOT, ServeProcess, ondata_command, oyd_body

DOCS = ROOT / "data" / "samples" / "docs"
QA = ROOT / "tests" / "data" / "eval" / "qa.jsonl"
FAKE = {
    "AZURE_OPENAI_API_KEY": "fake-aoai-key-5f1c2e9d7a",
    "AZURE_SEARCH_KEY": "fake-search-admin-key-8b3e1d",
    "ONDATA_SERVE_API_KEY": "fake-serve-key-2c7a9e4b1f",
    "PREFECT_API_KEY": "fake-prefect-key-93ad1c7e",
}
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.ZmFrZS1zaWduYXR1cmUtdmFsdWU"
pytestmark = pytest.mark.azurite


def run(args: list[str], *, env: dict[str, str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ondata_command(), *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def storage(azurite):
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from tests.azurite import ACCOUNT, KEY

    service = azurite.service_client()
    name = f"secrets{uuid.uuid4().hex[:12]}"
    container = service.create_container(name)
    for doc in ("customer_care_restructuring_2025.md", "it_security_guidelines.md", "incident_report_INC-2024-0712.txt"):
        container.upload_blob(doc, (DOCS / doc).read_bytes())
    sas = generate_container_sas(ACCOUNT, name, account_key=KEY, permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2))
    sig = next(p.split("=", 1)[1] for p in sas.split("&") if p.startswith("sig="))
    yield {"azurite": azurite, "container": name, "sas": sas, "sig": sig, "key": KEY}
    container.delete_container()


def secrets_of(storage) -> list[str]:
    from urllib.parse import unquote

    return [*FAKE.values(), storage["key"], storage["sig"], unquote(storage["sig"]), storage["sas"], JWT]


def test_no_command_prints_a_secret(storage, tmp_path):
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "ONDATA_"))}
    env = {**base_env, **FAKE, "PYTHONPATH": str(ROOT), "ONDATA_INDEX_DIR": str(tmp_path / "index"),
           "ONDATA_EMBEDDER": "hashing", "AZURE_STORAGE_CONNECTION_STRING": storage["azurite"].connection_string}
    sas_env = {**base_env, **FAKE, "PYTHONPATH": str(ROOT), "ONDATA_EMBEDDER": "hashing",
               "AZURE_STORAGE_ACCOUNT_URL": storage["azurite"].account_url, "AZURE_STORAGE_SAS_TOKEN": storage["sas"]}
    container = f"az://{storage['container']}"
    outputs: list[tuple[str, str]] = []
    expect: dict[str, int] = {}

    def check(label: str, args: list[str], *, code: int | None, use=None, stdin: str | None = None) -> None:
        started = time.perf_counter()
        r = run(args, env=use or env, cwd=tmp_path, stdin=stdin)
        print(f"{label}: exit {r.returncode} in {time.perf_counter() - started:.1f} s")
        outputs.append((label, r.stdout + r.stderr))
        if code is not None:
            assert r.returncode == code, f"{label}: {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
        expect[label] = r.returncode

    # ingest from Azurite: a connection string, then a SAS token (with --debug: every request URL and header logged)
    check("ingest conn --debug", ["--debug", "ingest", container, "--index", str(tmp_path / "index")], code=0)
    check("ingest sas --debug", ["--debug", "ingest", container, "--index", str(tmp_path / "sas-index")], code=0, use=sas_env)
    check("ingest missing container", ["ingest", "az://no-such-container", "--index", str(tmp_path / "x")], code=None)
    check("ingest missing container --debug", ["--debug", "ingest", "az://no-such-container", "--index",
                                               str(tmp_path / "x")], code=None, use=sas_env)
    bad_sas = {**sas_env, "AZURE_STORAGE_SAS_TOKEN": storage["sas"].replace("sig=", "sig=AAAA")}
    check("ingest bad sas --debug", ["--debug", "ingest", container, "--index", str(tmp_path / "y")], code=None, use=bad_sas)
    # search / ask / chat / index stats, succeeding and failing
    index = ["--index", str(tmp_path / "index")]
    check("search", ["search", "customer care", *index], code=0)
    check("ask --debug", ["--debug", "ask", "What changes in customer care?", *index], code=0)
    check("ask --json", ["ask", "What changes in customer care?", "--json", *index], code=0)
    check("ask missing index", ["ask", "q", "--index", str(tmp_path / "none")], code=2)
    check("ask bad filter --debug", ["--debug", "ask", "q", "--filter", "title eq", *index], code=None)
    check("chat", ["chat", *index], code=0, stdin="What changes in customer care?\n/quit\n")
    check("index stats", ["index", "stats", *index], code=0)
    # doctor against unreachable Azure services (the keys are in the environment and in the failing requests)
    azure_env = {**env, "ONDATA_PROFILE": "azure", "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9/",
                 "AZURE_SEARCH_ENDPOINT": "http://127.0.0.1:9/"}
    check("doctor --debug", ["--debug", "doctor"], code=None, use=azure_env)
    check("doctor", ["doctor"], code=None, use=azure_env)
    check("ask azure --debug", ["--debug", "ask", "q"], code=None, use=azure_env)
    # eval: a run over the ingested index, and a failing one
    if QA.is_file():
        check("eval run", ["eval", "run", "--dataset", str(QA), "--out", str(tmp_path / "run"), "--embedder", "hashing",
                           "--index", str(tmp_path / "index"), "--no-report"], code=None)
        check("eval run missing --debug", ["--debug", "eval", "run", "--dataset", str(tmp_path / "none.jsonl"),
                                           "--out", str(tmp_path / "run2")], code=None)
    runs = ROOT / "tests" / "data" / "eval"
    if (runs / "run_a").is_dir():
        import shutil

        for name in ("run_a", "run_b"):
            shutil.copytree(runs / name, tmp_path / name)
        check("eval report", ["eval", "report", str(tmp_path / "run_a")], code=0)
        check("eval compare --debug", ["--debug", "eval", "compare", str(tmp_path / "run_a"), str(tmp_path / "run_b")],
              code=None)
    check("schedule bad cron --debug", ["--debug", "schedule", container, "--cron", "not a cron"], code=1)
    check("schedule bad cron", ["schedule", container, "--cron", "not a cron"], code=2, use=sas_env)
    check("keys add", ["keys", "add", "app", "--group", "g", "--keys", str(tmp_path / "keys.toml")], code=0)
    check("keys list", ["keys", "list", "--keys", str(tmp_path / "keys.toml")], code=0)
    check("serve refuses", ["serve", "--host", "0.0.0.0", *index], code=2,
          use={**env, "ONDATA_SERVE_API_KEY": ""})
    # serve, called with the key in a header, a bearer token and a SAS-looking query string
    server = ServeProcess(["--index", str(tmp_path / "index"), "--access-log", str(tmp_path / "access.log")],
                          env={**{k: v for k, v in env.items() if k != "PYTHONPATH"}, "ONDATA_DEBUG": ""}, cwd=tmp_path)
    try:
        for headers in ({"api-key": FAKE["ONDATA_SERVE_API_KEY"]}, {"authorization": f"Bearer {FAKE['ONDATA_SERVE_API_KEY']}"},
                        {"authorization": f"Bearer {JWT}"}, {"api-key": storage["key"]}):
            httpx.post(server.url + CHAT + f"&sig={storage['sig']}", json=oyd_body("customer care", index_name="index"),
                       headers=headers, timeout=60)
        time.sleep(0.5)
    finally:
        server.stop()
    outputs.append(("serve", server.stderr_text() + server.stdout_text()))
    outputs.append(("access log", (tmp_path / "access.log").read_text()))
    assert "principal=shared-key" in outputs[-1][1]  # the calls were made and audited
    assert any("DEBUG" in text for label, text in outputs if "--debug" in label)  # debug logs were on

    leaks = [(label, secret[:12]) for label, text in outputs for secret in secrets_of(storage) if secret in text]
    assert not leaks, leaks
