#!/usr/bin/env bash
# Set up this machine for xenlab, idempotently: Debian packages, the project's virtualenv, the images.
# Each step is skipped when already done, so running it before every command costs about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mxenlab setup:\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "xenlab setup: run as root (the lab creates network namespaces, taps and containers)" >&2
    exit 2
fi

mapfile -t packages < <(grep -v '^\s*#' tools/host-packages.txt | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
lists_age=$(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0) ))
if [ "${#missing[@]}" -gt 0 ] || [ "$lists_age" -gt 86400 ]; then
    # The image builder resolves packages against these lists: keep them fresh.
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.xenlab-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "creating the Python environment in .venv"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
fi

say "building or reusing images"
.venv/bin/python -m images build >&2
