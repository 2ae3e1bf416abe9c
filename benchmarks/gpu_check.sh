#!/usr/bin/env bash
# The paper scale on one GPU, measured in at most 8 minutes (issue 15; benchmarks/README.md).
# Installs nothing it cannot find: it uses the python it finds ($PYTHON, python3, python), runs
# odtbench from this checkout (no `pip install -e .` needed) and names any missing module.
# Only if $GPU_CHECK_WHEELS names a local directory of wheels does it install the missing
# ones from there (pip --no-index: never from the network).
#   benchmarks/gpu_check.sh                        # CUDA; results in benchmarks/out/
#   benchmarks/gpu_check.sh --out-dir "$OUT"       # results elsewhere
#   benchmarks/gpu_check.sh --device cpu --tiny    # the whole path at a tiny size
# Arguments go to benchmarks/gpu_check.py (--help there).
set -euo pipefail
export GPU_CHECK_STARTED="$(date +%s.%N)"  # the driver's 8-minute budget starts now
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-$(command -v python3 || command -v python || echo python3)}"
if ! command -v "$py" >/dev/null 2>&1; then
    echo "gpu_check: no python found (tried '$py'); set PYTHON=/path/to/python" >&2
    exit 3
fi
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
    missing="$("$py" "$here/gpu_check.py" --check-imports 2>/dev/null || true)"
    if [ -n "$missing" ]; then
        echo "gpu_check: installing from $GPU_CHECK_WHEELS only: $missing" >&2
        # word splitting of $missing is intended: one requirement per word
        # shellcheck disable=SC2086
        "$py" -m pip install --quiet --no-index --find-links "$GPU_CHECK_WHEELS" $missing \
            || echo "gpu_check: the wheelhouse lacks some of them; the check says which" >&2
    fi
fi
# The driver keeps its own budget (<= 480 s, counted from the line above); this outer limit
# only guards against a hang outside it, such as an import that blocks.
if command -v timeout >/dev/null 2>&1; then
    exec timeout -k 5 500 "$py" "$here/gpu_check.py" "$@"
fi
exec "$py" "$here/gpu_check.py" "$@"
