-- POST /auth/login with the OAuth2 password form, the same credentials every time.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "username=benchuser&password=benchpass123"
