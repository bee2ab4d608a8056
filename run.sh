#!/usr/bin/env bash
# Sets up the virtual environment at .venv (once) and runs the demo or the tests.
#   ./run.sh demo [args...]   the venue, embedded, with simulated oracle and traders
#   ./run.sh test [args...]   lint, type checks and the test suite
set -euo pipefail
cd "$(dirname "$0")"

setup_python() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    local stamp=.venv/.asyncdex-installed
    # the install also builds the native engine core (setup.py): redo it when its source moves
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
        || [ src/asyncdex/engine/_native/core.cpp -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev]'
        touch "$stamp"
    fi
}

setup_node() {
    # the pinned Solidity compiler and anvil, for the artifact check and integration tests
    local stamp=node_modules/.asyncdex-installed
    if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
        # --ignore-scripts: anvil ships its binary in a platform package; no install script needed
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
        touch "$stamp"
    fi
    # the trading page's pinned build tools (vite, its charting and signing libraries), for
    # the test that rebuilds src/asyncdex/web/dist and the signing comparison with the SDK
    local web=src/asyncdex/web
    stamp=$web/node_modules/.asyncdex-installed
    if [ ! -f "$stamp" ] || [ $web/package-lock.json -nt "$stamp" ]; then
        (cd $web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
        touch "$stamp"
    fi
}

setup_browser() {
    # Debian's chromium for the page's browser tests (Playwright drives it; it never
    # downloads a browser of its own)
    if [ ! -x /usr/bin/chromium ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    demo)
        setup_python
        exec .venv/bin/asyncdex demo "$@"
        ;;
    test)
        setup_python
        setup_node
        setup_browser
        .venv/bin/ruff check src tests benchmarks
        .venv/bin/ruff format --check src tests benchmarks
        .venv/bin/mypy
        # loadgroup: tests marked xdist_group (committees of processes) run on one worker
        exec .venv/bin/pytest -n 2 --dist loadgroup "$@"
        ;;
    *)
        echo "usage: ./run.sh demo|test [args...]" >&2
        exit 2
        ;;
esac
