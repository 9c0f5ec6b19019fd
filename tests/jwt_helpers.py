"""Test helpers (no tests here): a locally generated RSA key, its JWKS file, and tokens minted with it. No network."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://login.example.test/tenant-1/v2.0"
AUDIENCE = "api://ondata-test"


class TokenMint:
    """An RSA signing key with key id ``kid``; ``jwks(path)`` writes its public JWKS, ``token(...)`` signs claims."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self, path: Path) -> Path:
        path.write_text(json.dumps({"keys": [self.public_jwk()]}))
        return path

    def token(self, *, groups: Any = None, roles: Any = None, sub: str = "user-1", issuer: str = ISSUER,
              audience: str = AUDIENCE, expires_in: float = 600, extra: dict[str, Any] | None = None,
              kid: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": sub, "iat": now, "nbf": now - 5,
                                  "exp": now + int(expires_in)}
        if groups is not None:
            claims["groups"] = groups
        if roles is not None:
            claims["roles"] = roles
        claims.update(extra or {})
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid})
