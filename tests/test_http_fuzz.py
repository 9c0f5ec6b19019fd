"""An HTTP fuzz test against a real `ondata serve` process: >= 2,000 malformed requests, no 5xx, memory bounded.

The requests come from a seeded generator of our own (``malformed_requests``): random bytes, mutated
On Your Data bodies (every field replaced by hostile values: lone surrogates, 21- and 5,000-digit
numbers, NaN, deep nesting, wrong types), random OData filters, deep nesting, oversized and chunked
bodies, bad headers and credentials (forged, unsigned and malformed tokens too), wrong methods and paths, the page's routes. Every answer must be
a 4xx (or a 200 for the few mutations that stay valid) in On Your Data's error shape; a 5xx is
counted, and the count must be 0 (the JSON catch-all would still be a 500, so it is counted too).
The server's peak RSS (psutil, sampled every 20 ms) is printed and must stay under 600 MB.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from typing import Any, Iterator

import httpx
import psutil
import pytest
from jwt_helpers import AUDIENCE, ISSUER, TokenMint
from serve_process import CHAT, ServeProcess, make_index, oyd_body

from retrieval.principals import KeysFile

N_REQUESTS = 2400
MINT = TokenMint()
#: A well-formed token signed by a key the server does not trust, claiming every group.
FORGED = TokenMint(kid=MINT.kid).token(groups=["hr", "board", "it", "security"])
RSS_LIMIT_MB = 600
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1.5, 10**21, -(10**25), 1e308, "", " ", "\ud800", "a\udfffb", "x" * 5000, [], {},
    [None], {"": ""}, "eq", "'", "\x00", "\u202e", "[doc1]", "../../etc/passwd", "%s%s%n", "${jndi:x}",
]
FILTER_PARTS = ["title", "filepath", "metadata/dept", "metadata/year", "group_ids", "source_id", "eq", "ne", "and",
                "or", "not", "(", ")", "'hr'", "'a''b'", "'", "1", "-5", "123456789012345678901", "9" * 5000, "1e999",
                "1.5", "true", "null", "search.in(", "search.in(title, 'a,b', ',')", ",", "/any(g: search.in(g, 'hr'))",
                "'\ud800'", "gt", "any", "g:", "\x00", "$", "é"]


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def _random_filter(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return "(" * rng.randint(50, 3000) + "title eq 'a'" + ")" * rng.randint(0, 3000)
    if kind < 0.2:
        return " and ".join(["not"] * rng.randint(10, 500)) + " title eq 'x'"
    return " ".join(rng.choice(FILTER_PARTS) for _ in range(rng.randint(1, 12)))


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one random leaf, key or container replaced by a hostile value."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        out = dict(value)
        choice = rng.random()
        if choice < 0.1:
            out.pop(key)
        elif choice < 0.2:
            out[rng.choice(["\ud800", "", "x" * 300, "unknown"])] = rng.choice(HOSTILE)
        else:
            out[key] = _mutate(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        out = list(value)
        out[i] = _mutate(rng, value[i], depth + 1)
        if rng.random() < 0.1:
            out = out * rng.randint(2, 50)
        return out
    return rng.choice(HOSTILE)


def _nested(rng: random.Random) -> bytes:
    depth = rng.choice([33, 64, 500, 5000, 50_000, 200_000])
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def malformed_requests(n: int, *, key: str, seed: int = 20261202) -> Iterator[dict[str, Any]]:
    """``n`` request descriptions (method, path, headers, content) of hostile shapes; see the module docstring."""
    rng = random.Random(seed)
    base = oyd_body("How many days of paid vacation do employees get?")
    auth = {"api-key": key, "content-type": "application/json"}
    kinds = ["bytes", "mutate", "mutate", "mutate", "filter", "filter", "nested", "numbers", "types", "headers",
             "routes", "big", "stream", "citation"]
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) * 10 else rng.choice(kinds)
        req: dict[str, Any] = {"method": "POST", "path": CHAT, "headers": dict(auth), "content": b"", "kind": kind}
        if kind == "bytes":
            req["content"] = rng.randbytes(rng.randint(0, 3000))
        elif kind == "mutate":
            body = base
            for _ in range(rng.randint(1, 4)):
                body = _mutate(rng, body)
            req["content"] = _json(body)
        elif kind == "filter":
            body = json.loads(json.dumps(base))
            body["data_sources"][0]["parameters"]["filter"] = _random_filter(rng)
            req["content"] = _json(body)
        elif kind == "nested":
            req["content"] = _nested(rng)
        elif kind == "numbers":
            body = json.loads(json.dumps(base))
            field = rng.choice(["top_n_documents", "strictness", "max_tokens", "temperature", "seed", "top_p", "n"])
            number = rng.choice(["1" + "0" * 21, "9" * 5000, "-" + "9" * 30, "1e400", "NaN", "-Infinity", "0", "-1",
                                 "1.0000000000000000000001", "3e-400"])
            text = _json(body).decode("utf-8", "surrogatepass")
            if field in ("top_n_documents", "strictness"):
                text = text.replace(f'"{field}": {body["data_sources"][0]["parameters"][field]}', f'"{field}": {number}')
            else:
                text = text[:-1] + f', "{field}": {number}}}'
            req["content"] = text.encode("utf-8", "surrogatepass")
        elif kind == "types":
            body = json.loads(json.dumps(base))
            target = rng.choice(["messages", "data_sources", "stream", "temperature", "max_tokens", "stop", "user",
                                 "question", "content"])
            value = rng.choice(HOSTILE)
            if target == "question":
                body["messages"][0]["content"] = value
            elif target == "content":
                body["messages"][0] = {"role": rng.choice(["user", "tool", "", None]), "content": value}
            else:
                body[target] = value
            req["content"] = _json(body)
        elif kind == "headers":  # sent over a raw socket: an HTTP client refuses to write most of these
            req["raw"] = True
            req["content"] = _json(base)
            choice = rng.randrange(7)
            if choice == 0:
                req["headers"] = {"content-type": "application/json"}
            elif choice == 1:
                req["headers"]["api-key"] = rng.choice(["", "x", key + "x", "k" * 20_000, "eyJhbGciOiJub25lIn0.e30."])
            elif choice == 2:
                req["headers"].pop("api-key")
                req["headers"]["authorization"] = rng.choice(
                    ["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer eyJ.eyJ.sig", "Bearer " + "A" * 8000,
                     "Bearer eyJhbGciOiJub25lIn0.eyJncm91cHMiOlsiaHIiXX0.", "Bearer eyJ" + "A" * 3000 + ".eyJ.x",
                     "Bearer eyJhbGciOiJIUzI1NiIsImtpZCI6InRlc3Qta2V5LTEifQ.eyJpc3MiOiJ4In0.c2ln",
                     "Bearer " + FORGED])
            elif choice == 3:
                req["headers"]["content-type"] = rng.choice(["text/plain", "application/xml", "multipart/form-data", ""])
            elif choice == 4:
                req["path"] = CHAT.replace("api-version=2024-10-21", rng.choice(["", "api-version=", "x=1"]))
            elif choice == 5:
                req["headers"]["content-length"] = rng.choice(["-1", "abc", "99999999999999999999", "1", "0"])
            else:
                req["headers"]["x-junk"] = b"\xff" * 100
        elif kind == "routes":
            req["method"] = rng.choice(["GET", "PUT", "DELETE", "PATCH", "POST", "OPTIONS", "HEAD"])
            req["path"] = rng.choice([
                "/openapi.json", "/docs", "/redoc", "/", "/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
                "/documents/x?index=docs", "/documents/%ED%A0%80?index=docs", "/api/config", "/nothing",
                "/openai/deployments//chat/completions?api-version=1", "/openai/deployments/%00/chat/completions?api-version=1",
                "/openai/deployments/" + "d" * 3000 + "/chat/completions?api-version=1", "/healthz?x=%ff",
                "/documents/" + "a" * 300 + "?index=" + "%ED%B0%80"])
            req["content"] = _json(base) if req["method"] in ("POST", "PUT", "PATCH") else b""
        elif kind == "big":
            size = rng.choice([1 << 20, (1 << 20) + 1, 3 << 20])
            if rng.random() < 0.5:
                question = "vacation " * (size // 9)
                req["content"] = _json(oyd_body(question))
            else:
                req["chunked"] = size
        elif kind == "stream":
            body = _mutate(rng, {**base, "stream": True})
            req["content"] = _json(body)
        else:  # the page's citation route
            req["path"] = "/api/citation"
            req["content"] = _json(_mutate(rng, {"index_name": "docs", "chunk_id": "abc", "claim": "vacation days"}))
        yield req


def _chunks(size: int) -> Iterator[bytes]:
    block = b"[" + b" " * 65_535
    sent = 0
    while sent < size:
        yield block
        sent += len(block)


class RawResponse:
    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text

    def json(self) -> Any:
        return json.loads(self.text)


def _raw_request(port: int, req: dict[str, Any]) -> RawResponse:
    """One request over a plain socket, headers exactly as given; the status and body of the answer."""
    head = f"{req['method']} {req['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    headers = {"content-length": str(len(req["content"])), **req["headers"]}
    head += "".join(f"{k}: {v.decode('latin-1') if isinstance(v, bytes) else v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode("latin-1") + b"\r\n" + req["content"])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    return RawResponse(int(head_bytes.split(b" ", 2)[1]), payload.decode(errors="replace"))


class PeakRSS(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self.stop.wait(0.02)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    make_index(base / "docs")
    store = KeysFile.load(base / "keys.toml", missing_ok=True)
    key = store.add("fuzzer", groups=("hr",))
    store.save()
    proc = ServeProcess(["--index", f"docs={base / 'docs'}", "--keys", str(base / "keys.toml"),
                         "--jwks", str(MINT.jwks(base / "jwks.json")), "--issuer", ISSUER, "--audience", AUDIENCE,
                         "--access-log", str(base / "access.log")], cwd=base,
                        env={"ONDATA_SERVE_MAX_CONCURRENCY": "64"})
    yield proc, key
    proc.stop()


def test_fuzz_no_5xx_and_bounded_memory(server):
    proc, key = server
    rss = PeakRSS(proc.proc.pid)
    rss.start()
    statuses: Counter[int] = Counter()
    by_kind: Counter[str] = Counter()
    failures: list[str] = []
    sent = 0
    with httpx.Client(base_url=proc.url, timeout=60) as client:
        for req in malformed_requests(N_REQUESTS, key=key):
            content: Any = _chunks(req["chunked"]) if "chunked" in req else req["content"]
            try:
                if req.get("raw"):
                    r = _raw_request(proc.port, req)
                else:
                    r = client.request(req["method"], req["path"], headers=req["headers"], content=content)
            except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError) as exc:
                # the server closed a connection while an oversized body was still being sent: no answer to judge
                assert req["kind"] in ("big", "headers"), f"{req['kind']}: {exc!r}"
                by_kind["closed:" + req["kind"]] += 1
                sent += 1
                continue
            sent += 1
            statuses[r.status_code] += 1
            if r.status_code >= 500:
                failures.append(f"{req['kind']} {req['method']} {req['path'][:80]} -> {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400 and req["method"] != "HEAD":
                try:
                    err = r.json().get("error")
                except (ValueError, AttributeError):
                    err = None
                if not (isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)):
                    failures.append(f"{req['kind']} {req['method']} {req['path'][:80]} -> {r.status_code} not in OYD's error shape: "
                                    f"{r.text[:200]!r}")
            by_kind[req["kind"]] += 1
    rss.stop.set()
    rss.join(2)
    alive = proc.proc.poll() is None
    five_xx = sum(n for status, n in statuses.items() if status >= 500)
    print(f"\nfuzz: {sent} requests, statuses {dict(sorted(statuses.items()))}, 5xx: {five_xx}, "
          f"peak server RSS {rss.peak / 2**20:.0f} MB, kinds {dict(by_kind)}")
    assert sent >= 2000
    assert alive, proc.stderr_text()[-2000:]
    assert not failures, failures[:10]
    assert five_xx == 0
    assert 0 < rss.peak < RSS_LIMIT_MB * 2**20
    assert httpx.post(proc.url + CHAT, json=oyd_body("How many days of paid vacation do employees get?"),
                      headers={"api-key": key}).status_code == 200
