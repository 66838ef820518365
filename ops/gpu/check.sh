#!/usr/bin/env bash
# GPU check of the engine, for a lent GPU machine (torch preinstalled, no internet, no TensorRT).
#
#   ops/gpu/check.sh [ARTIFACT_DIR]
#
# 1. prints nvidia-smi and the torch/CUDA versions;
# 2. makes the project importable (pip install -e . --no-deps, else PYTHONPATH) and installs
#    onnx/onnxruntime/pytest from a carried wheel folder ($WHEELS, default ops/gpu/wheels;
#    make it with ops/gpu/wheelhouse.sh) when they are missing; anything still missing is
#    reported and the parts that need it skip;
# 3. runs the GPU contract tests: pytest -m gpu tests/engine/backends tests/engine/test_tensorrt_build.py
#    (torch-cuda fp32 + fp16, CUDA graphs and eager; TensorRT ones skip without tensorrt);
# 4. runs the engine benchmark at batch sizes 1..512 for torch-cuda (fp32 and fp16, CUDA graphs
#    and eager), ONNX Runtime on the CPU and torch eager on the CPU (the baseline), plus the
#    ResNet50 encoder on the GPU, and prints the Markdown table.
#
# Without ARTIFACT_DIR the benchmark uses a seeded untrained default-config artifact written to
# $OUT (the current code's architecture; speed does not depend on the weights; without onnx +
# onnxruntime it stays in memory and ONNX Runtime is skipped). Give a trained artifact folder
# (carried to the machine) to time that one instead. Results go to $OUT (default /tmp/injury-monitor-gpu):
# pytest.txt, bench-engine-gpu.md. Meant to finish in under 5 minutes.
# Environment: PYTHON (default python3), THREADS (CPU threads for the CPU rows, default 8),
# BUDGET_S (seconds of interleaved rounds per batch size, default 1.5), BATCH_SIZES (default 1,8,32,128,512).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/injury-monitor-gpu}
WHEELS=${WHEELS:-ops/gpu/wheels}
THREADS=${THREADS:-8}
BUDGET_S=${BUDGET_S:-1.5}
BATCH_SIZES=${BATCH_SIZES:-1,8,32,128,512}
ARTIFACT=${1:-}
mkdir -p "$OUT"
rc=0

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>/dev/null || nvidia-smi || echo "nvidia-smi not found"
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuda available:', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')" || { echo "torch is not importable with $PY"; exit 2; }

echo "== dependencies"
missing=$("$PY" - <<'PYEOF'
import importlib.util
print(" ".join(m for m in ("numpy", "onnx", "onnxruntime", "pytest") if importlib.util.find_spec(m) is None))
PYEOF
)
if [ -n "$missing" ] && [ -d "$WHEELS" ]; then
  echo "installing from $WHEELS: $missing"
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" $missing || echo "could not install $missing from $WHEELS"
fi
if "$PY" -m pip install -q -e . --no-deps --no-build-isolation >/dev/null 2>&1; then
  echo "installed the project (pip install -e . --no-deps)"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "pip install -e . failed offline; using PYTHONPATH=$PWD"
fi
"$PY" - <<'PYEOF'
import importlib.util
for m in ("numpy", "onnx", "onnxruntime", "pytest", "tensorrt", "scipy"):
    print(f"  {m:12s}", "ok" if importlib.util.find_spec(m) else "MISSING")
PYEOF

echo "== contract tests (gpu marker)"
if "$PY" -c "import pytest" 2>/dev/null; then
  "$PY" -m pytest -m gpu tests/engine/backends tests/engine/test_tensorrt_build.py -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest.txt"
  t=${PIPESTATUS[0]}; [ "$t" -ne 0 ] && rc=$t
else
  echo "pytest is missing: contract tests not run"; rc=3
fi

echo "== engine benchmark"
untrained=""
if [ -z "$ARTIFACT" ]; then
  ARTIFACT="$OUT/artifact-untrained"; untrained="--untrained"
  echo "benchmarking a seeded untrained default-config artifact ($ARTIFACT; speed does not depend on weights)"
fi
"$PY" -m engine.bench --model "$ARTIFACT" $untrained \
    --backends torch-cuda,torch-cuda-fp16,torch-cuda-eager,torch-cuda-fp16-eager,onnxruntime,torch \
    --batch-sizes "$BATCH_SIZES" --threads "$THREADS" --baseline torch --budget-s "$BUDGET_S" \
    --encoder-device cuda --encoder-batch-sizes 1,8,32 \
    --out "$OUT/bench-engine-gpu.md" 2> "$OUT/bench-stderr.txt"
b=$?; [ "$b" -ne 0 ] && { tail -20 "$OUT/bench-stderr.txt"; rc=$b; }
echo "== done (exit $rc); results in $OUT"
exit $rc
