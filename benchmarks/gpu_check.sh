#!/usr/bin/env bash
# GPU check (issue 15, point 6): on a CUDA machine, in under 8 minutes in all,
#   1. the test suite with every CPU fit redirected to the GPU (BCNMF_TEST_DEVICE=cuda,
#      read by tests/conftest.py) and tests/test_gpu.py (CUDA vs CPU results);
#   2. benchmarks/bench_time_to_answer.py on 20k + 20k cells x 2k genes, K=10, --device cuda;
#   3. a 1M-cell backed fit to convergence (benchmarks/bench_large.py), --device cuda.
# Everything goes to one file, the table of each step included.
#
#   bash benchmarks/gpu_check.sh [OUT.md]            # default: gpu_check.md ($OUT/ if set)
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh    # seconds, on the CPU: checks the script
#
# Run from the repository root. Each step has its own time limit (timeout), so a slow or
# failing step is reported and the next one still runs; the exit status is 0 unless the
# script itself is broken.
set -u
OUT_FILE="${1:-${OUT:-.}/gpu_check.md}"
PY="${PYTHON:-python}"
export PYTHONPATH="${PWD}/src${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then
    DEVICE=cpu; TESTS=(tests/test_gpu.py tests/test_threads.py)
    T2A=(--tiny); LARGE=(--cells 3000 --max-epochs 3); LIMITS=(120 120 120)
else
    DEVICE=cuda; TESTS=(tests); T2A=(--cells 20000 --k 10)
    LARGE=(--cells 1000000); LIMITS=(200 150 130)
fi

# the 1M-cell file is written on the CPU while the tests use the GPU
LARGE_PATH="${TMPDIR:-/tmp}/gpu_check_large_${LARGE[1]}.h5ad"
"$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; \
from bench_scale import generate; p = Path('$LARGE_PATH'); \
p.exists() or generate(p, ${LARGE[1]}, 2000, 0.1)" >/dev/null 2>&1 &
GEN_PID=$!

section() { printf '\n## %s\n\n' "$1" >>"$OUT_FILE"; }
run_step() {  # limit, then the command; its output (tail) into the file, in a code block
    local limit=$1; shift
    local log; log=$(mktemp)
    local start=$SECONDS
    timeout "$limit" "$@" >"$log" 2>&1
    local rc=$?
    { echo '```text'; tail -n 60 "$log"; echo '```'
      echo; echo "exit status $rc, $((SECONDS - start)) s (limit ${limit} s)"; } >>"$OUT_FILE"
    rm -f "$log"
}

{
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```text'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available())"
    echo '```'
} >"$OUT_FILE"

section "1. Tests on ${DEVICE} (BCNMF_TEST_DEVICE=${DEVICE})"
run_step "${LIMITS[0]}" env BCNMF_TEST_DEVICE="$DEVICE" OMP_NUM_THREADS=1 \
    "$PY" -m pytest -q -p no:cacheprovider --maxfail=20 --no-header -rfE "${TESTS[@]}"

section "2. Time to an answer (benchmarks/bench_time_to_answer.py ${T2A[*]} --device ${DEVICE})"
run_step "${LIMITS[1]}" "$PY" benchmarks/bench_time_to_answer.py "${T2A[@]}" --device "$DEVICE" \
    --contenders bcnmf,published100,published300,cpca,bcnmf_long

section "3. Large data (benchmarks/bench_large.py ${LARGE[*]} --device ${DEVICE})"
wait "$GEN_PID"
run_step "${LIMITS[2]}" "$PY" benchmarks/bench_large.py "${LARGE[@]}" --device "$DEVICE" \
    --path "$LARGE_PATH"

echo "wrote $OUT_FILE"
