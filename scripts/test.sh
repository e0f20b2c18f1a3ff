#!/usr/bin/env bash
# Build everything, run the static checks (scripts/check.sh: fmt, clippy,
# Rust layering, ruff, mypy) and every test: the Rust unit tests (protocol
# rules and runtime, no interpreter), then the end-to-end pytest suite against
# the installed package. The tests run even when a check failed; the exit
# status is a failure if either did. Creates .venv in the repository on first use.
#
# The package is built once, as users build the wheel (README: `maturin build
# --release`), into target/wheels, and that wheel is what .venv gets:
# tests/test_packaging.py installs the same file into fresh venvs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "maturin>=1.9.4,<2"
rm -f target/wheels/propylon-*.whl
.venv/bin/maturin build --release --out target/wheels
wheel=$(ls target/wheels/propylon-*.whl)
# The test extra's dependencies, then the wheel itself even if .venv has this
# version already (pip would keep an installed one of the same version).
.venv/bin/python -m pip install -q "$wheel[test]"
.venv/bin/python -m pip install -q --no-deps --force-reinstall "$wheel"

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
