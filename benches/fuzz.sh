#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 120 s each) with cargo-fuzz on nightly, from
# a seed corpus of the differential statements, and reports executions and crashes. Not part of
# CI. A crash is saved under fuzz/artifacts/<target>/; turn it into a regression test.
#   benches/fuzz.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-120}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(plan protocol config)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal

# Seeds: every statement of the differential corpus, and the example configs.
mkdir -p corpus/plan corpus/config corpus/protocol
grep -v '^#' ../tests/corpus/differential.sql | sed 's/^refused: //; s/^error: //' |
  awk 'NF { print > sprintf("corpus/plan/seed-%04d", NR) }'
for f in ../config/*.toml; do cp "$f" "corpus/config/$(basename "$f")"; done
# And statements over the plan target's own tables (t, u, s sharded, r reference), for the
# rewrites that need known tables: unqualified columns, INSERT without columns, CTEs, UNION ALL.
i=0
while IFS= read -r sql; do
  i=$((i + 1))
  printf '%s' "$sql" >"corpus/plan/own-$i"
done <<'SQL'
SELECT name, email FROM t JOIN u ON u.id = t.v WHERE email > 'a' ORDER BY email, label LIMIT 3
SELECT v, score FROM u JOIN s ON s.name = u.email GROUP BY score HAVING COUNT(*) > 1
SELECT `name` * 2, UPPER(email) FROM t, u WHERE u.id = t.v
INSERT INTO t VALUES (1, 2, 'x'), (3, 4, 'y')
INSERT INTO u VALUES (NULL, 'e@x', 5)
WITH a AS (SELECT id, v FROM t WHERE v > 1), b AS (SELECT id FROM u) SELECT COUNT(*) FROM a JOIN b ON b.id = a.v
SELECT id FROM t UNION ALL SELECT id FROM r UNION ALL (SELECT id FROM u) ORDER BY id LIMIT 4
SELECT id, ROW_NUMBER() OVER (PARTITION BY id ORDER BY v) AS n FROM t ORDER BY n, id LIMIT 5
SQL

status=0
for target in "${targets[@]}"; do
  log="artifacts/$target.log"
  mkdir -p artifacts
  echo "== $target: ${seconds}s"
  if cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 >"$log" 2>&1; then
    echo "   no crash; $(grep -E '^#[0-9]+' "$log" | tail -1 | cut -d' ' -f1-9)"
  else
    echo "   CRASH (see $log and fuzz/artifacts/$target/)"
    status=1
  fi
done
exit $status
