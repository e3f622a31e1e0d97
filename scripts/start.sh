#!/usr/bin/env bash
# `npm start`: install what is missing, then run the control plane in the foreground on embedded
# defaults (SQLite under /var/lib/clawkeep, API on 127.0.0.1:8080, operator API on a unix socket).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/deps.sh"
exec "$root/bin/clawkeep" serve "$@"
