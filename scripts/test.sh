#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, Rust tests (including the exact-parity
# suite against scikit-learn and soc-server's tests on both SQLite and a throwaway PostgreSQL
# cluster, started and removed by scripts/with-postgres.sh, and against a throwaway moto S3
# server, started and stopped by scripts/with-moto.sh) and pytest. Creates .venv with the
# Python test dependencies on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codegrey-soc/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "Python test environment (.venv)"
if ! .venv/bin/python -c "import sklearn, numpy, pytest, moto.server" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
fi
export SOC_PYTHON="$PWD/.venv/bin/python"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (PostgreSQL: throwaway cluster; S3: moto)"
scripts/with-postgres.sh scripts/with-moto.sh cargo test --workspace --all-features --release

step "pytest"
.venv/bin/python -m pytest -q python/tests

step "all tests passed"
