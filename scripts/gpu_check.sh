#!/usr/bin/env bash
# What a GPU does for Vernacular, from a fresh copy of the working tree, in under 8 minutes:
# fine-tune throughput of the default recipe and of a wav2vec2-base-sized full fine-tune
# (asr.finetune against transformers' Trainer), pool scoring throughput, and a 3-minute
# wav2vec 2.0 pretraining loss curve (scripts/gpu_check.py). Record the figures in
# docs/benchmarks.md. Without a GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none); nothing to measure."
  exit 0
fi

python=python3
has_cuda_torch() { "$1" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; }
if ! has_cuda_torch "$python"; then
  # The pinned torch is a CPU build; a CUDA one goes into a virtualenv of its own.
  [ -x .venv-gpu/bin/python ] || python3 -m venv .venv-gpu
  python=.venv-gpu/bin/python
  "$python" -m pip install -q --disable-pip-version-check torch==2.11.0
  has_cuda_torch "$python" || { echo "gpu_check: torch 2.11.0 sees no GPU here" >&2; exit 1; }
fi
# What the script imports besides torch, at the versions requirements.txt pins, where missing.
missing=()
for package in transformers jiwer safetensors accelerate; do
  "$python" -c "import $package" 2>/dev/null ||
    missing+=("$(grep -ih "^$package==" requirements.txt requirements-dev.txt | cut -d' ' -f1 || echo "$package")")
done
if [ ${#missing[@]} -gt 0 ]; then
  "$python" -m pip install -q --disable-pip-version-check "${missing[@]}" || {
    echo "gpu_check: could not install ${missing[*]} (no package index here? carry them as wheels)" >&2
    exit 1
  }
fi
exec timeout 480 "$python" -u scripts/gpu_check.py
