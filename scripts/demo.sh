#!/usr/bin/env bash
# Starts the demo: two local MariaDB shards of keyspace `commerce`, one unsharded keyspace `main`,
# sample data, shardgate on 127.0.0.1:15306. Ctrl-C stops everything and removes the data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# SHARDGATE_BIN: a shardgate already built (the test of this script uses its own build).
if [ -n "${SHARDGATE_BIN:-}" ]; then
  exec "$SHARDGATE_BIN" demo "$@"
fi
exec cargo run --release --quiet -- demo "$@"
