"""The README's HS256 snippets (PyJWT, then python-jose), exactly as printed, against a
real tokengate on its zero-configuration HS256 secret: they verify a real token and read
the user; they refuse a tampered token and a token for another audience; and the
tutorial's bare `jwt.decode(token, SECRET_KEY, algorithms=["HS256"])` fails as the
README says it does."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import jose.exceptions
import jwt
import pytest

from test_resource_server import PASSWORD, Tokengate, tamper

README = Path(__file__).resolve().parents[2] / "README.md"


def snippets() -> list[str]:
    """The `python` blocks of the README's FastAPI section that decode a token."""
    text = README.read_text()
    section = text.split("## Coming from the FastAPI tutorial", 1)[1].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", section, re.S)]
    return [b for b in blocks if "jwt.decode(" in b]


def run_snippet(snippet: str, token: str, folder: str) -> dict:
    """Run `snippet` with `token` defined, in `folder` (where tokengate.secret is)."""
    scope = {"token": token}
    here = os.getcwd()
    os.chdir(folder)
    try:
        exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 - our own README
    finally:
        os.chdir(here)
    return scope


@pytest.fixture
def hs256():
    tg = Tokengate("HS256")
    user = tg.post("/auth/register", {"username": "alzy", "email": "alzy@example.com", "password": PASSWORD})
    yield tg, user
    tg.stop()


def test_the_readme_has_one_snippet_per_library():
    found = snippets()
    assert len(found) == 2, found
    assert "import jwt  # PyJWT" in found[0]
    assert "from jose import jwt  # python-jose" in found[1]
    for s in found:
        assert 'audience="tokengate"' in s and 'issuer="tokengate"' in s
        assert len(s.strip().splitlines()) <= 5


@pytest.mark.parametrize("library", [0, 1], ids=["PyJWT", "python-jose"])
def test_each_snippet_verifies_a_real_token_and_names_the_user(hs256, library):
    tg, user = hs256
    snippet = snippets()[library]
    scope = run_snippet(snippet, tg.login("alzy"), tg.dir.name)
    assert scope["user_id"] == user["id"]
    assert scope["username"] == "alzy"
    assert scope["claims"]["type"] == "access"
    with pytest.raises((jwt.PyJWTError, jose.exceptions.JOSEError)):
        run_snippet(snippet, tamper(tg.login("alzy")), tg.dir.name)


@pytest.mark.parametrize("library", [0, 1], ids=["PyJWT", "python-jose"])
def test_a_token_for_another_audience_is_refused(library):
    tg = Tokengate("HS256", TOKENGATE_AUDIENCE="billing")
    try:
        tg.post("/auth/register", {"username": "alzy", "email": "alzy@example.com", "password": PASSWORD})
        with pytest.raises((jwt.InvalidAudienceError, jose.exceptions.JWTClaimsError)):
            run_snippet(snippets()[library], tg.login("alzy"), tg.dir.name)
    finally:
        tg.stop()


def test_the_tutorials_bare_decode_fails_on_the_audience(hs256):
    tg, _ = hs256
    secret = (Path(tg.dir.name) / "tokengate.secret").read_text().strip()
    token = tg.login("alzy")
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, secret, algorithms=["HS256"])
    with pytest.raises(jose.exceptions.JWTClaimsError):
        from jose import jwt as jose_jwt

        jose_jwt.decode(token, secret, algorithms=["HS256"])
