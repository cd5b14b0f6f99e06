#!/usr/bin/env bash
# Installs everything the end-to-end conformance suite (conformance/run.sh) needs on a
# Debian 12 machine: CLI clients, Ceph and Chromium from Debian, Python clients and moto in a
# private venv, the JS SDK and playwright-core under conformance/js/. Idempotent; a second run
# with nothing to do takes seconds.
#
#   ARTIFACT_STORE_TEST_VENV   venv folder (default: $HOME/.cache/artifact-store/venv)
#   PYTHON                     interpreter that creates the venv (default: python3)
#
# Two aws CLIs live side by side and are told apart by path only:
#   v2 (Debian's awscli package): /usr/bin/aws
#   v1 (PyPI awscli):             $ARTIFACT_STORE_TEST_VENV/bin/aws
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ARTIFACT_STORE_TEST_VENV:-$HOME/.cache/artifact-store/venv}"
python="${PYTHON:-python3}"

log() { printf '[install-test-deps] %s\n' "$*" >&2; }
sha() { sha256sum "$@" | sha256sum | cut -c1-16; }

# --- Debian packages -------------------------------------------------------------------
# Ceph (monitor, OSD, radosgw) is the S3 backend's RGW upstream (scripts/start-ceph-rgw.sh).
# libssl-dev and pkg-config build the gateway, which hashes MD5 with the system's OpenSSL.
# PostgreSQL 15 holds the shared registry of several gateways (scripts/start-postgres.sh).
# HAProxy stands in front of several gateways in the shared-registry load-balancer test.
# Chromium runs the web console's browser tests (conformance/js/console.mjs, via playwright-core).
# libfaketime runs a gateway with its clock off, which a shared registry must refuse.
apt_packages=(libssl-dev pkg-config awscli rclone s3cmd openssl sqlite3 jq curl ca-certificates
    ceph-mon ceph-osd radosgw ceph-common uuid-runtime postgresql-15
    haproxy chromium faketime)
"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" "${apt_packages[@]}"
[[ -x /usr/bin/aws ]] || { log "Debian's awscli did not install /usr/bin/aws"; exit 1; }
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || { log "Debian's postgresql-15 did not install initdb"; exit 1; }
[[ -x /usr/bin/chromium ]] || { log "Debian's chromium did not install /usr/bin/chromium"; exit 1; }

# --- Python venv -------------------------------------------------------------------------
req="$root/conformance/requirements.txt"
stamp="$venv/.artifact-store-requirements"
want="$(sha "$req")"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "pip install -r conformance/requirements.txt into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade -r "$req"
    echo "$want" >"$stamp"
fi

# --- JS SDK v3 and playwright-core (the console's browser tests) -----------------------------
js="$root/conformance/js"
jstamp="$js/node_modules/.artifact-store-lock"
want="$(sha "$js/package.json" "$js/package-lock.json")"
if [[ "$(cat "$jstamp" 2>/dev/null)" != "$want" ]]; then
    log "npm ci in conformance/js"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$jstamp"
fi

log "ready: aws v2 $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1), aws v1 $("$venv/bin/aws" --version 2>&1 | cut -d' ' -f1), $(rclone version 2>/dev/null | head -1), s3cmd $(s3cmd --version 2>/dev/null | cut -d' ' -f3), node $(node --version)"
