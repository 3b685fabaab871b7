// The pages a mailed link opens: /account/verify, /account/reset, /account/magic. The
// token is in the fragment (#token=...), which no server and no Referer sees; the page
// takes it out of the address bar and history at once, and spends it only when the
// user submits the form (a mail scanner that opens the link spends nothing).
// (common.js comes first.)
"use strict";

const PAGE = window.location.pathname.replace(/\/$/, "").split("/").pop();

function takeToken() {
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token") || "";
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return token;
}

const TOKEN = takeToken();

// The purposes of the tokens each page takes.
const PURPOSES = {
  verify: ["verify_email", "change_email"],
  reset: ["reset_password"],
  magic: ["magic_link"],
};

// Whose account the link acts on, as the server knows it (the fragment could say
// anything): a link someone else asked for is seen to be for their account.
const FOR_ACCOUNT = {
  verify: (name) => `This confirms that the address is the one of the account ${name}. If that is not your account, close this page.`,
  reset: (name) => `A new password for the account ${name}.`,
  magic: (name) => `This signs this browser in as ${name}. If that is not your account, close this page: someone else asked for this link.`,
};

function done(text) {
  $(PAGE).hidden = true;
  $("for-account").hidden = true;
  say(text, "ok");
}

async function verify(event) {
  event.preventDefault();
  $("verify-button").disabled = true;
  const res = await post("/auth/email/verify", { token: TOKEN });
  if (!res.ok) {
    $("verify-button").disabled = false;
    return say(await detail(res), "error");
  }
  const user = await res.json();
  done(`Your address ${user.email} is confirmed.`);
}

async function reset(event) {
  event.preventDefault();
  const res = await post("/auth/password/reset", { token: TOKEN, new_password: $("reset-password").value });
  $("reset-password").value = "";
  if (res.status !== 204) return say(await detail(res), "error");
  done("Your password is changed and every session of your account has ended. Sign in with the new one.");
}

async function signIn(event) {
  event.preventDefault();
  $("magic-button").disabled = true;
  const res = await post("/auth/cookie/magic-link/login", { token: TOKEN });
  if (!res.ok) {
    $("magic-button").disabled = false;
    return say(await detail(res), "error");
  }
  done("You are signed in.");
}

document.addEventListener("DOMContentLoaded", async () => {
  const forms = { verify, reset, magic: signIn };
  if (!(PAGE in forms)) return;
  if (!TOKEN) return say("This link is incomplete: open the whole link from the mail.", "error");
  // A read: nothing is spent until the form is sent.
  const res = await post("/auth/link/account", { token: TOKEN });
  if (!res.ok) return say(`${await detail(res)}: this link was used, has expired, or a newer one replaced it.`, "error");
  const link = await res.json();
  if (!PURPOSES[PAGE].includes(link.purpose)) return say("This link does not belong on this page.", "error");
  $("for-account").textContent = FOR_ACCOUNT[PAGE](link.username);
  $("for-account").hidden = false;
  $(PAGE).hidden = false;
  $(`${PAGE}-form`).addEventListener("submit", forms[PAGE]);
});
