#!/usr/bin/env bash
# Build everything and run every test: the Rust unit tests (protocol rules and
# runtime, no interpreter), then the end-to-end pytest suite against the
# installed package. Creates .venv in the repository on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[test]"

echo "== cargo test (proto + runtime, no Python) =="
cargo test --no-default-features --quiet

echo "== stub check (_core.pyi against the built module) =="
.venv/bin/python -m mypy.stubtest propylon._core

echo "== pytest =="
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
