#!/usr/bin/env bash
# Starts the demo: two local MariaDB shards of keyspace `commerce`, one unsharded keyspace `main`,
# sample data, shardgate on 127.0.0.1:15306. Ctrl-C stops everything and removes the data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --quiet -- demo "$@"
