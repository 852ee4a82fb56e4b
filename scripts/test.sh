#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests, planner golden files, and the
# end-to-end and differential tests over real MariaDB servers that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A single full build: incremental state would only add gigabytes to the target directory.
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# An upper bound for the whole run: a hung test fails the suite instead of holding CI. Each test
# bounds its own waits too, and names what it waited for.
timeout --kill-after=30s "${SHARDGATE_TEST_TIMEOUT:-40m}" \
  cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
