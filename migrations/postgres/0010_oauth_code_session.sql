-- The browser session an authorization code was issued in: the code is exchanged only
-- while that session lives (a sign-out, everywhere or here, takes its codes along).
ALTER TABLE oauth_codes ADD COLUMN browser_session_id TEXT;
