#!/usr/bin/env bash
# Run the evaluation harness on a GPU box for inputs exported with
#   benchmarks/evaluate_offline.py export --home HOME --out .kgrec/eval/NAME
# Usage (from the repo root): bash benchmarks/gpu_eval.sh OUTDIR NAME[:EPOCHS:BATCH:LR:PATIENCE] ...
set -uo pipefail
out=${1:?output dir}; shift
mkdir -p "$out" /tmp/kgrec-path
ln -sfn "$PWD" /tmp/kgrec-path/kgrec
export PYTHONPATH=/tmp/kgrec-path
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python -c "import torch, numpy, pandas; print('torch', torch.__version__, 'numpy', numpy.__version__, 'pandas', pandas.__version__)" 2>&1 | tee "$out/env.txt"
for spec in "$@"; do
  IFS=: read -r name epochs batch lr patience <<<"$spec"
  python -u benchmarks/evaluate_offline.py run --inputs ".kgrec/eval/$name" --device cuda --seeds 3 \
    --epochs "${epochs:-50}" --batch-size "${batch:-128}" --lr "${lr:-0.001}" --patience "${patience:-5}" \
    --out "$out/$name" > "$out/$name.log" 2>&1
  echo "$name exit $?"; tail -30 "$out/$name.log"
done
