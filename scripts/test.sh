#!/usr/bin/env bash
# Build everything, run the static checks (scripts/check.sh: fmt, clippy,
# Rust layering, ruff, mypy) and every test: the Rust unit tests (protocol
# rules and runtime, no interpreter), then the end-to-end pytest suite against
# the installed package. The tests run even when a check failed; the exit
# status is a failure if either did. Creates .venv in the repository on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[test]"

checks=0
bash scripts/check.sh || checks=$?

echo "== cargo test (proto + runtime, no Python) =="
cargo test --no-default-features --quiet

echo "== stub check (_core.pyi against the built module) =="
.venv/bin/python -m mypy.stubtest propylon._core

echo "== pytest =="
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"

if [ "$checks" -ne 0 ]; then
    echo "test.sh: the tests passed, but scripts/check.sh failed (see above)" >&2
    exit "$checks"
fi
