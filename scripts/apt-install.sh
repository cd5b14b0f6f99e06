#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (sudo when not
# root). Shared by scripts/install-test-deps.sh and scripts/start-ceph-rgw.sh.
#
#   scripts/apt-install.sh rclone s3cmd ...
set -euo pipefail
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "apt-install: apt-get install ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
