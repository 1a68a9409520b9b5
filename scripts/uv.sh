#!/usr/bin/env bash
# Run uv, installing it from PyPI first when the machine lacks it.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
if command -v uv >/dev/null 2>&1; then exec uv "$@"; fi
if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "uv.sh: installing uv from PyPI" >&2
  python3 -m pip install --quiet uv >&2
fi
exec python3 -m uv "$@"
