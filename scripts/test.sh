#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests, planner golden files, and the
# end-to-end and differential tests over real MariaDB servers that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
