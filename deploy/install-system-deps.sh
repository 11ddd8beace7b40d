#!/usr/bin/env bash
# Install the Debian packages exchange-watch needs, only those missing:
#   prometheus (prometheus, promtool), prometheus-alertmanager (prometheus-alertmanager, amtool),
#   python3-venv where the interpreter lacks venv/ensurepip (Debian's python3 without it),
#   postgresql (initdb, postgres in /usr/lib/postgresql/<major>/bin: the receiver's PostgreSQL
#   store tests, make ha; deploy/postgres.py starts its own servers, the package's cluster is
#   not used) and victoria-metrics (the global store of make ha and tests/deploy/test_ha_stack.py).
# With the argument "bench" (make bench) also: nginx-light (the static probe target),
# prometheus-blackbox-exporter (the prober compared against) and tinyproxy-bin (the egress
# CONNECT proxy of the probe benchmark's proxied variant; the binary only, no service).
# Safe to run repeatedly; uses sudo when not root.
set -euo pipefail

declare -A need=()
command -v prometheus >/dev/null 2>&1 || need[prometheus]=1
command -v promtool >/dev/null 2>&1 || need[prometheus]=1
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || need[prometheus-alertmanager]=1
command -v amtool >/dev/null 2>&1 || need[prometheus-alertmanager]=1
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || need[python3-venv]=1
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need[postgresql]=1
command -v victoria-metrics >/dev/null 2>&1 || [ -x /usr/bin/victoria-metrics ] \
  || need[victoria-metrics]=1
if [ "${1:-}" = "bench" ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need[nginx-light]=1
  command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need[prometheus-blackbox-exporter]=1
  command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need[tinyproxy-bin]=1
  command -v taskset >/dev/null 2>&1 || need[util-linux]=1
fi

if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "install-system-deps: need root or sudo to install: ${!need[*]}" >&2
    exit 1
  fi
fi
echo "install-system-deps: installing ${!need[*]} with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${!need[@]}" >/dev/null
