#!/usr/bin/env bash
# What a WebAuthn relying-party crate costs before it is chosen: each candidate in a
# scratch binary of its own (a cold release build in a fresh target folder, one at a
# time), with its dependency count and binary size, and what it adds to tokengate's
# tree (crates, and crate versions built twice). Needs the network for crates.io.
#   bench/rp_crates.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scratch=$(mktemp -d)
cp Cargo.toml "$scratch/Cargo.toml.orig"
cp Cargo.lock "$scratch/Cargo.lock.orig"
# tokengate's manifest and lock file are edited for a moment: always put back.
restore() {
  cp "$scratch/Cargo.toml.orig" "$repo/Cargo.toml"
  cp "$scratch/Cargo.lock.orig" "$repo/Cargo.lock"
}
trap 'restore; rm -rf "$scratch"' EXIT

candidate() { # name, dependency line, main.rs
  local name=$1 dep=$2 main=$3
  cargo new -q "$scratch/$name"
  printf '%s\n' "$dep" >>"$scratch/$name/Cargo.toml"
  printf '%s\n' "$main" >"$scratch/$name/src/main.rs"
  local started=$SECONDS
  (cd "$scratch/$name" && cargo build -q --release)
  local secs=$((SECONDS - started))
  local crates
  crates=$(cd "$scratch/$name" && cargo tree -e normal --prefix none | sort -u | wc -l)
  local size
  size=$(stat -c %s "$scratch/$name/target/release/$name")
  # Added to tokengate: its tree (normal and build dependencies, every target) with the
  # candidate, against with no RP crate at all.
  local before after dups_before dups_after
  sed -i '/^webauthn-rs = /d; /^webauthn_rp = /d' Cargo.toml
  before=$(cargo tree -e normal,build --target all --prefix none | sort -u | wc -l)
  dups_before=$(cargo tree -d -e normal --target all --depth 0 | grep -c '^[a-z]' || true)
  sed -i "s|^\[dependencies\]|[dependencies]\n$dep|" Cargo.toml
  after=$(cargo tree -e normal,build --target all --prefix none | sort -u | wc -l)
  dups_after=$(cargo tree -d -e normal --target all --depth 0 | grep -c '^[a-z]' || true)
  restore
  echo "$name: cold release build ${secs} s, ${crates} crates, binary ${size} bytes; in tokengate: $((after - before)) more crates, $((dups_after - dups_before)) more duplicated versions"
}

candidate webauthn_rs_0_6 \
  'webauthn-rs = { version = "0.6.2", default-features = false, features = ["danger-allow-state-serialisation", "conditional-ui"] }' \
  'use webauthn_rs::prelude::*;
fn main() {
    let origin = Url::parse("http://localhost:8000").unwrap();
    let w = WebauthnBuilder::new("localhost", &origin).unwrap().build().unwrap();
    let (ccr, _state) = w.start_passkey_registration(Uuid::nil(), "a", "a", None).unwrap();
    println!("{}", ccr.public_key.challenge.len());
}'
candidate webauthn_rp_0_3 \
  'webauthn_rp = { version = "0.3", default-features = false, features = ["serde", "serializable_server_state"] }' \
  'fn main() {
    let id = webauthn_rp::request::AsciiDomain::try_from("localhost".to_owned()).unwrap();
    println!("{id:?}");
}'
