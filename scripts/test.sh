#!/usr/bin/env bash
# `make test`: lint and the whole suite, with the slow cached artifacts built meanwhile.
#
# On a fresh machine the pod kernel, the node image and the pod initramfs take minutes to build
# (cached by content afterwards). nestlab.prebuild builds them in the background while lint and the
# unit tests keep one core busy; a test that needs one still being built waits on its cache lock.
# The prebuild is stopped by its process group when this script ends, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
log=build/prebuild.log
setsid .venv/bin/python -m nestlab.prebuild >"$log" 2>&1 &
prebuild=$!
stop_prebuild() {
    kill -- "-$prebuild" 2>/dev/null || true
    wait "$prebuild" 2>/dev/null || true
}
trap stop_prebuild EXIT
echo "prebuild: pod kernel, node image and initramfs building in the background (pid $prebuild, log $log)"
make --no-print-directory lint
status=0
.venv/bin/pytest "$@" || status=$?
if ! kill -0 "$prebuild" 2>/dev/null; then
    wait "$prebuild" || echo "prebuild: a build failed (the tests that needed it built it again):"
fi
sed 's/^/  /' "$log"
exit "$status"
