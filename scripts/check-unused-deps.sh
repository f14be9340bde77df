#!/usr/bin/env bash
# Unused dependencies: cargo-machete over every crate (a dependency no source file of its crate
# names), plus `[workspace.dependencies]` entries that no crate takes. Fast (no build); run by
# scripts/test-rust.sh and `make lint`. A false positive goes into the crate's
# `[package.metadata.cargo-machete] ignored = [...]`, with a comment saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: a newer release may find more, and should come in by a change of this line.
MACHETE_VERSION=0.9.2
if [ "$(cargo machete --version 2>/dev/null)" != "$MACHETE_VERSION" ]; then
  echo "check-unused-deps: installing cargo-machete $MACHETE_VERSION from crates.io" >&2
  cargo install --locked --quiet cargo-machete --version "$MACHETE_VERSION"
fi
cargo machete

unused=()
for dep in $(sed -n '/^\[workspace\.dependencies\]/,/^\[/{s/^\([a-z0-9_-]*\) *=.*/\1/p}' Cargo.toml); do
  grep -Eq "^$dep( *=|\.workspace)" crates/*/Cargo.toml || unused+=("$dep")
done
if [ ${#unused[@]} -gt 0 ]; then
  echo "check-unused-deps: [workspace.dependencies] no crate uses: ${unused[*]}" >&2
  exit 1
fi
