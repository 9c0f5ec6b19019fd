"""retrieval.principals: the keys file (hashes only, 0600, atomic), key lookup, JWT validation, the authenticator."""

from __future__ import annotations

import base64
import json
import os
import stat
import time

import jwt
import pytest
from jwt_helpers import AUDIENCE, ISSUER, TokenMint

from indexers.errors import ConfigError
from indexers.records import ALL_GROUPS
from retrieval.principals import (ANONYMOUS, AuthenticationFailed, Authenticator, JWTVerifier, KeysFile, Principal,
                                  hash_key)


@pytest.fixture(scope="module")
def mint():
    return TokenMint()


@pytest.fixture
def verifier(mint, tmp_path):
    return JWTVerifier(str(mint.jwks(tmp_path / "jwks.json")), issuer=ISSUER, audience=AUDIENCE)


def test_keys_file_stores_only_hashes_with_0600_and_round_trips(tmp_path):
    path = tmp_path / "conf" / "keys.toml"
    store = KeysFile.load(path, missing_ok=True)
    hr_key = store.add("hr-app", groups=("hr", "staff"))
    admin_key = store.add("admin", all_groups=True)
    public_key = store.add("kiosk")
    store.save()
    text = path.read_text()
    for key in (hr_key, admin_key, public_key):
        assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name != "keys.toml"]  # no temporary file left behind
    loaded = KeysFile.load(path)
    assert loaded.principal_for(hr_key) == Principal("hr-app", ("hr", "staff"), "key")
    assert loaded.principal_for(admin_key).groups is ALL_GROUPS
    assert loaded.principal_for(public_key).groups == ()
    assert loaded.principal_for(hr_key + "x") is None
    assert loaded.principal_for("") is None
    loaded.remove("hr-app")
    loaded.save()
    assert KeysFile.load(path).principal_for(hr_key) is None
    assert KeysFile.load(path).principal_for(admin_key).name == "admin"


def test_keys_file_errors_are_clear(tmp_path):
    store = KeysFile.load(tmp_path / "keys.toml", missing_ok=True)
    store.add("a", groups=("g",))
    with pytest.raises(ConfigError, match="already exists"):
        store.add("a", groups=("g",))
    with pytest.raises(ConfigError, match="invalid key name"):
        store.add("bad name", groups=("g",))
    with pytest.raises(ConfigError, match="not both"):
        store.add("b", groups=("g",), all_groups=True)
    with pytest.raises(TypeError):
        store.add("c", groups=("",))
    with pytest.raises(ConfigError, match="no key named"):
        store.remove("zzz")
    with pytest.raises(ConfigError, match="no keys file"):
        KeysFile.load(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("keys = [")
    with pytest.raises(ConfigError, match="cannot be read"):
        KeysFile.load(tmp_path / "broken.toml")
    (tmp_path / "nogroups.toml").write_text('[[keys]]\nname = "x"\nsha256 = "%s"\ngroups = "finance"\n' % ("0" * 64))
    with pytest.raises(ConfigError, match="finance"):
        KeysFile.load(tmp_path / "nogroups.toml")


def test_jwt_groups_and_roles(verifier, mint):
    p = verifier.principal_for(mint.token(groups=["hr", "staff"], roles=["Reader"], extra={"preferred_username": "ann@x"}))
    assert p == Principal("ann@x", ("hr", "staff", "Reader"), "jwt")
    assert verifier.principal_for(mint.token()).groups == ()
    assert verifier.principal_for(mint.token(groups=["hr"], sub="svc")).name == "svc"
    assert verifier.principal_for(mint.token(groups="finance")).groups == ("finance",)  # one name, never its letters


@pytest.mark.parametrize("case", ["issuer", "audience", "expired", "signature", "kid", "none", "hs256", "garbage",
                                  "no-exp", "groups-type", "not-yet"])
def test_jwt_rejections(verifier, mint, case):
    other = TokenMint(kid=mint.kid)  # same key id, another key: a forged signature
    now = int(time.time())
    if case == "issuer":
        token = mint.token(issuer="https://evil.example/")
    elif case == "audience":
        token = mint.token(audience="api://other")
    elif case == "expired":
        token = mint.token(expires_in=-120)
    elif case == "signature":
        token = other.token(groups=["board"])
    elif case == "kid":
        token = mint.token(kid="unknown-kid")
    elif case == "none":
        token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "groups": ["board"]}, None,
                           algorithm="none", headers={"kid": mint.kid})
    elif case == "hs256":  # the public key used as an HMAC secret (algorithm confusion)
        header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": mint.kid}).encode()).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600}).encode()).rstrip(b"=")
        token = f"{header.decode()}.{body.decode()}.AAAA"
    elif case == "garbage":
        token = "eyJhbGciOi.not-a.token"
    elif case == "no-exp":
        token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "groups": ["board"]}, mint.private_key, algorithm="RS256",
                           headers={"kid": mint.kid})
    elif case == "groups-type":
        token = mint.token(groups={"board": True})
    else:
        token = mint.token(extra={"nbf": now + 3600})
    with pytest.raises(AuthenticationFailed):
        verifier.principal_for(token)


def test_jwks_file_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="JWKS"):
        JWTVerifier(str(tmp_path / "bad.json"), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigError, match="issuer"):
        JWTVerifier(str(tmp_path / "bad.json"), issuer="", audience=AUDIENCE)


def test_authenticator_headers_and_modes(tmp_path, verifier, mint):
    store = KeysFile.load(tmp_path / "k.toml", missing_ok=True)
    key = store.add("fin", groups=("finance",))
    assert Authenticator().authenticate({}) is ANONYMOUS
    auth = Authenticator(keys=store, shared_key="shared-secret-value", tokens=verifier)
    assert auth.authenticate({"api-key": key}).groups == ("finance",)
    assert auth.authenticate({"authorization": f"Bearer {key}"}).name == "fin"
    assert auth.authenticate({"authorization": f"bearer {mint.token(groups=['hr'])}"}).groups == ("hr",)
    shared = auth.authenticate({"api-key": "shared-secret-value"})
    assert shared.groups == () and shared.kind == "shared-key"
    trusted = Authenticator(shared_key="shared-secret-value", shared_key_groups=ALL_GROUPS)
    assert trusted.authenticate({"api-key": "shared-secret-value"}).groups is ALL_GROUPS
    for headers in ({}, {"api-key": ""}, {"api-key": "nope"}, {"authorization": "Basic abc"},
                    {"authorization": "Bearer " + "x" * 20_000}):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(headers)
    assert "public chunks only" in Authenticator().describe()
    assert "1 keys" in auth.describe() and "issuer" in auth.describe()


def test_principal_groups_are_validated():
    with pytest.raises(TypeError):
        Principal("x", None)
    with pytest.raises(TypeError):
        Principal("x", "finance")
    assert Principal("x", ["a", "a"]).groups == ("a",)
    assert Principal("x", ALL_GROUPS).group_count == "all"


def test_a_running_authenticator_sees_keys_added_and_removed(tmp_path):
    path = tmp_path / "keys.toml"
    store = KeysFile.load(path, missing_ok=True)
    first = store.add("first", groups=("a",))
    store.save()
    auth = Authenticator(keys=KeysFile.load(path))
    assert auth.authenticate({"api-key": first}).name == "first"
    other = KeysFile.load(path)
    second = other.add("second", groups=("b",))
    other.remove("first")
    other.save()
    assert auth.authenticate({"api-key": second}).groups == ("b",)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate({"api-key": first})
    path.write_text("broken = [")  # a half-edited file keeps the keys read before
    assert auth.authenticate({"api-key": second}).name == "second"


def test_jwks_from_a_url(mint, tmp_path):
    """``--jwks https://...``: the keys come through PyJWKClient (here from a local HTTP server; no network)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    mint.jwks(tmp_path / "keys.json")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/keys.json"
        verifier = JWTVerifier(url, issuer=ISSUER, audience=AUDIENCE)
        assert verifier.principal_for(mint.token(groups=["hr"])).groups == ("hr",)
        with pytest.raises(AuthenticationFailed):
            verifier.principal_for(mint.token(groups=["hr"], kid="rotated-away"))
    finally:
        httpd.shutdown()
