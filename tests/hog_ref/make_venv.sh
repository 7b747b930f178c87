#!/usr/bin/env bash
# Build (once, cached) a side venv with OpenCV 4.x, whose objdetect module still has HOGDescriptor,
# for tests/test_hog.py's conformance tests. Prints the venv's python on the last line.
#
#   DWPOSE_EDGE_OPENCV4_VENV    where the venv lives (default ~/.cache/dwpose_edge/opencv4-venv)
#   DWPOSE_EDGE_OPENCV4_PYTHON  interpreter to base it on (default python3)
#   DWPOSE_EDGE_OPENCV4_SPEC    pip spec of OpenCV (default opencv-python-headless==4.14.0.94)
#
# Exit codes: 0 ready, 3 the package index is unreachable (the tests skip), anything else a real
# build failure (log printed). Needs only numpy and OpenCV: no torch.
set -euo pipefail

VENV="${DWPOSE_EDGE_OPENCV4_VENV:-$HOME/.cache/dwpose_edge/opencv4-venv}"
PY="${DWPOSE_EDGE_OPENCV4_PYTHON:-python3}"
OPENCV="${DWPOSE_EDGE_OPENCV4_SPEC:-opencv-python-headless==4.14.0.94}"
want_stamp="opencv=$OPENCV python=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
stamp="$VENV/.dwpose_edge_ready"

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then flock 9; fi

smoke() { "$VENV/bin/python" -c 'import cv2, numpy; cv2.HOGDescriptor_getDefaultPeopleDetector(); print(cv2.__version__)'; }

if [[ -x "$VENV/bin/python" ]] && { [[ -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]] || \
        { [[ ! -f "$stamp" ]] && smoke >/dev/null 2>&1 && echo "$want_stamp" >"$stamp"; }; }; then
    echo "$VENV/bin/python"
    exit 0
fi

log="$VENV.build.log"
: >"$log"
echo "building OpenCV 4 reference venv in $VENV (log: $log)" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV" >>"$log" 2>&1
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$OPENCV" numpy >>"$log" 2>&1; then
    tmp="$(mktemp -d)"
    if ! "$VENV/bin/python" -m pip download -q --no-deps --no-cache-dir -d "$tmp" "$OPENCV" >>"$log" 2>&1; then
        rm -rf "$tmp"
        echo "package index unreachable: cannot download $OPENCV (see $log)" >&2
        exit 3
    fi
    rm -rf "$tmp"
    tail -n 40 "$log" >&2
    echo "OpenCV 4 venv build failed (see $log)" >&2
    exit 1
fi
if ! smoke >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "OpenCV 4 venv smoke test failed: no HOGDescriptor_getDefaultPeopleDetector" >&2
    exit 1
fi
echo "$want_stamp" >"$stamp"
echo "$VENV/bin/python"
