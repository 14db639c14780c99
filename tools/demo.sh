#!/usr/bin/env bash
# The demo: generate the embedded shapes dataset (once), train YOLOv3 on it with
# mmdet-hpu-train, evaluate the last checkpoint with mmdet-hpu-test --eval bbox,
# and print the COCO metrics and the wall-clock time. Device: $DEVICE (auto = hpu > cuda > cpu).
set -euo pipefail
CONFIG=${1:-configs/demo/yolov3_mobilenetv2-half_128_shapes.py}
DATA=${2:-data/demo}
WORK_DIR=${3:-work_dirs/demo}
VENV=${VENV:-.venv}
DEVICE=${DEVICE:-auto}
BIN=$VENV/bin
start=$(date +%s)

if [ ! -f "$DATA/annotations/instances_val.json" ]; then
  "$BIN/mmdet-hpu-demo-data" --out "$DATA"
fi
"$BIN/mmdet-hpu-train" "$CONFIG" --device "$DEVICE" --work-dir "$WORK_DIR" --seed 0 \
  --no-validate --cfg-options data_root="$DATA/"
trained=$(date +%s)
"$BIN/mmdet-hpu-test" "$CONFIG" "$WORK_DIR/latest.pth" --device "$DEVICE" --eval bbox \
  --work-dir "$WORK_DIR" --cfg-options data_root="$DATA/" | tee "$WORK_DIR/demo_eval.txt"
end=$(date +%s)
echo "demo: train $((trained - start)) s, evaluation $((end - trained)) s, total $((end - start)) s"
