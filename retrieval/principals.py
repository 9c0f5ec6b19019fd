"""Who calls the HTTP server, and with which ACL groups: API keys, a shared key, Entra ID / OIDC tokens.

- ``KeysFile``: the keys file of ``ondata keys`` and ``ondata serve --keys`` (TOML). Each key has a
  name and its groups (or every group); only the SHA-256 of the key is stored (a key is 32 random
  bytes, ``secrets.token_urlsafe``, so a fast hash is enough). The file is written atomically with
  0600 permissions, and re-read by a running server when it changes (a removed key stops working). ``KeysFile.principal_for(key)`` compares the hash of the given key with every
  stored hash in constant time (``hmac.compare_digest``, no early exit).
- ``JWTVerifier``: bearer tokens signed by an identity provider, checked with PyJWT against a JWKS
  (a local file, or a URL through ``PyJWKClient``): signature (asymmetric algorithms only; ``none``
  and HMAC are refused), expiry, not-before, issuer and audience. The caller's groups are the
  ``groups`` claim plus the ``roles`` claim (Entra ID app roles); its name the ``preferred_username``,
  ``upn``, ``oid`` or ``sub`` claim.
- ``Authenticator``: what ``ondata serve`` was started with (a keys file, a shared key, a token
  verifier, any combination, or nothing) turned into one ``authenticate(headers) -> Principal``.
  A request presents its credential in the ``api-key`` header or as ``Authorization: Bearer``. A
  credential that is wrong is ``AuthenticationFailed`` (the server answers 401); with nothing
  configured every caller is ``ANONYMOUS``: public chunks only.

A ``Principal``'s ``groups`` are a tuple of group names, or ``ALL_GROUPS`` (``--all-groups`` keys,
``--trusted-key``): nothing else. No credential ever widens what a request may see beyond them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from indexers.errors import ConfigError, OndataError
from indexers.records import ALL_GROUPS, check_groups

log = logging.getLogger(__name__)

KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
KEYS_FORMAT = 1
#: Signature algorithms a token may use: asymmetric only (never ``none``, never HMAC with a public key).
TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_CREDENTIAL_CHARS = 16_384


class AuthenticationFailed(OndataError):
    """The request's key or token is missing, unknown, malformed or invalid (the reason stays in the server log)."""


@dataclass(frozen=True)
class Principal:
    """A caller: ``name`` for the audit log, ``groups`` (a tuple, or ``ALL_GROUPS``) every search runs with."""

    name: str
    groups: Any = ()
    kind: str = "anonymous"

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", check_groups(self.groups, what="Principal.groups"))

    @property
    def all_groups(self) -> bool:
        return self.groups is ALL_GROUPS

    @property
    def group_count(self) -> str:
        """How many groups, as the audit log shows it (``all`` for ``ALL_GROUPS``)."""
        return "all" if self.all_groups else str(len(self.groups))


ANONYMOUS = Principal("anonymous", (), "anonymous")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    name: str
    groups: Any  # tuple[str, ...] or ALL_GROUPS
    sha256: str
    created: str = ""

    def principal(self) -> Principal:
        return Principal(self.name, self.groups, "key")


@dataclass
class KeysFile:
    """The keys of ``ondata keys`` in a TOML file (see the module docstring)."""

    path: Path
    entries: list[KeyEntry] = field(default_factory=list)
    stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file when it was read

    def current(self) -> "KeysFile":
        """This keys file, or a fresh read of it when the file changed since (``ondata keys add|remove`` while
        ``ondata serve`` runs); a file that cannot be read now keeps the keys read before."""
        try:
            st = self.path.stat()
        except OSError:
            return self
        if (st.st_mtime_ns, st.st_size) == self.stamp:
            return self
        try:
            return KeysFile.load(self.path)
        except ConfigError as exc:
            log.warning("keeping the keys read before: %s", exc)
            self.stamp = (st.st_mtime_ns, st.st_size)
            return self

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = False) -> "KeysFile":
        path = Path(path)
        if not path.exists():
            if missing_ok:
                return cls(path)
            raise ConfigError(f"no keys file at {path}; create one with `ondata keys add NAME --group G --keys {path}`")
        try:
            st = path.stat()
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"the keys file {path} cannot be read: {exc}") from None
        entries = []
        for i, raw in enumerate(data.get("keys", [])):
            where = f"the keys file {path}, key #{i + 1}"
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where} is not a table")
            name, digest = raw.get("name"), raw.get("sha256")
            if not isinstance(name, str) or not KEY_NAME.match(name):
                raise ConfigError(f"{where} has no valid name")
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ConfigError(f"{where} ({name}) has no valid sha256")
            if raw.get("all_groups") is True:
                groups: Any = ALL_GROUPS
            else:
                try:
                    groups = check_groups(raw.get("groups", []))
                except TypeError as exc:
                    raise ConfigError(f"{where} ({name}): {exc}") from None
            entries.append(KeyEntry(name, groups, digest, str(raw.get("created", ""))))
        return cls(path, entries, (st.st_mtime_ns, st.st_size))

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def add(self, name: str, *, groups: Sequence[str] = (), all_groups: bool = False) -> str:
        """Add a key named ``name``; returns the new key (the only time it exists in clear)."""
        if not KEY_NAME.match(name):
            raise ConfigError(f"invalid key name {name!r}: letters, digits, '.', '_', '@', '-' (at most 64)")
        if name in self.names():
            raise ConfigError(f"a key named {name!r} already exists in {self.path}; remove it first")
        if all_groups and groups:
            raise ConfigError("give either --group or --all-groups, not both")
        checked = ALL_GROUPS if all_groups else check_groups(tuple(groups))
        key = secrets.token_urlsafe(32)
        from datetime import datetime, timezone

        created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        self.entries.append(KeyEntry(name, checked, hash_key(key), created))
        return key

    def remove(self, name: str) -> None:
        if name not in self.names():
            raise ConfigError(f"no key named {name!r} in {self.path}")
        self.entries = [e for e in self.entries if e.name != name]

    def save(self) -> None:
        """Write the file atomically (a temporary file in the same folder, 0600, then a rename)."""
        import tomli_w

        doc = {"format": KEYS_FORMAT, "keys": []}
        for e in self.entries:
            entry: dict[str, Any] = {"name": e.name, "sha256": e.sha256, "created": e.created}
            if e.groups is ALL_GROUPS:
                entry["all_groups"] = True
            else:
                entry["groups"] = list(e.groups)
            doc["keys"].append(entry)
        text = ("# ondata API keys: only SHA-256 hashes of the keys are stored here.\n"
                "# Manage with `ondata keys add|list|remove --keys FILE`.\n" + tomli_w.dumps(doc))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def principal_for(self, key: str) -> Principal | None:
        """The principal of ``key``, or None; every stored hash is compared, in constant time."""
        given = hash_key(key).encode()
        found = None
        for entry in self.entries:
            if hmac.compare_digest(given, entry.sha256.encode()):
                found = entry
        return found.principal() if found is not None else None


def _claim_groups(claims: Mapping[str, Any]) -> tuple[str, ...]:
    groups: list[str] = []
    for name in ("groups", "roles"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise AuthenticationFailed(f"the token's {name!r} claim is not a list of names")
        groups.extend(value)
    return tuple(dict.fromkeys(groups))


class JWTVerifier:
    """Checks bearer tokens against a JWKS file or URL, an issuer and an audience (see the module docstring)."""

    def __init__(self, jwks: str, *, issuer: str, audience: str | Sequence[str], leeway_seconds: float = 30.0) -> None:
        import jwt

        if not issuer or not audience:
            raise ConfigError("token validation needs both --issuer and --audience")
        self.issuer = issuer
        self.audience = [audience] if isinstance(audience, str) else list(audience)
        self.leeway = leeway_seconds
        self._jwt = jwt
        self._client = None
        self._keys: dict[str | None, Any] = {}
        if jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=3600, timeout=10)
        else:
            path = Path(jwks)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                keyset = jwt.PyJWKSet.from_dict(data)
            except (OSError, ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
                raise ConfigError(f"the JWKS file {path} cannot be used: {exc}") from None
            for k in keyset.keys:
                self._keys[k.key_id] = k

    def _signing_key(self, token: str):
        jwt = self._jwt
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientError as exc:
                raise AuthenticationFailed(f"no signing key for the token: {exc}") from None
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise AuthenticationFailed("the token's key id is not in the JWKS")

    def principal_for(self, token: str) -> Principal:
        jwt = self._jwt
        try:
            key = self._signing_key(token)
            claims = jwt.decode(
                token, key=key.key, algorithms=list(TOKEN_ALGORITHMS), audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"invalid token: {type(exc).__name__}: {exc}") from None
        name = next((claims[c] for c in ("preferred_username", "upn", "oid", "sub")
                     if isinstance(claims.get(c), str) and claims[c]), "token")
        return Principal(name, _claim_groups(claims), "jwt")


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("eyJ")


@dataclass
class Authenticator:
    """One ``authenticate(headers)`` over a keys file, a shared key and a token verifier (any may be absent).

    ``shared_key_groups``: the groups of a caller presenting ``shared_key`` (public-only ``()``
    unless ``ondata serve --trusted-key``, which makes it ``ALL_GROUPS``).
    """

    keys: KeysFile | None = None
    shared_key: str | None = None
    shared_key_groups: Any = ()
    tokens: JWTVerifier | None = None

    @property
    def configured(self) -> bool:
        return self.keys is not None or self.shared_key is not None or self.tokens is not None

    def describe(self) -> str:
        """The auth mode, as ``ondata serve`` prints it at start."""
        if not self.configured:
            return "none: no key or token is checked; every caller sees public chunks only"
        parts = []
        if self.keys is not None:
            parts.append(f"API keys from {self.keys.path} ({len(self.keys.entries)} keys)")
        if self.shared_key is not None:
            trusted = self.shared_key_groups is ALL_GROUPS
            parts.append("a shared API key (" + ("trusted: every group" if trusted else "public chunks only") + ")")
        if self.tokens is not None:
            parts.append(f"bearer tokens from issuer {self.tokens.issuer}")
        return "; ".join(parts)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if not self.configured:
            return ANONYMOUS
        credential = headers.get("api-key")
        if credential is None:
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                credential = auth[7:].strip()
        if not credential:
            raise AuthenticationFailed("no api-key header and no bearer token")
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise AuthenticationFailed("the credential is too long")
        if self.tokens is not None and looks_like_jwt(credential):
            return self.tokens.principal_for(credential)
        if self.keys is not None:
            self.keys = self.keys.current()
            found = self.keys.principal_for(credential)
            if found is not None:
                return found
        if self.shared_key is not None and hmac.compare_digest(
                credential.encode("utf-8", "surrogatepass"), self.shared_key.encode("utf-8", "surrogatepass")):
            return Principal("shared-key", self.shared_key_groups, "shared-key")
        raise AuthenticationFailed("unknown key")
