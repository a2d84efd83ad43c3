#!/usr/bin/env bash
# The GPU check: CuPy's backend tests (pytest -m gpu) and the CUDA speed benchmark, results in one folder.
#
#     bash benchmarks/gpu_check.sh            # from the repository root; results in ${OUT:-gpu_results}/
#
# Needs Python with numpy, scipy, pytest, CuPy (cupy-cuda12x), array-api-compat and torch (CUDA); not Hydra,
# OmegaConf or MLflow: the code runs from this checkout (PYTHONPATH), the GPU tests (tests/unit/test_backends.py)
# import none of them, and pytest runs without the dev extra's plugins (hypothesis, xdist, randomly).
# Writes: environment.txt (versions, nvidia-smi), gpu_tests.txt (pytest -m gpu, skip reasons included),
# speed_sgd.txt and speed_adam.txt (benchmarks/speed.py --device cuda). Exit status: the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

{
    date -u
    git rev-parse HEAD 2>/dev/null
    nvidia-smi 2>&1 | head -15
    python - <<'PY'
import importlib
for name in ("numpy", "scipy", "pytest", "cupy", "array_api_compat", "torch"):
    try:
        print(f"{name} {importlib.import_module(name).__version__}")
    except Exception as e:  # noqa: BLE001 - report what is missing and go on
        print(f"{name} MISSING ({type(e).__name__}: {e})")
PY
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt"

# -o addopts: pyproject's addopts load hypothesis' and xdist's plugins, which this machine need not have
python -m pytest -o addopts=--disable-plugin-autoload -p no:cacheprovider -m gpu -rs -q tests/unit/test_backends.py \
    > "$out/gpu_tests.txt" 2>&1 || status=$?
tail -3 "$out/gpu_tests.txt"

for opt in sgd adam; do
    python benchmarks/speed.py --device cuda --optimizer "$opt" > "$out/speed_$opt.txt" 2>&1 || { rc=$?; [ "$status" = 0 ] && status=$rc; }
    tail -25 "$out/speed_$opt.txt"
done
echo "results in $out/"
exit "$status"
