#!/usr/bin/env bash
# Build mixscope with the `cuda` feature on a machine without a GPU or a CUDA toolkit: CUDA 13.0's
# compiler and libraries come from PyPI wheels, unpacked into a private CUDA root, and the
# binary is linked against a stub of the driver library (the real one is loaded at run time).
#   scripts/cuda-build.sh [CUDA_ROOT (default: ~/.cache/mixscope-cuda13)] [cargo args...]
# CUDA_COMPUTE_CAP (default 90, Hopper) picks the GPU generation the kernels are built for.
set -euo pipefail
root=${1:-$HOME/.cache/mixscope-cuda13}
shift || true
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
if [ ! -x "$root/bin/nvcc" ]; then
    wheels=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$wheels" "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-runtime==13.0.*" \
        "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
        "nvidia-cublas==13.0.*" "nvidia-curand==10.*"
    for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$wheels/x"; done
    mkdir -p "$root"
    cp -r "$wheels"/x/nvidia/cu13/. "$root"/
    rm -rf "$wheels"
    chmod +x "$root"/bin/* "$root"/nvvm/bin/*
    ln -sfn lib "$root/lib64"
    for f in libcudart libnvrtc libcurand libcublasLt libcublas; do
        so=$(cd "$root/lib" && ls $f.so.* | head -1)
        ln -sf "$so" "$root/lib/$f.so"
    done
fi
if [ ! -e "$root/lib/stubs/libcuda.so" ]; then
    # The driver API functions cudarc calls, as empty stubs with the driver's soname.
    cargo fetch --quiet
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs | tail -1)
    mkdir -p "$root/lib/stubs"
    grep -oE "^\s+fn cu[A-Za-z0-9_]+\(" "$src" | sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
        | awk '{print "int " $1 "(void){return 999;}"}' > "$root/lib/stubs/cuda_stub.c"
    cc -shared -fPIC -o "$root/lib/stubs/libcuda.so" "$root/lib/stubs/cuda_stub.c" -Wl,-soname,libcuda.so.1
fi
export CUDA_ROOT=$root CUDA_HOME=$root CUDA_PATH=$root PATH=$root/bin:$PATH
cargo build --release --features cuda "$@"
