"""A standard OAuth2 client library (oauthlib through requests-oauthlib, as Postman and
many Python services use) against the first-party token endpoint (`/auth/login`, the
FastAPI tutorial's `tokenUrl`): password grant, a resource request with its token,
refresh through the library, and reuse of a spent refresh token refused in the error
format the library reads. (Discovery's `token_endpoint` is the provider's, for
registered applications: test_oidc_authlib.py.)"""

import os

import pytest
from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from conftest import PASSWORD

# oauthlib refuses plain http unless told: the test server listens on loopback.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def token_endpoint(tokengate) -> str:
    return f"{tokengate.base}/auth/login"


def test_password_grant_resource_request_refresh_and_reuse(tokengate):
    tokengate.register("oauth-user")
    url = token_endpoint(tokengate)
    assert url.endswith("/auth/login")
    session = OAuth2Session(client=LegacyApplicationClient(client_id="tokengate-test"))
    token = session.fetch_token(token_url=url, username="oauth-user", password=PASSWORD)
    assert token["token_type"].lower() == "bearer"
    first_refresh = token["refresh_token"]

    me = session.get(f"{tokengate.base}/me")
    assert me.status_code == 200
    assert me.json()["username"] == "oauth-user"

    rotated = session.refresh_token(url)
    assert rotated["refresh_token"] != first_refresh
    assert session.get(f"{tokengate.base}/me").status_code == 200

    # The spent token again: the library raises the RFC 6749 error, and the session
    # the token belonged to is over.
    with pytest.raises(InvalidGrantError):
        session.refresh_token(url, refresh_token=first_refresh)
    assert session.get(f"{tokengate.base}/me").status_code == 401


def test_wrong_password_is_an_invalid_grant_for_the_library(tokengate):
    tokengate.register("oauth-user2")
    session = OAuth2Session(client=LegacyApplicationClient(client_id="tokengate-test"))
    with pytest.raises(InvalidGrantError) as refused:
        session.fetch_token(token_url=token_endpoint(tokengate), username="oauth-user2", password="wrong-one")
    assert "Incorrect username or password" in str(refused.value.description)
