#!/usr/bin/env bash
# Builds the runner with `--features cuda` on a machine without a GPU or CUDA install, by the
# recipe of ../shared/CUDA-BUILD.md: CUDA 13.0 unpacked from NVIDIA's PyPI wheels, and a
# link-time stub of libcuda (the GPU machine's driver provides the real one). CI never runs
# this (CI is CPU-only); a cold build takes about 25 minutes on 2 cores.
#
#   native-runner/cuda/build.sh            # → $AW_CUDA_DIR/target/release/runner
#
# On the GPU machine: LD_LIBRARY_PATH=<python env>/nvidia/cu13/lib ./runner --device cuda
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${AW_CUDA_DIR:-$HOME/.cache/attention-workshop/cuda}"
mkdir -p "$dir" && cd "$dir"
cuda="$dir/tree/nvidia/cu13"
if [[ ! -x "$cuda/bin/nvcc" ]]; then
  mkdir -p wheels tree
  pip download --no-deps --only-binary=:all: -d wheels \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 \
    nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
  for w in wheels/*.whl; do python3 -m zipfile -e "$w" tree/; done
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true
  (cd "$cuda/lib" && for f in *.so.*; do b="${f%%.so.*}.so"; [[ -e "$b" ]] || ln -s "$f" "$b"; done)
fi
export CUDA_HOME="$cuda" PATH="$cuda/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
target="$dir/target"
stub="$dir/stub"
mkdir -p "$stub"
if [[ ! -e "$stub/libcuda.so" ]]; then
  # The driver API symbols the binary needs, from a first (failing) link's inputs: build the
  # dependencies, collect cudarc's undefined `cu*` symbols, and define each as an empty stub.
  cargo build --release -p runner --features cuda --target-dir "$target" \
    --manifest-path "$repo/Cargo.toml" 2>/dev/null || true
  nm -u "$target"/release/deps/libcudarc-*.rlib 2>/dev/null \
    | grep -oE '\bcu[A-Z][A-Za-z0-9_]*' | sort -u \
    | sed 's/.*/void &(void){}/' > "$stub/stub.c"
  gcc -shared -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/stub.c"
fi
export LIBRARY_PATH="$stub:$cuda/lib:${LIBRARY_PATH:-}"
nvcc --version | tail -1
cargo build --release -p runner --features cuda --target-dir "$target" --manifest-path "$repo/Cargo.toml"
ls -la "$target/release/runner"
