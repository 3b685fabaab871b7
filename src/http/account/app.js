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
  for (const id of ["signin", "register", "forgot", "account"]) $(id).hidden = id !== form;
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

async function load() {
  const res = await call("GET", "/me");
  if (!res.ok) {
    show(false);
    return;
  }
  const me = await res.json();
  const roles = me.roles.length ? me.roles.join(", ") : "none";
  $("whoami").textContent = `You are ${me.username} with roles: ${roles}`;
  $("unverified").hidden = me.email_verified;
  show(true);
  await loadSessions();
}

async function revoke(id) {
  const res = await call("DELETE", `/auth/sessions/${encodeURIComponent(id)}`);
  if (res.status === 204) say("Session revoked.", "ok");
  else say(await detail(res), "error");
  await loadSessions();
}

async function signIn(event) {
  event.preventDefault();
  const res = await post("/auth/cookie/login", { username: $("username").value, password: $("password").value });
  $("password").value = "";
  if (!res.ok) return say(await detail(res), "error");
  say("Signed in.", "ok");
  await load();
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
  load();
});
