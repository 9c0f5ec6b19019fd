"""`ondata keys` and `ondata serve` as processes: keys tied to groups, tokens, the shared key, the loopback rule,
named indexes, what serve prints at start, and the audit log file."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from jwt_helpers import AUDIENCE, ISSUER, TokenMint
from serve_process import CHAT, ServeProcess, make_index, ondata_command, oyd_body, retrieved_files

from retrieval.principals import KeysFile

QUESTIONS = ["What is salary band L3?", "Which acquisition did the board approve?", "How many characters must passwords have?",
             "How are parking spaces assigned?", "How many days of paid vacation do employees get?"]
RESTRICTED = {"salaries.xlsx": {"hr"}, "board-minutes.docx": {"board"}, "security.pdf": {"it", "security"},
              "o'brien notes.txt": {"hr", "board"}}
SHARED = "shared-serve-key-0123456789"


def ondata(*args, cwd, env=None):
    import os

    return subprocess.run([*ondata_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def seen_files(url: str, headers: dict[str, str]) -> set[str]:
    files: set[str] = set()
    for q in QUESTIONS:
        for query_type in ("simple", "vector", "vector_simple_hybrid"):
            r = httpx.post(url + CHAT, json=oyd_body(q, query_type=query_type), headers=headers, timeout=60)
            assert r.status_code == 200, r.text
            files |= retrieved_files(r)
    return files


def allowed(groups) -> set[str]:
    return {f for f, need in RESTRICTED.items() if need & set(groups)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve-cli")
    make_index(base / "docs")
    make_index(base / "second")
    mint = TokenMint()
    jwks = mint.jwks(base / "jwks.json")
    keys = base / "keys.toml"
    out = {}
    for name, flags in (("hr-app", ["--group", "hr"]), ("admin", ["--all-groups"]), ("kiosk", [])):
        r = ondata("keys", "add", name, *flags, "--keys", str(keys), cwd=base)
        assert r.returncode == 0, r.stderr
        out[name] = r.stdout.strip().splitlines()[-1]
    server = ServeProcess(["--index", f"docs={base / 'docs'}", "--index", str(base / "second"), "--keys", str(keys),
                           "--jwks", str(jwks), "--issuer", ISSUER, "--audience", AUDIENCE,
                           "--access-log", str(base / "access.log"), "--no-page"],
                          env={"ONDATA_SERVE_API_KEY": SHARED}, cwd=base)
    yield {"base": base, "keys": keys, "key": out, "mint": mint, "server": server}
    server.stop()


def test_keys_add_prints_the_key_once_and_stores_only_its_hash(setup):
    keys, key = setup["keys"], setup["key"]
    text = keys.read_text()
    for k in key.values():
        assert len(k) >= 40 and k not in text
    listing = ondata("keys", "list", "--keys", str(keys), cwd=setup["base"])
    assert listing.returncode == 0
    assert "hr-app\thr" in listing.stdout and "admin\tALL GROUPS" in listing.stdout and "kiosk\t(public only)" in listing.stdout
    for k in key.values():
        assert k not in listing.stdout
    extra = setup["base"] / "other-keys.toml"
    assert ondata("keys", "add", "tmp", "--group", "x", "--keys", str(extra), cwd=setup["base"]).returncode == 0
    assert ondata("keys", "remove", "tmp", "--keys", str(extra), cwd=setup["base"]).returncode == 0
    assert KeysFile.load(extra).entries == []
    again = ondata("keys", "remove", "tmp", "--keys", str(extra), cwd=setup["base"])
    assert again.returncode == 2 and "no key named 'tmp'" in again.stderr


def test_each_principal_sees_exactly_its_groups(setup):
    url, key, mint = setup["server"].url, setup["key"], setup["mint"]
    public = {"handbook.pdf", "benefits.md"}
    assert seen_files(url, {"api-key": key["hr-app"]}) == public | allowed({"hr"})
    assert seen_files(url, {"authorization": f"Bearer {key['admin']}"}) == public | set(RESTRICTED)
    assert seen_files(url, {"api-key": key["kiosk"]}) == public
    assert seen_files(url, {"api-key": SHARED}) == public  # the shared key is public-only without --trusted-key
    token = mint.token(groups=["board"], roles=["security"])
    assert seen_files(url, {"authorization": f"Bearer {token}"}) == public | allowed({"board", "security"})


def test_bad_credentials_are_401_in_oyd_shape(setup):
    url, mint = setup["server"].url, setup["mint"]
    for headers in ({}, {"api-key": "wrong"}, {"authorization": f"Bearer {mint.token(expires_in=-100)}"},
                    {"authorization": f"Bearer {mint.token(issuer='https://other/')}"},
                    {"authorization": f"Bearer {mint.token(audience='api://other')}"},
                    {"authorization": f"Bearer {TokenMint(kid=mint.kid).token(groups=['hr'])}"}):
        r = httpx.post(url + CHAT, json=oyd_body("vacation"), headers=headers, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "401"


def test_named_indexes_and_start_up_lines(setup):
    server, key = setup["server"], setup["key"]
    h = {"api-key": key["kiosk"]}
    assert httpx.post(server.url + CHAT, json=oyd_body("vacation", index_name="second"), headers=h).status_code == 200
    r = httpx.post(server.url + CHAT, json=oyd_body("vacation", index_name=str(setup["base"] / "docs")), headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "404"
    err = server.stderr_text()
    assert f"serving http://127.0.0.1:{server.port}/" in err
    assert "indexes: docs (" in err and "second (" in err
    assert "auth: API keys from" in err and "(3 keys)" in err and "shared API key (public chunks only)" in err
    assert f"bearer tokens from issuer {ISSUER}" in err
    assert "audit log:" in err


def test_audit_log_file(setup):
    server, key = setup["server"], setup["key"]
    httpx.post(server.url + CHAT, json=oyd_body("How many days of paid vacation?", query_type="vector"),
               headers={"api-key": key["hr-app"]})
    lines = (setup["base"] / "access.log").read_text().splitlines()
    mine = [line for line in lines if "principal=hr-app" in line and "query_type=vector " in line]
    assert mine, lines[-5:]
    line = mine[-1]
    assert "groups=1" in line and "index=docs" in line and "status=200" in line and "citations=" in line
    assert line[:4].isdigit() and "Z " in line[:25]
    text = "\n".join(lines)
    assert "vacation" not in text and all(k not in text for k in key.values()) and SHARED not in text


def test_no_auth_refuses_a_public_address_and_serves_loopback_public_only(setup, tmp_path):
    r = ondata("serve", "--host", "0.0.0.0", "--index", str(setup["base"] / "docs"), cwd=tmp_path,
               env={"ONDATA_SERVE_API_KEY": ""})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "refusing to serve on 0.0.0.0" in r.stderr
    server = ServeProcess(["--index", str(setup["base"] / "docs"), "--no-page"], env={"ONDATA_SERVE_API_KEY": ""},
                          cwd=tmp_path)
    try:
        assert "auth: none" in server.stderr_text() and "public chunks only" in server.stderr_text()
        assert seen_files(server.url, {}) == {"handbook.pdf", "benefits.md"}
        assert seen_files(server.url, {"api-key": "anything"}) == {"handbook.pdf", "benefits.md"}
    finally:
        server.stop()


def test_trusted_shared_key_sees_everything(setup, tmp_path):
    server = ServeProcess(["--index", str(setup["base"] / "docs"), "--no-page", "--trusted-key"],
                          env={"ONDATA_SERVE_API_KEY": SHARED}, cwd=tmp_path)
    try:
        assert "trusted: every group" in server.stderr_text()
        assert seen_files(server.url, {"api-key": SHARED}) == {"handbook.pdf", "benefits.md"} | set(RESTRICTED)
        assert httpx.post(server.url + CHAT, json=oyd_body("x"), headers={}).status_code == 401
    finally:
        server.stop()
