#!/usr/bin/env bash
# The demo: generate the embedded shapes dataset (once), train CONFIG (YOLOv3 by default;
# `make demo MODEL=retinanet|ssd|fcos|atss` passes the others) on it with
# mmdet-hpu-train, evaluate the last checkpoint with mmdet-hpu-test --eval bbox,
# and print the COCO metrics, the wall-clock time and where everything was written.
# Device: $DEVICE (auto = hpu > cuda > cpu). $TRAIN_ARGS / $TEST_ARGS: extra flags
# (not --cfg-options) for mmdet-hpu-train / mmdet-hpu-test, e.g. TRAIN_ARGS="--tensorboard".
set -euo pipefail
CONFIG=${1:-configs/demo/yolov3_mobilenetv2-half_128_shapes.py}
DATA=${2:-data/demo}
WORK_DIR=${3:-work_dirs/demo}
VENV=${VENV:-.venv}
DEVICE=${DEVICE:-auto}
BIN=$VENV/bin
start=$(date +%s)

# On a busy machine torch's OpenMP threads spin-wait on each other when the cores are
# oversubscribed (measured at load ~14 on 2 cores: 0.24 images/s with 2 threads, 2.8 with
# 1); leave the CPUs that other processes keep busy right now (tools/cpu_threads.py samples
# /proc/stat for a second; the load average would still count a job that just ended),
# unless the user chose OMP_NUM_THREADS.
if [ -z "${OMP_NUM_THREADS:-}" ] \
    && threads=$("$BIN/python" "$(dirname "$0")/cpu_threads.py" 2>/dev/null); then
  read -r n busy cpus usable <<<"$threads"
  if [ "$n" -lt "$usable" ]; then
    export OMP_NUM_THREADS=$n
    echo "demo: busy machine ($busy of $cpus CPUs in use by others): OMP_NUM_THREADS=$n"
  fi
fi

if [ ! -f "$DATA/annotations/instances_val.json" ]; then
  "$BIN/mmdet-hpu-demo-data" --out "$DATA"
fi
# shellcheck disable=SC2086  # TRAIN_ARGS / TEST_ARGS are word-split on purpose
"$BIN/mmdet-hpu-train" "$CONFIG" --device "$DEVICE" --work-dir "$WORK_DIR" --seed 0 \
  --no-validate ${TRAIN_ARGS:-} --cfg-options data_root="$DATA/"
trained=$(date +%s)
# shellcheck disable=SC2086
"$BIN/mmdet-hpu-test" "$CONFIG" "$WORK_DIR/latest.pth" --device "$DEVICE" --eval bbox \
  --work-dir "$WORK_DIR" ${TEST_ARGS:-} --cfg-options data_root="$DATA/" \
  | tee "$WORK_DIR/demo_eval.txt"
end=$(date +%s)
echo "demo: train $((trained - start)) s, evaluation $((end - trained)) s, total $((end - start)) s"

newest() { ls -t "$@" 2>/dev/null | head -n 1; }
json_log=$(newest "$WORK_DIR"/*.log.json)
echo "demo: everything is in $WORK_DIR/"
echo "  checkpoint   $WORK_DIR/latest.pth -> $(readlink "$WORK_DIR/latest.pth" || echo latest.pth)"
echo "  training log ${json_log%.json} (text), $json_log (JSON: loss, images/s, memory)"
echo "  metrics      $WORK_DIR/demo_eval.txt, $(newest "$WORK_DIR"/eval_*.json)"
echo "  config       $WORK_DIR/$(basename "$CONFIG") (as it ran)"
analyze=$("$BIN/python" -c "import mmdet, os.path as p; print(p.join(p.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools', 'analyze_logs.py'))")
echo "  loss curve   $BIN/python $analyze plot_curve $json_log --keys loss --out $WORK_DIR/loss.png"
echo "               (needs seaborn: pip install -e '.[logs]')"
