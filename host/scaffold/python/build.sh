#!/bin/sh
# Builds {{name}}.wasm from app.py. Installs the pinned componentize-py (requirements.txt) into
# .venv first when it is missing (or into $WASMHOOK_PY_VENV when set).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${WASMHOOK_PY_VENV:-$here/.venv}
if [ ! -x "$venv/bin/componentize-py" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
cd "$here"
exec "$venv/bin/componentize-py" -d wit -w connector componentize app -o {{name}}.wasm
