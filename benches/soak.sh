#!/usr/bin/env bash
# The soak run (not CI): 500 clients for 5 minutes against shardgate on two local MariaDB shards,
# one shard restarted twice; checks that no acknowledged insert is lost and that only statements
# on the restarted shard failed, and reports the proxy's RSS. Loopback only; stops by itself.
#   benches/soak.sh [--seconds=300] [--clients=500]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo bench --bench soak -- "$@"
