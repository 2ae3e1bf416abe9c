#!/usr/bin/env bash
# Screenshot a rendered report with headless Chromium (Debian's `chromium` package), offline.
#   scripts/screenshot_report.sh reports/toy.html [out.png] [width] [height]
# The report is self-contained, so no network is needed; background networking is off anyway.
set -euo pipefail

html=${1:?usage: $0 REPORT.html [OUT.png] [WIDTH] [HEIGHT]}
out=${2:-${html%.html}.png}
width=${3:-1400}
height=${4:-3000}

[[ -f "$html" ]] || { echo "screenshot_report: $html not found; render it first (odtbench report)" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n "$browser" ]] || { echo "screenshot_report: no chromium; install it (apt-get install -y chromium)" >&2; exit 2; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
  --user-data-dir="$profile" --window-size="${width},${height}" \
  --screenshot="$(realpath -m "$out")" "file://$(realpath "$html")" >/dev/null 2>&1
[[ -s "$out" ]] || { echo "screenshot_report: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
