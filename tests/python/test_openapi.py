"""`GET /openapi.json`: a valid OpenAPI document, generated from the code that routes,
covering every route of the HTTP reference (docs/http-api.md) and nothing unrouted."""

from __future__ import annotations

import gzip
import re

from openapi_spec_validator import validate

from conftest import ROOT

# Pages and machine endpoints that are not part of the JSON API.
NOT_API = {"/account", "/docs", "/openapi.json", "/metrics", "/oauth/authorize", "/oauth/logout"}


def reference_routes() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "http-api.md").read_text()
    found = set(re.findall(r"`(GET|POST|PATCH|DELETE|PUT) (/[^`\s]*)`", text))
    return {(m.lower(), p) for m, p in found if p not in NOT_API}


def test_the_document_validates(tokengate):
    res = tokengate.request("GET", "/openapi.json")
    assert res.status == 200
    assert res.headers["Content-Type"] == "application/json"
    doc = res.json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_security_schemes_let_swagger_authorize_with_a_password(tokengate):
    doc = tokengate.request("GET", "/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    password = schemes["OAuth2PasswordBearer"]["flows"]["password"]
    assert password["tokenUrl"] == "/auth/login"
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    me = doc["paths"]["/me"]["get"]
    assert {"OAuth2PasswordBearer": []} in me["security"]


def test_login_takes_a_form_and_json_and_errors_have_their_shapes(tokengate):
    doc = tokengate.request("GET", "/openapi.json").json()
    login = doc["paths"]["/auth/login"]["post"]
    content = login["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    # The token endpoint: the password grant, or the refresh grant (RFC 6749 section 6).
    schema = doc["components"]["schemas"]["LoginRequest"]
    assert {"grant_type", "username", "password", "refresh_token"} <= set(schema["properties"])
    assert "refresh_token" in schema["properties"]["grant_type"]["pattern"]
    responses = login["responses"]
    ref = lambda status: responses[status]["content"]["application/json"]["schema"]["$ref"]
    assert ref("200").endswith("/TokenResponse")
    # Errors carry RFC 6749's `error` beside FastAPI's `detail`.
    for status in ("400", "401", "403"):
        assert ref(status).endswith("/OAuthErrorBody"), status
    assert ref("422").endswith("/OAuthValidationBody")
    oauth = doc["components"]["schemas"]["OAuthErrorBody"]
    assert {"detail", "error"} <= set(oauth["required"])
    assert "Retry-After" in responses["429"]["headers"]
    # The cookie login takes the password grant's fields only, both required.
    cookie = doc["paths"]["/auth/cookie/login"]["post"]["requestBody"]["content"]
    ref = cookie["application/x-www-form-urlencoded"]["schema"]["$ref"]
    assert {"username", "password"} <= set(doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["required"])


def test_every_reference_route_is_documented(tokengate):
    doc = tokengate.request("GET", "/openapi.json").json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    missing = reference_routes() - documented
    assert not missing, f"in docs/http-api.md but not in /openapi.json: {sorted(missing)}"
    # Forward-auth takes any method; the reference names it once, so compare paths.
    undocumented = set(doc["paths"]) - {p for _, p in reference_routes()}
    assert not undocumented, f"in /openapi.json but not in docs/http-api.md: {sorted(undocumented)}"


def test_every_documented_operation_is_routed(tokengate):
    doc = tokengate.request("GET", "/openapi.json").json()
    for path, ops in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)
        for method in ops:
            res = tokengate.request(method.upper(), concrete)
            # Without credentials or a body, every route answers its own refusal; only
            # an unrouted path or method would be 404 Not Found / 405.
            unrouted = res.status == 405 or (res.status == 404 and res.body == b'{"detail":"Not Found"}')
            assert not unrouted, f"{method.upper()} {path} -> {res.status}"


def decoded(res):
    """The body as the browser sees it: the UI's files are stored and sent gzipped."""
    return gzip.decompress(res.body) if res.headers.get("Content-Encoding") == "gzip" else res.body


def test_docs_page_is_served_from_the_binary_under_a_strict_csp(tokengate):
    res = tokengate.request("GET", "/docs/")
    assert res.status == 200
    csp = res.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    # No inline script or style at large: Swagger UI's one inline style is allowed by
    # its hash alone ('unsafe-hashes' admits only hashed attribute styles).
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert re.search(r"style-src 'self' 'unsafe-hashes' 'sha256-[A-Za-z0-9+/=]{44}';", csp), csp
    html = decoded(res).decode()
    assert "http://" not in html and "https://" not in html.replace("https://swagger.io", "")
    for asset in re.findall(r'(?:src|href)="\./?([^"]+)"', html):
        got = tokengate.request("GET", f"/docs/{asset}")
        assert got.status == 200, asset
        assert decoded(got), asset
    bundle = tokengate.request("GET", "/docs/swagger-ui-bundle.js")
    assert bundle.headers.get("Content-Encoding") == "gzip"
    assert b"SwaggerUIBundle" in decoded(bundle)
    init = decoded(tokengate.request("GET", "/docs/swagger-initializer.js")).decode()
    assert '"/openapi.json"' in init
