"""TOTP as a real authenticator app computes it: pyotp (an implementation no one here
wrote) reads the otpauth:// URI the enrolment answers, and its codes confirm the
factor and complete a sign-in; a code is accepted once, and the sign-in's token says
how the user signed in."""

import base64
import json
import subprocess
import time

import pyotp

from conftest import BIN, PASSWORD


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_an_authenticator_app_enrols_from_the_uri_and_signs_in(tokengate):
    tokengate.register("app-user")
    # MFA wants a proven address: the operator vouches for it (the user could open the
    # link the registration mailed instead).
    subprocess.run(
        [BIN, "user", "verify-email", "--username", "app-user"],
        cwd=tokengate.dir.name, env=tokengate.env, check=True, capture_output=True,
    )
    access = tokengate.login("app-user").json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}

    enrol = tokengate.request("POST", "/auth/mfa/totp", {"password": PASSWORD}, headers=auth)
    assert enrol.status == 200, enrol.body
    body = enrol.json()
    app = pyotp.parse_uri(body["otpauth_uri"])
    assert isinstance(app, pyotp.TOTP)
    assert app.secret == body["secret"]
    assert (app.digits, app.interval, app.name) == (6, 30, "app-user")
    assert app.issuer
    assert "<svg" in body["qr_svg"]

    now = time.time()
    confirmed = tokengate.request("POST", "/auth/mfa/totp/confirm", {"code": app.at(now)}, headers=auth)
    assert confirmed.status == 200, confirmed.body
    assert len(confirmed.json()["recovery_codes"]) == 10

    # The password alone: 403 mfa_required, nothing issued.
    first = tokengate.login("app-user")
    assert first.status == 403
    challenge = first.json()
    assert challenge["error"] == "mfa_required"
    assert "access_token" not in challenge

    # The confirming code was spent; the app's next code (within the window) works.
    again = tokengate.request(
        "POST", "/auth/login/mfa", {"mfa_token": challenge["mfa_token"], "code": app.at(now)}
    )
    assert again.status == 401, again.body
    done = tokengate.request(
        "POST", "/auth/login/mfa", {"mfa_token": challenge["mfa_token"], "code": app.at(now + 30)}
    )
    assert done.status == 200, done.body
    token = done.json()["access_token"]
    assert claims(token)["amr"] == ["pwd", "otp", "mfa"]
    me = tokengate.request("GET", "/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200

    # The same code on a fresh sign-in: refused (accepted once per account).
    second = tokengate.login("app-user").json()
    replay = tokengate.request(
        "POST", "/auth/login/mfa", {"mfa_token": second["mfa_token"], "code": app.at(now + 30)}
    )
    assert replay.status == 401
    assert replay.json()["detail"] == "Invalid MFA code"
