#!/usr/bin/env bash
# Download the wheels ops/gpu/check.sh installs on a GPU machine that has torch but no internet:
#   ops/gpu/wheelhouse.sh [PYTHON_VERSION]     e.g. 3.11 (the GPU machine's Python), default: this one's
# into ops/gpu/wheels: onnx, onnxruntime, pytest and their dependencies, 54 MB for Python 3.11
# (numpy 16 MB of it; delete its wheel if the GPU machine has numpy). Carry the folder with the
# working tree (the device tool carries at most 64 MiB).
set -euo pipefail
cd "$(dirname "$0")"
PYV=${1:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
python3 -m pip download --only-binary=:all: --python-version "$PYV" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d wheels "onnx>=1.16,<2" "onnxruntime>=1.18,<2" "pytest>=8,<10"
du -sh wheels
