#!/usr/bin/env bash
# One command per study: prepares its data once, then runs its sweep; run it again to resume.
#   bash benchmarks/studies/run.sh echo_architectures | la_mri_thesis | improved_resunet | improved_resunet_unet
#                                  | ct_unet_versions | ct_unet_versions_v2 | lv_dicom_mri  [cardioseg sweep options]
#   bash benchmarks/studies/run.sh cpu/STUDY     # the same study cut to what two CPU cores allow (cpu/*.yaml)
# Further arguments go to `cardioseg sweep`, e.g. --backend ray --address auto --max-concurrent 4.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
BIN=.venv/bin
study=${1:?usage: run.sh STUDY [cardioseg sweep options]; studies: $(cd "$here" && ls *.yaml cpu/*.yaml | sed 's/.yaml//' | tr '\n' ' ')}
shift
config="$here/$study.yaml"
[ -f "$config" ] || { echo "no such study: $study (see $here)" >&2; exit 2; }
prepared=$("$BIN/python" -c "from cardioseg.config import load_config; print(load_config('$config').data.prepared)")
if [ "$(basename "$study")" = ct_unet_versions_v2 ]; then
  # version 2: version 1's data with every training sample augmented ten times offline
  base=$("$BIN/python" -c "from cardioseg.config import load_config; print(load_config('$(dirname "$config")/ct_unet_versions.yaml').data.prepared)")
  [ -f "$base/dataset.json" ] || "$BIN/cardioseg" prepare -c "$here/ct_unet_versions.yaml" -q
  [ -f "$prepared/dataset.json" ] || "$BIN/cardioseg" augment "$base" -o "$prepared" --copies 10
else
  [ -f "$prepared/dataset.json" ] || "$BIN/cardioseg" prepare -c "$config" -q
fi
"$BIN/cardioseg" sweep -c "$config" "$@"
