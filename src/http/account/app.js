// The account page: the cookie flow from a browser. Tokens stay in HttpOnly cookies
// this script cannot read; it reads only the CSRF cookie, and repeats it in the
// X-CSRF-Token header of every state-changing request. (common.js comes first.)
"use strict";

// fetch with cookies; on a 401, one silent cookie refresh, then one retry.
async function call(method, path, body, retry = true) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(BASE + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && retry && csrfToken()) {
    const refreshed = await fetch(BASE + "/auth/cookie/refresh", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    });
    if (refreshed.ok) return call(method, path, body, false);
  }
  return res;
}

// Signed out, the address's fragment picks the form: #register, #forgot, or sign-in.
function show(signedIn) {
  const form = signedIn ? "account" : { "#register": "register", "#forgot": "forgot" }[window.location.hash] || "signin";
  showOnly(form);
}

function showOnly(form) {
  for (const id of ["signin", "second-step", "register", "forgot", "account"]) $(id).hidden = id !== form;
}

// A sign-in whose password was right for an account with two-step sign-in: the token
// the code completes it with (kept here only, for five minutes at most).
let mfaToken = null;

// A code typed for step-up, or nothing (sent only when the account has MFA).
function code(id) {
  const v = $(id).value.trim();
  $(id).value = "";
  return v || undefined;
}

function when(iso) {
  return new Date(iso).toLocaleString();
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function loadSessions() {
  const res = await call("GET", "/auth/sessions");
  if (!res.ok) return say(await detail(res), "error");
  const tbody = $("sessions").querySelector("tbody");
  tbody.replaceChildren();
  const sessions = await res.json();
  // This browser first, then the others by last use (as the server orders them).
  sessions.sort((a, b) => Number(b.current) - Number(a.current));
  for (const s of sessions) {
    const tr = document.createElement("tr");
    tr.dataset.sessionId = s.id;
    if (s.current) tr.className = "current";
    // A chosen name is shown beside what the User-Agent says the device is, so a name
    // cannot pass a thief's session off as the owner's.
    const parsed = s.device || s.user_agent || "unknown device";
    const device = (s.device_name ? `${s.device_name} [${parsed}]` : parsed) + (s.current ? " (this browser)" : "");
    tr.append(cell(device), cell(s.ip || ""), cell(when(s.created_at)), cell(when(s.last_used_at)));
    const actions = document.createElement("td");
    if (!s.current) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "revoke";
      button.textContent = "Revoke";
      button.addEventListener("click", () => revoke(s.id));
      actions.append(button);
    }
    tr.append(actions);
    tbody.append(tr);
  }
}

// The apps (OAuth / OpenID Connect clients) the user allowed, each with a button that
// takes its access back: its tokens die at once.
async function loadApps() {
  const res = await call("GET", "/auth/consents");
  if (!res.ok) return say(await detail(res), "error");
  const apps = await res.json();
  const tbody = $("apps").querySelector("tbody");
  tbody.replaceChildren();
  $("apps").hidden = apps.length === 0;
  $("apps-none").hidden = apps.length !== 0;
  for (const a of apps) {
    const tr = document.createElement("tr");
    tr.dataset.clientId = a.client_id;
    tr.append(cell(a.client_name), cell(a.scopes.join(", ")), cell(when(a.created_at)));
    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "revoke-app";
    button.textContent = "Remove access";
    button.addEventListener("click", () => removeApp(a.client_id, a.client_name));
    actions.append(button);
    tr.append(actions);
    tbody.append(tr);
  }
}

async function removeApp(clientId, name) {
  const res = await call("DELETE", `/auth/consents/${encodeURIComponent(clientId)}`);
  if (res.status === 204) say(`${name} no longer has access; its sessions are over.`, "ok");
  else say(await detail(res), "error");
  await loadApps();
  await loadSessions();
}

// The caller's factors as last read.
let factors = { totp: false, passkeys: 0 };

async function loadMfa() {
  const res = await call("GET", "/auth/mfa");
  if (!res.ok) return say(await detail(res), "error");
  const mfa = await res.json();
  factors = mfa;
  const on = mfa.totp || mfa.passkeys > 0;
  const with_ = [mfa.totp ? "an authenticator app" : "", mfa.passkeys ? `${mfa.passkeys} passkey(s)` : ""]
    .filter(Boolean)
    .join(" and ");
  $("mfa-state").textContent = on
    ? `On, with ${with_}. Recovery codes left: ${mfa.recovery_codes_left}.`
    : "Off: your password alone signs you in.";
  $("mfa-required").hidden = !mfa.required;
  $("totp-begin-form").hidden = mfa.totp || !$("totp-enrol").hidden;
  $("mfa-manage").hidden = !on;
  $("totp-remove-form").hidden = !mfa.totp;
  for (const el of document.querySelectorAll(".mfa-only")) el.hidden = !on;
}

// Step-up for the passkey section: the password, and, once MFA is on, the code typed or
// else one of the caller's passkeys.
async function stepUp(password, typedCode) {
  const body = { password };
  if (typedCode) body.code = typedCode;
  else if (factors.passkeys > 0) {
    const start = await call("POST", "/auth/passkeys/step-up/start");
    if (!start.ok) throw new Error(await detail(start));
    const ceremony = await start.json();
    body.passkey = { ceremony_id: ceremony.ceremony_id, credential: await passkeyGet(ceremony.publicKey) };
  }
  return body;
}

async function loadPasskeys() {
  const res = await call("GET", "/auth/passkeys");
  if (!res.ok) return say(await detail(res), "error");
  const passkeys = await res.json();
  const tbody = $("passkeys").querySelector("tbody");
  tbody.replaceChildren();
  $("passkeys").hidden = passkeys.length === 0;
  $("passkey-add-form").hidden = !passkeysSupported();
  if (!passkeysSupported()) $("passkeys-state").textContent = "This browser cannot use passkeys.";
  for (const p of passkeys) {
    const tr = document.createElement("tr");
    tr.dataset.passkeyId = p.id;
    const name = document.createElement("input");
    name.value = p.name;
    name.maxLength = 64;
    name.className = "passkey-name";
    const nameCell = document.createElement("td");
    nameCell.append(name);
    tr.append(nameCell, cell(when(p.created_at)), cell(p.last_used_at ? when(p.last_used_at) : "never"));
    const actions = document.createElement("td");
    const rename = document.createElement("button");
    rename.type = "button";
    rename.className = "passkey-rename";
    rename.textContent = "Rename";
    rename.addEventListener("click", () => renamePasskey(p.id, name.value));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "passkey-remove danger";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => removePasskey(p.id));
    actions.append(rename, remove);
    tr.append(actions);
    tbody.append(tr);
  }
}

async function addPasskey(event) {
  event.preventDefault();
  try {
    const body = await stepUp($("passkey-password").value, code("passkey-code"));
    $("passkey-password").value = "";
    const start = await call("POST", "/auth/passkeys/register/start", body);
    if (!start.ok) return say(await detail(start), "error");
    const ceremony = await start.json();
    const credential = await passkeyCreate(ceremony.publicKey);
    const res = await call("POST", "/auth/passkeys/register/finish", {
      ceremony_id: ceremony.ceremony_id,
      credential,
      name: $("passkey-name").value,
    });
    if (res.status !== 201) return say(await detail(res), "error");
    const added = await res.json();
    $("passkey-name").value = "";
    if (added.recovery_codes) showRecoveryCodes(added.recovery_codes);
    say("Passkey added. Your other sessions are signed out.", "ok");
  } catch (e) {
    // The browser's dialog was cancelled or timed out: nothing was spent.
    return say(`No passkey was added: ${e.message}`, "error");
  }
  await loadMfa();
  await loadPasskeys();
  await loadSessions();
}

async function renamePasskey(id, name) {
  const res = await call("PATCH", `/auth/passkeys/${encodeURIComponent(id)}`, { name });
  if (res.ok) say("Passkey renamed.", "ok");
  else say(await detail(res), "error");
  await loadPasskeys();
}

async function removePasskey(id) {
  if (!$("passkey-password").value) return say("Type your current password above to remove a passkey.", "error");
  try {
    const body = await stepUp($("passkey-password").value, code("passkey-code"));
    $("passkey-password").value = "";
    const res = await call("DELETE", `/auth/passkeys/${encodeURIComponent(id)}`, body);
    if (res.status !== 204) return say(await detail(res), "error");
    say("Passkey removed. Your other sessions are signed out.", "ok");
  } catch (e) {
    return say(`Nothing was removed: ${e.message}`, "error");
  }
  await loadMfa();
  await loadPasskeys();
  await loadSessions();
}

// A passkey sign-in waiting in the username field's autofill (conditional UI), if any:
// the button or the password form cancels it first.
let conditional = null;

async function offerPasskeysInAutofill() {
  if (!(await conditionalUiAvailable())) return;
  conditional = new AbortController();
  const signal = conditional.signal;
  try {
    const start = await post("/auth/cookie/passkeys/login/start", {});
    if (!start.ok) return;
    const ceremony = await start.json();
    const credential = await passkeyGet(ceremony.publicKey, "conditional", signal);
    await finishPasskeySignIn(ceremony.ceremony_id, credential);
  } catch {
    // Cancelled (the user chose another way), or no passkey picked: nothing to say.
  }
}

function cancelAutofill() {
  if (conditional) conditional.abort();
  conditional = null;
}

async function finishPasskeySignIn(ceremonyId, credential) {
  const res = await post("/auth/cookie/passkeys/login/finish", { ceremony_id: ceremonyId, credential });
  if (!res.ok) return say(await detail(res), "error");
  await signedIn();
}

// "Sign in with a passkey", or "Use a passkey instead" at a sign-in's second step.
async function passkeySignIn(start) {
  cancelAutofill();
  try {
    const res = await post("/auth/cookie/passkeys/login/start", start);
    if (!res.ok) return say(await detail(res), "error");
    const ceremony = await res.json();
    const credential = await passkeyGet(ceremony.publicKey);
    await finishPasskeySignIn(ceremony.ceremony_id, credential);
  } catch (e) {
    say(`No passkey was used: ${e.message}`, "error");
  }
}

// Sent here by the authorization endpoint (an application's sign-in): where to go
// back once signed in (that endpoint of this server only, never elsewhere), and whether
// the application asked for a new sign-in even if this browser is signed in.
const CONTINUE = (() => {
  const raw = new URLSearchParams(window.location.search).get("continue");
  if (!raw) return null;
  try {
    const url = new URL(raw, window.location.origin);
    const ours = url.origin === window.location.origin && url.pathname === `${BASE}/oauth/authorize`;
    return ours ? url.href : null;
  } catch {
    return null;
  }
})();
let freshSignIn = CONTINUE !== null && new URLSearchParams(window.location.search).get("fresh") === "1";

// After a sign-in: a fresh one was had.
async function signedIn() {
  freshSignIn = false;
  mfaToken = null;
  say("Signed in.", "ok");
  await load();
}

async function load() {
  const res = await call("GET", "/me");
  if (!res.ok || freshSignIn) {
    show(false);
    if (freshSignIn && res.ok) say("The application asks you to sign in again.", "ok");
    return;
  }
  if (CONTINUE) {
    window.location.assign(CONTINUE);
    return;
  }
  const me = await res.json();
  const roles = me.roles.length ? me.roles.join(", ") : "none";
  $("whoami").textContent = `You are ${me.username} with roles: ${roles}`;
  $("unverified").hidden = me.email_verified;
  show(true);
  await loadMfa();
  await loadPasskeys();
  await loadSessions();
  await loadApps();
}

// The QR code, as the server drew it (an SVG document with no script), parsed rather
// than written as HTML.
function showQr(svgText) {
  const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
  $("totp-qr").replaceChildren(document.importNode(doc.documentElement, true));
}

async function beginTotp(event) {
  event.preventDefault();
  const res = await call("POST", "/auth/mfa/totp", { password: $("totp-begin-password").value });
  $("totp-begin-password").value = "";
  if (!res.ok) return say(await detail(res), "error");
  const enrolment = await res.json();
  showQr(enrolment.qr_svg);
  $("totp-secret").textContent = enrolment.secret;
  $("totp-enrol").hidden = false;
  $("totp-begin-form").hidden = true;
  say("Scan the code, then type the code the app shows.", "ok");
}

let recoveryCodes = [];

function showRecoveryCodes(codes) {
  recoveryCodes = codes;
  const list = $("recovery-list");
  list.replaceChildren();
  for (const c of codes) {
    const li = document.createElement("li");
    li.textContent = c;
    list.append(li);
  }
  $("recovery-codes").hidden = false;
}

async function confirmTotp(event) {
  event.preventDefault();
  const res = await call("POST", "/auth/mfa/totp/confirm", { code: code("totp-confirm-code") });
  if (!res.ok) return say(await detail(res), "error");
  showRecoveryCodes((await res.json()).recovery_codes);
  $("totp-enrol").hidden = true;
  $("totp-qr").replaceChildren();
  say("Two-step sign-in is on. Your other sessions are signed out.", "ok");
  await loadMfa();
  await loadSessions();
}

async function newRecoveryCodes(event) {
  event.preventDefault();
  const res = await call("POST", "/auth/mfa/recovery-codes", {
    password: $("recovery-password").value,
    code: code("recovery-code"),
  });
  $("recovery-password").value = "";
  if (!res.ok) return say(await detail(res), "error");
  showRecoveryCodes((await res.json()).recovery_codes);
  say("New recovery codes; the earlier ones no longer work.", "ok");
  await loadMfa();
}

async function removeTotp(event) {
  event.preventDefault();
  const res = await call("DELETE", "/auth/mfa/totp", {
    password: $("totp-remove-password").value,
    code: code("totp-remove-code"),
  });
  $("totp-remove-password").value = "";
  if (res.status !== 204) return say(await detail(res), "error");
  $("recovery-codes").hidden = true;
  say("Two-step sign-in is off. Your other sessions are signed out.", "ok");
  await loadMfa();
  await loadSessions();
}

function copyRecoveryCodes() {
  navigator.clipboard.writeText(recoveryCodes.join("\n")).then(
    () => say("Recovery codes copied.", "ok"),
    () => say("Copy them by hand: this browser refused the clipboard.", "error"),
  );
}

function downloadRecoveryCodes() {
  const file = new Blob([recoveryCodes.join("\n") + "\n"], { type: "text/plain" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(file);
  a.download = "recovery-codes.txt";
  a.click();
  URL.revokeObjectURL(a.href);
}

async function revoke(id) {
  const res = await call("DELETE", `/auth/sessions/${encodeURIComponent(id)}`);
  if (res.status === 204) say("Session revoked.", "ok");
  else say(await detail(res), "error");
  await loadSessions();
}

async function signIn(event) {
  event.preventDefault();
  cancelAutofill();
  const res = await post("/auth/cookie/login", { username: $("username").value, password: $("password").value });
  $("password").value = "";
  if (res.status === 403) {
    const body = await res.clone().json().catch(() => ({}));
    if (body.error === "mfa_required") {
      mfaToken = body.mfa_token;
      $("mfa-passkey").hidden = !(passkeysSupported() && (body.methods || []).includes("passkey"));
      showOnly("second-step");
      return say("Your password is right. Now the code.", "ok");
    }
  }
  if (!res.ok) return say(await detail(res), "error");
  await signedIn();
}

async function secondStep(event) {
  event.preventDefault();
  const res = await post("/auth/cookie/login/mfa", { mfa_token: mfaToken, code: code("mfa-code") });
  if (!res.ok) return say(await detail(res), "error");
  await signedIn();
}

async function register(event) {
  event.preventDefault();
  const username = $("new-username").value;
  const password = $("new-account-password").value;
  const res = await post("/auth/register", { username, email: $("new-email").value, password });
  if (res.status !== 201) return say(await detail(res), "error");
  $("new-account-password").value = "";
  // Signed in at once with what was just typed.
  const login = await post("/auth/cookie/login", { username, password });
  window.location.hash = "";
  if (!login.ok) {
    show(false);
    return say(`Account created; ${await detail(login)}`, "error");
  }
  freshSignIn = false;
  say("Account created. You are signed in. Open the link we mailed you to confirm your address.", "ok");
  await load();
}

async function forgot(event) {
  event.preventDefault();
  const res = await post("/auth/password/forgot", { email: $("forgot-email").value });
  // The same answer whether or not the address is an account's.
  if (res.status === 202) say(`${await detail(res)}. Open it in this browser or any other.`, "ok");
  else say(await detail(res), "error");
}

async function resendVerification() {
  const res = await call("POST", "/auth/email/verify/request");
  if (res.status === 202) say("A new link is on its way to your address.", "ok");
  else say(await detail(res), "error");
}

async function changeEmail(event) {
  event.preventDefault();
  const res = await call("POST", "/auth/email/change", {
    new_email: $("change-email").value,
    password: $("change-email-password").value,
    code: code("change-email-code"),
  });
  $("change-email-password").value = "";
  if (res.status === 202) say("Open the link we mailed to the new address to confirm it.", "ok");
  else say(await detail(res), "error");
}

async function changePassword(event) {
  event.preventDefault();
  const res = await call("POST", "/auth/password", {
    current_password: $("current-password").value,
    new_password: $("new-password").value,
    code: code("password-code"),
  });
  $("current-password").value = "";
  $("new-password").value = "";
  if (res.status === 204) say("Password changed. Your other sessions are signed out.", "ok");
  else say(await detail(res), "error");
  await loadSessions();
}

async function signOut() {
  await call("POST", "/auth/cookie/logout", undefined, false);
  show(false);
  say("Signed out.", "ok");
}

async function signOutEverywhere() {
  const res = await call("POST", "/auth/logout-all");
  // Drop this browser's (now dead) cookies too.
  await call("POST", "/auth/cookie/logout", undefined, false);
  show(false);
  if (res.status === 204) say("Signed out on every device.", "ok");
  else say(await detail(res), "error");
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("passkey-signin").hidden = !passkeysSupported();
  $("passkey-signin").addEventListener("click", () => passkeySignIn({}));
  $("mfa-passkey").addEventListener("click", () => passkeySignIn({ mfa_token: mfaToken }));
  $("passkey-add-form").addEventListener("submit", addPasskey);
  $("mfa-form").addEventListener("submit", secondStep);
  $("mfa-to-signin").addEventListener("click", () => {
    mfaToken = null;
    show(false);
  });
  $("totp-begin-form").addEventListener("submit", beginTotp);
  $("totp-confirm-form").addEventListener("submit", confirmTotp);
  $("recovery-form").addEventListener("submit", newRecoveryCodes);
  $("totp-remove-form").addEventListener("submit", removeTotp);
  $("recovery-copy").addEventListener("click", copyRecoveryCodes);
  $("recovery-download").addEventListener("click", downloadRecoveryCodes);
  $("register-form").addEventListener("submit", register);
  window.addEventListener("hashchange", () => {
    if ($("account").hidden) show(false);
  });
  $("forgot-form").addEventListener("submit", forgot);
  $("resend-verification").addEventListener("click", resendVerification);
  $("email-form").addEventListener("submit", changeEmail);
  $("password-form").addEventListener("submit", changePassword);
  $("signout").addEventListener("click", signOut);
  $("signout-all").addEventListener("click", signOutEverywhere);
  // Passkeys in the username field's autofill: begun when the field is first used, so
  // a page merely opened stores no ceremony (each counts against this network's budget).
  $("username").addEventListener("focus", offerPasskeysInAutofill, { once: true });
  load();
});
