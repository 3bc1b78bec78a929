"""Short-lived access tokens (JWT, HS256). Pure: no database, no web framework.

The signing key is derived from ``CRP_SECRET_KEY`` (SHA-256 of a label and the secret), so it
is always 32 bytes and never the secret itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "crp-server"
KEY_LABEL = b"crp/jwt/v1:"
LEEWAY_S = 0


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    username: str
    role: str
    artisan_id: int | None
    site: str | None
    version: int
    expires_at: int


class TokenExpired(ValueError):
    pass


class TokenInvalid(ValueError):
    pass


def signing_key(secret: str) -> bytes:
    return hashlib.sha256(KEY_LABEL + secret.encode("utf-8")).digest()


def issue_token(secret: str, *, user_id: int, username: str, role: str, artisan_id: int | None,
                site: str | None, version: int, now_s: int, ttl_s: int) -> tuple[str, int]:
    """A signed token valid from ``now_s`` for ``ttl_s`` seconds; returns (token, exp)."""
    exp = now_s + ttl_s
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": str(user_id),
        "name": username,
        "role": role,
        "art": artisan_id,
        "site": site,
        "ver": version,
        "iat": now_s,
        "exp": exp,
    }
    return jwt.encode(claims, signing_key(secret), algorithm=ALGORITHM), exp


def read_token(secret: str, token: str, now_s: int | None = None) -> TokenClaims:
    """Check signature, issuer and expiry. Raises :class:`TokenExpired` or :class:`TokenInvalid`."""
    options = {"require": ["exp", "iat", "sub", "iss"]}
    try:
        if now_s is None:
            c = jwt.decode(token, signing_key(secret), algorithms=[ALGORITHM], issuer=ISSUER,
                           options=options, leeway=LEEWAY_S)
        else:
            c = jwt.decode(token, signing_key(secret), algorithms=[ALGORITHM], issuer=ISSUER,
                           options={**options, "verify_exp": False}, leeway=LEEWAY_S)
            if int(c["exp"]) <= now_s:
                raise TokenExpired("expired")
    except jwt.ExpiredSignatureError:
        raise TokenExpired("expired") from None
    except jwt.PyJWTError as e:
        raise TokenInvalid(str(e)) from None
    try:
        art = c.get("art")
        return TokenClaims(
            user_id=int(c["sub"]),
            username=str(c["name"]),
            role=str(c["role"]),
            artisan_id=int(art) if art is not None else None,
            site=c.get("site"),
            version=int(c["ver"]),
            expires_at=int(c["exp"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise TokenInvalid(f"claims: {e}") from None
