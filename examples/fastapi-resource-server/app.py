"""A FastAPI resource server protected by tokengate.

It never sees a password or a signing key: it verifies tokengate's EdDSA / ES256 /
RS256 access tokens with the public keys from tokengate's JWKS (PyJWT's PyJWKClient;
tokengate publishes a new key before it signs with it, so rotations need no restart
or coordination here).
It checks the signature with the algorithm pinned per key, and `iss`, `aud`, `exp`,
`type`, and, for the admin route, the `admin` role.

Run it next to a tokengate started with TOKENGATE_ALGORITHM=EdDSA (or ES256, RS256):

    TOKENGATE_URL=http://127.0.0.1:8000 uvicorn app:app --port 9000

A JWT stays valid until `exp` (15 minutes by default) even after a logout; a route that
must see logouts at once asks tokengate instead (`GET /auth/verify`, or nginx's
`auth_request` in front of this app; see tokengate's README).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# Only asymmetric algorithms through the JWKS: the keys published there can verify, never
# sign. (A single service trusted as much as tokengate may instead share the HS256
# secret: tokengate's README gives the PyJWT and python-jose lines, tested in
# test_hs256_snippets.py.)
ALLOWED_ALGORITHMS = {"EdDSA", "ES256", "RS256"}


def create_app(
    tokengate_url: str,
    issuer: str = "tokengate",
    audience: str = "tokengate",
    jwks_cache_seconds: int = 300,
) -> FastAPI:
    # tokengate publishes a rotated-in key for as long as its JWKS may be cached
    # (Cache-Control max-age, at most 300 s) before signing with it: keep this cache
    # no longer than that, and new tokens always find their key.
    jwks = jwt.PyJWKClient(
        f"{tokengate_url.rstrip('/')}/.well-known/jwks.json", cache_keys=True, lifespan=jwks_cache_seconds
    )
    bearer = HTTPBearer(auto_error=False)
    app = FastAPI(title="resource server protected by tokengate")

    def unauthorized(detail: str) -> HTTPException:
        return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})

    def claims(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict[str, Any]:
        if creds is None:
            raise unauthorized("Not authenticated")
        token = creds.credentials
        try:
            key = jwks.get_signing_key_from_jwt(token)
            if key.algorithm_name not in ALLOWED_ALGORITHMS:
                raise unauthorized("Could not validate credentials")
            decoded = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],  # pinned by the key, never by the token
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError):
            raise unauthorized("Could not validate credentials") from None
        if decoded.get("type") != "access":
            raise unauthorized("Could not validate credentials")
        return decoded

    def require_role(role: str) -> Callable[..., dict[str, Any]]:
        def check(c: dict[str, Any] = Depends(claims)) -> dict[str, Any]:
            if role not in c.get("roles", []):
                raise HTTPException(status.HTTP_403_FORBIDDEN, "Insufficient role")
            return c

        return check

    @app.get("/hello")
    def hello(c: dict[str, Any] = Depends(claims)) -> dict[str, Any]:
        return {"hello": c["sub"], "roles": c.get("roles", [])}

    @app.get("/admin/report")
    def report(c: dict[str, Any] = Depends(require_role("admin"))) -> dict[str, Any]:
        return {"report": "for admins only", "by": c["sub"]}

    return app


app = create_app(
    os.environ.get("TOKENGATE_URL", "http://127.0.0.1:8000"),
    os.environ.get("TOKENGATE_ISSUER", "tokengate"),
    os.environ.get("TOKENGATE_AUDIENCE", "tokengate"),
)
