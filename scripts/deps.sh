#!/usr/bin/env bash
# Installs what clawkeep needs on a Debian machine and nothing more: npm packages from the
# committed lockfile and the Debian packages listed in scripts/debian-packages.txt.
# Idempotent and quiet when everything is present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "$(id -u)" != 0 ]; then
  echo "clawkeep: run as root: it creates per-tenant users, directories and (later) namespaces" >&2
  exit 1
fi

mapfile -t wanted < <(grep -v '^\s*#' scripts/debian-packages.txt | tr -s ' \t' '\n' | grep -v '^$')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "clawkeep: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm packages: install when node_modules is missing or older than the lockfile.
stamp=node_modules/.clawkeep-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "clawkeep: installing npm packages (npm ci)" >&2
  # --omit=optional: node-llama-cpp lists GPU builds (~650 MB) as optional; the platform
  # packages we need (esbuild, biome, koffi, llama CPU) are pinned as ordinary dependencies.
  npm ci --omit=optional --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi
