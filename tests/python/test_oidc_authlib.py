"""A relying party in another language, from a library no one here wrote (Authlib):
the authorization code flow with PKCE against a real `tokengate serve`, the id_token
checked with joserfc (Authlib's JOSE) against the published JWKS (signature, iss, aud, nonce),
userinfo, refresh, and revocation."""

from __future__ import annotations

import http.cookiejar
import subprocess
import urllib.request
from urllib.parse import parse_qs, urlparse

import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from conftest import BIN, PASSWORD

CALLBACK = "http://127.0.0.1:8765/callback"


def register_client(tg, *extra: str) -> tuple[str, str | None]:
    """`tokengate client create` on the server's own database; the id and secret."""
    out = subprocess.run(
        [BIN, "client", "create", "--name", "Authlib app", "--redirect-uri", CALLBACK,
         "--scope", "openid", "--scope", "profile", "--scope", "email", *extra],
        cwd=tg.dir.name, env=tg.env, check=True, capture_output=True, text=True,
    ).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return fields["client_id"], fields.get("client_secret")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def browser(tg, username: str):
    """A browser signed in on the account page (its cookie session), that stops at
    redirects so the test reads them."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    req = urllib.request.Request(
        f"{tg.base}/auth/cookie/login",
        data=f'{{"username": "{username}", "password": "{PASSWORD}"}}'.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    assert opener.open(req).status == 200
    # The cookies are Secure; this browser is on loopback http, as the test server is.
    for cookie in jar:
        cookie.secure = False
    return opener


def follow(opener, url: str) -> str:
    """Open `url` in the browser; where it is sent (the app's callback)."""
    try:
        res = opener.open(url)
    except urllib.error.HTTPError as e:
        assert e.code in (302, 303), e.code
        return e.headers["Location"]
    raise AssertionError(f"no redirect: {res.status}")


@pytest.mark.parametrize("public", [False, True])
def test_code_flow_with_pkce_id_token_userinfo_refresh_and_revocation(tokengate, public):
    tokengate.register("authlib-user")
    client_id, secret = register_client(tokengate, "--trusted", *(["--public"] if public else []))
    discovery = tokengate.request("GET", "/.well-known/openid-configuration").json()
    assert discovery["issuer"] == tokengate.base
    session = OAuth2Session(
        client_id,
        secret,
        scope="openid profile email",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="none" if public else "client_secret_basic",
    )
    verifier = "authlib-verifier-" + "v" * 40
    url, state = session.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6_WzA2Mj"
    )
    callback = follow(browser(tokengate, "authlib-user"), url)
    assert callback.startswith(CALLBACK)
    query = parse_qs(urlparse(callback).query)
    assert query["state"] == [state]
    assert query["iss"] == [discovery["issuer"]]
    token = session.fetch_token(
        discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer"

    jwks = tokengate.request("GET", "/.well-known/jwks.json").json()
    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": discovery["issuer"]},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": "n-0S6_WzA2Mj"},
        exp={"essential": True},
    ).validate(id_token.claims)
    claims = id_token.claims
    assert claims["email"] == "authlib-user@example.com"
    assert id_token.header["alg"] == "RS256"

    info = session.get(discovery["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"]
    assert info["preferred_username"] == "authlib-user"

    refreshed = session.refresh_token(discovery["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert session.get(discovery["userinfo_endpoint"]).status_code == 200

    session.revoke_token(discovery["revocation_endpoint"], refreshed["refresh_token"])
    assert session.get(discovery["userinfo_endpoint"]).status_code == 401


def test_a_code_for_another_redirect_uri_or_a_wrong_verifier_is_refused(tokengate):
    tokengate.register("authlib-user2")
    client_id, secret = register_client(tokengate, "--trusted")
    discovery = tokengate.request("GET", "/.well-known/openid-configuration").json()
    session = OAuth2Session(client_id, secret, scope="openid", redirect_uri=CALLBACK, code_challenge_method="S256")
    verifier = "authlib-verifier-" + "w" * 40
    url, _ = session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier)
    assert "code_challenge=" + create_s256_code_challenge(verifier) in url
    callback = follow(browser(tokengate, "authlib-user2"), url)
    with pytest.raises(Exception) as refused:
        session.fetch_token(
            discovery["token_endpoint"], authorization_response=callback, code_verifier="x" * 43
        )
    assert "invalid_grant" in str(refused.value)
