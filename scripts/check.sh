#!/usr/bin/env bash
# The static checks, each an error on its first finding (warnings are errors):
#
#   cargo fmt --check        Rust formatting
#   cargo clippy (twice)     lints without the Python feature (tests included)
#                            and with it (release, as maturin builds the module)
#   rust_layers.py           no import cycle between Rust files, no layer naming
#                            the one above it, no tokio/hyper/h2/rustls in
#                            proto, no pyo3 outside py/ and lib.rs (DESIGN §6)
#   ruff check               python/, tests/ and scripts/ (rules: pyproject.toml)
#   mypy --strict python/    the package, as Python 3.10 (pyproject.toml)
#
# Usage: bash scripts/check.sh        (from anywhere; run by scripts/test.sh)
# Needs .venv with the `test` extra (scripts/test.sh creates it); clippy's
# PyO3 build finds the interpreter through PYO3_PYTHON, set to the venv's.
# Runs every check, then exits 1 if any failed, naming them.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV_PYTHON=.venv/bin/python
if [ ! -x "$VENV_PYTHON" ]; then
    echo "check.sh: no $VENV_PYTHON; run bash scripts/test.sh (or: python3 -m venv .venv && .venv/bin/pip install '.[test]')" >&2
    exit 2
fi
export PYO3_PYTHON="$PWD/$VENV_PYTHON"

failed=()
run() {
    local name=$1
    shift
    echo "== $name =="
    if ! "$@"; then
        failed+=("$name")
    fi
}

run "cargo fmt" cargo fmt --all -- --check
run "cargo clippy (no Python)" cargo clippy --quiet --no-default-features --tests -- -D warnings
run "cargo clippy (python, release)" cargo clippy --quiet --release --features python -- -D warnings
run "rust layers" "$VENV_PYTHON" scripts/rust_layers.py src
run "ruff" "$VENV_PYTHON" -m ruff check --quiet python/ tests/ scripts/
run "mypy --strict" "$VENV_PYTHON" -m mypy --strict python/

if [ "${#failed[@]}" -ne 0 ]; then
    printf 'check.sh: failed: %s\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')" >&2
    exit 1
fi
echo "check.sh: all checks passed"
