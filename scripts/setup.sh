#!/usr/bin/env bash
# Installs what shardgate's demo, tests and benchmarks need on Debian: MariaDB server and client,
# sysbench, socat (the load benchmark's relay), Chromium (the status page's screenshot test),
# Ruby with ActiveRecord, and the client libraries and ORMs the tests drive (Python packages in
# tests/clients/.venv, Node.js packages in tests/clients/node_modules). Idempotent: does nothing when everything is present.
set -euo pipefail

missing=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || [ -x /usr/bin/mariadb-install-db ] || missing+=(mariadb-server)
command -v mysql >/dev/null 2>&1 || missing+=(mariadb-client)
command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
command -v socat >/dev/null 2>&1 || missing+=(socat)
# etcd: the shared topology of several proxies (its tests run their own server).
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# protoc: the etcd-client crate compiles etcd's protocol definitions when it builds.
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
# Rails ActiveRecord with its MySQL adapter, from Debian (the ORM tests).
ruby -e 'require "active_record"; require "mysql2"' >/dev/null 2>&1 || missing+=(ruby ruby-activerecord ruby-mysql2)
# Headless Chromium renders the admin status page in its screenshot test.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  # The package's own service must not start: tests and the demo run their own servers.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# Client libraries, pinned; reinstalled only when their lists change.
clients="$(cd "$(dirname "$0")/.." && pwd)/tests/clients"
stamp="$clients/.venv/requirements.installed"
if ! cmp -s "$clients/requirements.txt" "$stamp" 2>/dev/null; then
  echo "installing Python client packages"
  python3 -m venv "$clients/.venv"
  "$clients/.venv/bin/pip" install -q --disable-pip-version-check -r "$clients/requirements.txt"
  cp "$clients/requirements.txt" "$stamp"
fi
if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/lock.installed" 2>/dev/null; then
  echo "installing Node.js client packages"
  (cd "$clients" && npm ci --no-audit --no-fund --silent)
  cp "$clients/package-lock.json" "$clients/node_modules/lock.installed"
fi
