#!/usr/bin/env bash
# The load benchmark: direct MariaDB vs a socat relay vs shardgate, sysbench workloads interleaved.
# Options pass through, e.g. benches/load/run.sh --rounds=3 --time=10 --threads=8,32
#   --workloads=point_select,read_only,read_write,insert,scatter --modes=auto,disable
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh
exec cargo bench --bench load -- "$@"
