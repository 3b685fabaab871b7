// WebAuthn in the browser: the server's options (JSON, binary members base64url) to
// what navigator.credentials takes, and its answer back to JSON (toJSON()'s shape).
// The browser's own parse*FromJSON / toJSON where it has them; the same by hand where
// it has not.
"use strict";

const passkeysSupported = () => typeof window.PublicKeyCredential === "function";

function fromB64url(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function creationOptions(json) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  const o = structuredClone(json);
  o.challenge = fromB64url(o.challenge);
  o.user.id = fromB64url(o.user.id);
  for (const c of o.excludeCredentials || []) c.id = fromB64url(c.id);
  return o;
}

function requestOptions(json) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  const o = structuredClone(json);
  o.challenge = fromB64url(o.challenge);
  for (const c of o.allowCredentials || []) c.id = fromB64url(c.id);
  return o;
}

function credentialJson(cred) {
  if (typeof cred.toJSON === "function") return cred.toJSON();
  const r = cred.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
  }
  return {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    response,
    clientExtensionResults: cred.getClientExtensionResults(),
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
  };
}

// navigator.credentials.create() for the server's `publicKey`: the answer as JSON.
async function passkeyCreate(publicKey) {
  const cred = await navigator.credentials.create({ publicKey: creationOptions(publicKey) });
  return credentialJson(cred);
}

// navigator.credentials.get() for the server's `publicKey` (`mediation: "conditional"`
// offers the passkeys in the username field's autofill): the answer as JSON.
async function passkeyGet(publicKey, mediation, signal) {
  const options = { publicKey: requestOptions(publicKey) };
  if (mediation) options.mediation = mediation;
  if (signal) options.signal = signal;
  const cred = await navigator.credentials.get(options);
  return credentialJson(cred);
}

// Whether this browser offers passkeys in autofill (conditional UI).
async function conditionalUiAvailable() {
  return (
    passkeysSupported() &&
    typeof PublicKeyCredential.isConditionalMediationAvailable === "function" &&
    (await PublicKeyCredential.isConditionalMediationAvailable())
  );
}
