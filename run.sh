#!/usr/bin/env bash
# Sets up the virtual environment at .venv (once) and runs the demo or the tests.
#   ./run.sh demo [args...]   the whole venue, embedded, with simulated oracle and traders
#   ./run.sh test [args...]   lint, type check and the test suite
set -euo pipefail
cd "$(dirname "$0")"

setup() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    local stamp=.venv/.asyncdex-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev]'
        touch "$stamp"
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    demo)
        setup
        exec .venv/bin/asyncdex demo "$@"
        ;;
    test)
        setup
        .venv/bin/ruff check src tests benchmarks
        .venv/bin/ruff format --check src tests benchmarks
        .venv/bin/mypy
        exec .venv/bin/pytest -n 2 "$@"
        ;;
    *)
        echo "usage: ./run.sh demo|test [args...]" >&2
        exit 2
        ;;
esac
