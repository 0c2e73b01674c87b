#!/usr/bin/env bash
# Create the RecBole 1.2.1 venv used only by benchmarks/recbole_compare.py (git-ignored).
#   make recbole-venv   (or: benchmarks/install_recbole.sh [VENV]; default benchmarks/.venv-recbole)
# Pins: torch 2.13.0 (the project's; a bare torch would pull CUDA), numpy<2 (RecBole 1.2.1 uses
# np.float_), pandas<3 -- all via one constraint file. Measured: 1.2.1 with torch 2.13.0, numpy 1.26.4.
set -euo pipefail
PY=${PY:-python3}
VENV=${1:-$(dirname "$0")/.venv-recbole}
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
printf 'torch==2.13.0\nnumpy<2\npandas<3\n' > "$VENV/constraints.txt"
"$VENV/bin/python" -m pip install --quiet -c "$VENV/constraints.txt" recbole==1.2.1
"$VENV/bin/python" -c 'import recbole, torch, numpy; print("recbole", recbole.__version__, "torch", torch.__version__, "numpy", numpy.__version__)'
