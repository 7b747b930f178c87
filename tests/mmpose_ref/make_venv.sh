#!/usr/bin/env bash
# Build (once, cached) a throwaway venv holding the REAL mmpose 1.3.2, for
# tests/test_conformance_mmpose.py. Prints the venv's python on the last line.
#
#   DWPOSE_EDGE_MMPOSE_VENV    where the venv lives (default ~/.cache/dwpose_edge/mmpose-venv;
#                              outside the repo so clean CI checkouts reuse it)
#   DWPOSE_EDGE_MMPOSE_PYTHON  interpreter to base it on (default python3; 3.9-3.12)
#   DWPOSE_EDGE_MMPOSE_TORCH   pip spec of torch (default torch==2.13.0; the test passes the
#                              project's torch version). Where no CPU wheel is on the index or
#                              find-links, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu,
#                              or a bare PyPI torch pulls the multi-GB CUDA build.
#   DWPOSE_EDGE_MMPOSE_OPENCV  pip spec of OpenCV to put in it (default opencv-python-headless==4.11.0.86:
#                              the last OpenCV built against numpy 1, i.e. what an mmpose 1.3.2 user with
#                              numpy<2 really runs). Deliberately NOT the project's own OpenCV: the
#                              conformance test must show that our default install crops as mmpose's
#                              users do, not that two copies of one library agree.
#
# Exit codes: 0 ready, 3 the package index is unreachable (the test skips with that
# reason, or fails under CI), anything else a real build failure (log printed).
#
# Recipe (what mmpose 1.3.2 really needs on a CPU box without mmcv's compiled ops):
#   torch==2.13.0          CPU build (from the local find-links wheel; never a bare `torch`,
#                          which pulls a multi-GB CUDA build). Its wheels are built against
#                          the numpy 2 C-API, which runs on numpy>=1.25, so numpy<2 is fine.
#   numpy<2                mmpose 1.3.2 / xtcocotools 1.14.3 wheels are numpy-1 builds.
#   setuptools<81          mmengine's get_installed_path imports pkg_resources (removed in
#                          setuptools 81); mmpose.apis imports it at import time.
#   mmengine==0.10.7, mmcv-lite==2.2.0, mmpose==1.3.2   --no-deps: their metadata asks for
#                          opencv-python (GUI build, needs libGL), chumpy and torchvision,
#                          none of which the top-down path uses. mmpose_dump.py stubs
#                          mmcv.ops, mmdet.utils and torchvision.transforms in memory.
#   mmengine's deps        addict pyyaml rich termcolor yapf matplotlib
#   mmcv-lite's deps       packaging pillow
#   mmpose's deps          json_tricks munkres scipy xtcocotools six (six.moves in models/utils/misc.py)
#   OpenCV                 --no-deps: keep numpy<2 and keep out the GUI opencv-python (mmcv asks for
#                          it; headless has the same imgproc/imgcodecs code).
set -euo pipefail

VENV="${DWPOSE_EDGE_MMPOSE_VENV:-$HOME/.cache/dwpose_edge/mmpose-venv}"
PY="${DWPOSE_EDGE_MMPOSE_PYTHON:-python3}"
OPENCV="${DWPOSE_EDGE_MMPOSE_OPENCV:-opencv-python-headless==4.11.0.86}"
TORCH="${DWPOSE_EDGE_MMPOSE_TORCH:-torch==2.13.0}"
RECIPE_VERSION=5   # bump when the package list below changes

PKG_BASE=("numpy<2" "setuptools<81" addict pyyaml rich termcolor yapf matplotlib packaging pillow
          json_tricks munkres scipy xtcocotools six)
PKG_MM=("mmengine==0.10.7" "mmcv-lite==2.2.0" "mmpose==1.3.2")

py_version="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
want_stamp="recipe=$RECIPE_VERSION python=$py_version opencv=$OPENCV torch=$TORCH mm=${PKG_MM[*]}"
stamp="$VENV/.dwpose_edge_ready"

ready() { [[ -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" && -x "$VENV/bin/python" ]]; }

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"          # one builder at a time (parallel pytest sessions, CI jobs)
if command -v flock >/dev/null; then flock 9; fi

if ready; then
    echo "$VENV/bin/python"
    exit 0
fi

log="$VENV.build.log"
: >"$log"
echo "building mmpose reference venv in $VENV (log: $log)" >&2
rm -rf "$VENV"
start=$SECONDS

index_unreachable() {
    # Tell 'no network / no index' apart from a broken recipe: can pip fetch mmpose at all?
    local tmp
    tmp="$(mktemp -d)"
    if "$VENV/bin/python" -m pip download -q --no-deps --no-cache-dir -d "$tmp" "mmpose==1.3.2" >>"$log" 2>&1; then
        rm -rf "$tmp"; return 1
    fi
    rm -rf "$tmp"; return 0
}

pipi() {
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
        if index_unreachable; then
            echo "package index unreachable: cannot download mmpose==1.3.2 (see $log)" >&2
            exit 3
        fi
        tail -n 40 "$log" >&2
        echo "mmpose venv build failed at: pip install $*" >&2
        exit 1
    fi
}

"$PY" -m venv "$VENV" >>"$log" 2>&1
pipi "$TORCH"
pipi "${PKG_BASE[@]}"
pipi --no-deps "${PKG_MM[@]}"
# The OpenCV 4.x mmpose users run (no-deps: keep numpy<2, keep out the GUI opencv-python).
pipi --no-deps "$OPENCV"

# Smoke test: the imports mmpose_dump.py relies on (stubs are in mmpose_dump.py itself).
if ! DWPOSE_EDGE_MMPOSE_TORCH="$TORCH" "$VENV/bin/python" - >>"$log" 2>&1 <<'EOF'
import os
import numpy, torch, cv2, scipy, six, xtcocotools, json_tricks, munkres, mmengine, mmcv
assert numpy.__version__.startswith("1."), numpy.__version__
want = os.environ["DWPOSE_EDGE_MMPOSE_TORCH"].partition("==")[2]
assert torch.__version__.split("+")[0] == want.split("+")[0] or not want, (torch.__version__, want)
torch.from_numpy(numpy.zeros(3)).numpy()
cv2.warpAffine(numpy.zeros((4, 4, 3), numpy.uint8), numpy.eye(2, 3), (4, 4))
print("smoke ok", numpy.__version__, torch.__version__, cv2.__version__, mmengine.__version__)
EOF
then
    tail -n 40 "$log" >&2
    echo "mmpose venv smoke test failed" >&2
    exit 1
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! "$VENV/bin/python" "$here/mmpose_dump.py" --check-imports >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "mmpose (with mmpose_dump.py's stubs) does not import in $VENV" >&2
    exit 1
fi

echo "$want_stamp" >"$stamp"
echo "mmpose reference venv ready in $((SECONDS - start)) s" >&2
echo "$VENV/bin/python"
