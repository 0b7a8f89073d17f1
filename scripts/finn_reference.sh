#!/usr/bin/env bash
# Build a separate virtualenv with finn-plus (a maintained FINN fork) as a *reference* and interop target.
#
#   bash scripts/finn_reference.sh [VENV_DIR]      # default: <repo>/.finn-venv
#
# Nothing in the main install depends on it. It is used by benchmarks/finn_crosscheck.py and by
# tests/test_finn_interop.py (which skips when the environment is absent).
#
# Recipe (issue 9):
#   1. torch==2.13.0 first (the CPU build; an unpinned torch pulls a multi-GB CUDA build);
#   2. finn-plus==1.6.1 without its dependencies (it pins brevitas==0.13.0, whose setuptools<70 pin
#      makes pip swap the CPU torch for a CUDA build);
#   3. finn-plus's other requirements at its own pins, read from its installed metadata, with
#      brevitas 0.13.4 instead of 0.13.0, setuptools>=77.0.3,<81, and psutil (used, not declared);
#   4. our repository is put on PYTHONPATH by the callers (no install needed: the export and the
#      cost model need only numpy and pyyaml, which finn-plus already brings).
# Idempotent: a finished environment is recognised by a stamp file and left as it is
# (set FINN_REFERENCE_FORCE=1 to run every step again).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${FINN_VENV:-$REPO/.finn-venv}}"
PY_BASE="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
FINN_VERSION="1.6.1"
BREVITAS_VERSION="0.13.4"
STAMP="$VENV/.finn-reference-stamp"
STAMP_TEXT="finn-plus==$FINN_VERSION torch==$TORCH_VERSION brevitas==$BREVITAS_VERSION"

start=$(date +%s)
log() { echo "[finn_reference $(( $(date +%s) - start ))s] $*"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" && -z "${FINN_REFERENCE_FORCE:-}" ]]; then
    if "$VENV/bin/python" -c "import finn, qonnx, brevitas, torch" 2>/dev/null; then
        log "already built: $VENV ($STAMP_TEXT)"
        exit 0
    fi
    log "stamp present but imports fail: rebuilding"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtualenv $VENV"
    "$PY_BASE" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# pip install, without the local index's "Location ... is ignored" noise (exit status kept)
pip_install() {
    "$PY" -m pip install --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    return "${PIPESTATUS[0]}"
}

# Keep torch where step 1 put it for every later step.
CONSTRAINTS="$VENV/finn-reference-constraints.txt"
printf 'torch==%s\n' "$TORCH_VERSION" > "$CONSTRAINTS"

log "1/4 torch==$TORCH_VERSION"
pip_install -q "torch==$TORCH_VERSION"

log "2/4 finn-plus==$FINN_VERSION (--no-deps)"
pip_install -q --no-deps "finn-plus==$FINN_VERSION"

log "3/4 finn-plus requirements at its pins (brevitas $BREVITAS_VERSION, setuptools>=77.0.3,<81, psutil)"
log "    (pip will say finn-plus requires brevitas==0.13.0: expected, $BREVITAS_VERSION is used on purpose)"
REQS="$VENV/finn-reference-requirements.txt"
"$PY" - "$BREVITAS_VERSION" > "$REQS" <<'PYEOF'
import re
import sys
from importlib.metadata import requires

brevitas = sys.argv[1]
for req in requires("finn-plus") or []:
    if "extra ==" in req:          # test/all extras are not needed
        continue
    name = re.split(r"[\s(<>=!~;\[]", req, maxsplit=1)[0]
    if name.lower() == "brevitas":
        print(f"brevitas=={brevitas}")
        continue
    # "numpy (>=2.4.6,<2.5.0)" -> "numpy>=2.4.6,<2.5.0"
    print(re.sub(r"\s*\((.*)\)", r"\1", req.split(";")[0]).strip())
print("setuptools>=77.0.3,<81")
print("psutil")
PYEOF
pip_install -q -c "$CONSTRAINTS" -r "$REQS"

log "4/4 checking imports"
"$PY" - <<'PYEOF'
from importlib.metadata import version

import brevitas
import finn  # noqa: F401
import qonnx  # noqa: F401
import torch
from finn.util import settings

settings.initialize_dummy_settings()
print("torch", torch.__version__, "brevitas", brevitas.__version__, "finn-plus", version("finn-plus"))
PYEOF

echo "$STAMP_TEXT" > "$STAMP"
log "done: $VENV (took $(( $(date +%s) - start )) s)"
