#!/usr/bin/env bash
# mixscope's GPU training throughput next to PyTorch eager on the same machine, same shape.
#   scripts/gpu-bench.sh [path/to/mixscope built with --features cuda] [--quick]
# Needs a CUDA GPU, the CUDA libraries (cuBLAS, cuRAND, NVRTC, runtime) on the loader path,
# and python3 with torch + transformers for the peer.
set -uo pipefail
bin=${1:-target/release/mixscope}
shift || true
echo "== mixscope bench gpu ($bin)"
"$bin" bench gpu --json "$@"
echo "== PyTorch eager peer"
python3 "$(dirname "$0")/torch_peer.py" "$@"
