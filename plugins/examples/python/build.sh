#!/bin/sh
# Builds title-filter.wasm from app.py. Installs the pinned componentize-py (requirements.txt)
# into a virtual environment first when it is missing: $WASMHOOK_PY_VENV, or .venv here.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${WASMHOOK_PY_VENV:-$here/.venv}
if [ ! -x "$venv/bin/componentize-py" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
cd "$here"
exec "$venv/bin/componentize-py" -d ../../../wit -w connector componentize app -o title-filter.wasm
