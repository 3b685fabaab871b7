// What the account page and the pages that mail links open share: their base path,
// the CSRF cookie, error details, the status line.
"use strict";

const $ = (id) => document.getElementById(id);

// The routes sit beside these pages (/account, /account/verify, ...): under
// TOKENGATE_PATH_PREFIX when one is set.
const BASE = window.location.pathname.replace(/\/account(\/[a-z]+)?\/?$/, "");

function csrfToken() {
  // Exact names only, the __Host- one first: a sibling subdomain can plant a plain
  // `tokengate_csrf` cookie, never a __Host- one.
  const jar = {};
  for (const part of document.cookie.split(";")) {
    const at = part.indexOf("=");
    const name = part.slice(0, at).trim();
    if (at > 0 && !(name in jar)) jar[name] = part.slice(at + 1).trim();
  }
  return jar["__Host-tokengate_csrf"] || jar["tokengate_csrf"] || "";
}

async function detail(res) {
  try {
    const j = await res.json();
    if (typeof j.detail === "string") return j.detail;
    return (j.detail || []).map((e) => e.msg).join("; ");
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

function say(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}


// A JSON POST that needs no session (sign-in, registration, the mailed links); the
// cookie routes among them set this browser's cookies.
function post(path, body) {
  return fetch(BASE + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body),
  });
}
