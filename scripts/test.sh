#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, Rust tests (including the exact-parity
# suite against scikit-learn and soc-server's tests on both SQLite and a throwaway PostgreSQL
# cluster, started and removed by scripts/with-postgres.sh, and against a throwaway moto S3
# server, started and stopped by scripts/with-moto.sh) and pytest. Creates .venv with the
# Python test dependencies on first use (again when python/requirements-test.txt changes) and
# builds the codegrey_soc package into it.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codegrey-soc/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "Python test environment (.venv)"
# Reinstalled whenever python/requirements-test.txt changes (its hash is stamped in .venv).
requirements_hash="$(sha256sum python/requirements-test.txt | cut -d' ' -f1)"
if [ "$(cat .venv/.requirements-hash 2>/dev/null)" != "$requirements_hash" ] \
    || ! .venv/bin/python -c "import sklearn, numpy, pytest, scipy, pandas, maturin, moto.server" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
    echo "$requirements_hash" > .venv/.requirements-hash
fi
export SOC_PYTHON="$PWD/.venv/bin/python"

step "one ndarray version (soc-core's and the numpy crate's must be the same)"
# `cargo update` re-adds ndarray 0.17 for the numpy crate; fix with
# `cargo update -p ndarray@0.17.x --precise 0.16.1` (see soc-py/Cargo.toml).
if cargo tree --workspace -e normal -d --depth 0 | grep -q '^ndarray '; then
    echo "two ndarray versions are linked:" >&2
    cargo tree --workspace -e normal -i ndarray@0.17 >&2 || true
    exit 1
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "build codegrey_soc into .venv (maturin develop --release; quick when unchanged; soc-py's Rust tests use it)"
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet

step "cargo test (PostgreSQL: throwaway cluster; S3: moto)"
scripts/with-postgres.sh scripts/with-moto.sh cargo test --workspace --all-features --release

step "pytest"
.venv/bin/python -m pytest -q python/tests

step "all tests passed"
