#!/usr/bin/env bash
# The CUDA path, checked and measured in one command on a fresh GPU machine (8 minutes at most):
#
#   install   a CUDA torch and the package: where python3 already has a CUDA torch (this workplace's
#             H200 image: torch 2.11, no network), that python3 with PYTHONPATH=src, plus any wheels
#             carried in .whl/ (diffusers, denoising-diffusion-pytorch: docs/measurements/gpu.md); elsewhere a
#             venv with `pip install -e .[test,bench]` (torch==2.13.0 from PyPI is a CUDA build on Linux)
#             and lucidrains' package --no-deps, as `make bench` does
#   tests     the tests that take a device, on cuda (HORSESHOE_TEST_DEVICES=cpu,cuda, and -k cuda keeps
#             their cuda runs: the CPU suite is CI's); TESTS_ARGS= (empty) runs the whole suite on both
#   bench     benchmarks/run.py --quick --device cuda: horseshoe, diffusers and lucidrains in one run
#   settings  benchmarks/settings.py --device cuda: images/s with each speed setting changed alone
#   demo      `horseshoe demo` from nothing: its wall time, images/s and horseshoe rate
#
# Each stage runs under its own time limit (LIMIT_INSTALL=... and so on change them; they add up to
# 8 minutes), logs into $OUT and is summed up in $OUT/summary.txt; a stage that fails or runs out of
# time does not stop the next. $OUT defaults to benchmarks/results/gpu-check-DATE and receives 8
# files at most (the device tool's limit).
#
#   OUT=/tmp/out bash benchmarks/gpu_check.sh
#
# PYTHON=/path/to/python skips the install and uses that interpreter; DEVICE=cpu (with small limits)
# runs the same stages on a CPU, to check the script itself.

set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-benchmarks/results/gpu-check-$(date +%F)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# As the Makefile: glibc keeps freed activation buffers in the heap (runtime.keep_memory_mapped).
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # deterministic cuBLAS, for the bit-exact resume test on cuda
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then export HORSESHOE_TEST_DEVICES=cpu; else export HORSESHOE_TEST_DEVICES=cpu,$DEVICE; fi
LIMIT_INSTALL=${LIMIT_INSTALL:-90} LIMIT_TESTS=${LIMIT_TESTS:-75} LIMIT_BENCH=${LIMIT_BENCH:-180}
LIMIT_SETTINGS=${LIMIT_SETTINGS:-75} LIMIT_DEMO=${LIMIT_DEMO:-60}  # 480 s together
TESTS_ARGS=${TESTS_ARGS--k $DEVICE}

note() { echo "$*" | tee -a "$SUMMARY"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# stage NAME LIMIT LOG COMMAND...: COMMAND under `timeout`, its output into LOG, rc and seconds into the summary.
stage() {
    local name=$1 limit=$2 log=$3 start rc ms late=
    shift 3
    start=$(now_ms)
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    ms=$(( $(now_ms) - start ))
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then late=" (out of time)"; fi
    note "stage $name: rc=$rc$late seconds=$((ms / 1000)).$(printf %03d $((ms % 1000))) limit=$limit" \
         "log=$(basename "$log")"
    return "$rc"
}

# install ENV_FILE: make a CUDA torch and horseshoe importable; write PY and PYTHONPATH into ENV_FILE.
install() {
    local py=${PYTHON:-python3} path=
    if [ -n "${PYTHON:-}" ]; then
        echo "PYTHON=$PYTHON: using it as it is, with PYTHONPATH=src"
    elif python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
        echo "python3 has a CUDA torch: using it, with PYTHONPATH=src"
        if compgen -G ".whl/*.whl" >/dev/null; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target /tmp/site .whl/*.whl || return 1
            path=/tmp/site
        fi
    else
        python3 -m venv .venv-gpu || return 1
        py=.venv-gpu/bin/python
        "$py" -m pip install -q --disable-pip-version-check -e ".[test,bench]" || return 1
        "$py" -m pip install -q --disable-pip-version-check --no-deps denoising-diffusion-pytorch==2.3.4 || return 1
    fi
    path=$PWD/src${path:+:$path}
    PYTHONPATH=$path "$py" -c '
import importlib.util, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
if "'"$DEVICE"'".startswith("cuda"):
    assert torch.cuda.is_available(), "no CUDA device"
    print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
for name in ("diffusers", "denoising_diffusion_pytorch", "einops", "pytest"):
    print(name, "found" if importlib.util.find_spec(name) else "MISSING (the figures or tests that need it fail)")
' || return 1
    printf 'PY=%q\nexport PYTHONPATH=%q\n' "$py" "$path" >"$1"
}
export -f install
export DEVICE PYTHON

note "gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi -L 2>&1 | tee -a "$SUMMARY"
ENV_FILE=$(mktemp)
if ! stage install "$LIMIT_INSTALL" "$SUMMARY" bash -c 'install "$1"' _ "$ENV_FILE"; then
    note "install failed: nothing else is run"
    exit 1
fi
# shellcheck disable=SC1090  # written by install
source "$ENV_FILE"

# shellcheck disable=SC2086  # TESTS_ARGS is a list of pytest arguments
stage tests "$LIMIT_TESTS" "$OUT/tests.log" "$PY" -m pytest -q -p no:cacheprovider $TESTS_ARGS tests
note "tests: $(tail -n 1 "$OUT/tests.log")"

mkdir -p "$OUT/bench"
stage bench "$LIMIT_BENCH" "$OUT/bench.log" "$PY" benchmarks/run.py --quick --device "$DEVICE" --out "$OUT/bench"

stage settings "$LIMIT_SETTINGS" "$OUT/settings.log" "$PY" benchmarks/settings.py --device "$DEVICE" --steps 100 \
    --warmup 20

demo_dir=$(mktemp -d)/demo
stage demo "$LIMIT_DEMO" "$OUT/demo.log" "$PY" -m horseshoe demo --out "$demo_dir" --no-progress \
    --set "train.device='$DEVICE'"
grep -E "^demo done in|pass the horseshoe check" "$OUT/demo.log" | tee -a "$SUMMARY"
if [ -f "$demo_dir/samples/grid.png" ]; then cp "$demo_dir/samples/grid.png" "$OUT/demo_grid.png"; fi
note "files: $(cd "$OUT" && find . -type f | sort | tr '\n' ' ')"
