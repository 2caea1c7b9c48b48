#!/usr/bin/env bash
# Installs the S3-compatible server the object-store plugin's tests and benchmarks run on
# loopback: moto's server, from PyPI, for the user running the tests. Idempotent and quick
# when it is already there.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if "$PYTHON" -c 'import moto.server, boto3' 2>/dev/null; then
    echo "moto server already installed: $("$PYTHON" -c 'import moto; print(moto.__version__)')"
    exit 0
fi
# --user where the interpreter allows it (not inside a virtualenv), else into the interpreter.
"$PYTHON" -m pip install --quiet --user 'moto[server]>=5,<6' 2>/dev/null \
    || "$PYTHON" -m pip install --quiet 'moto[server]>=5,<6'
"$PYTHON" -c 'import moto.server, boto3; import moto; print("installed moto", moto.__version__)'
