#!/usr/bin/env bash
# Refresh the vendored htmx 2 and its SSE extension from the npm registry (pinned versions).
# The ui serves them itself; no page loads anything from a CDN.
set -euo pipefail
HTMX=2.0.11
SSE=2.2.4
dest="$(cd "$(dirname "$0")/.." && pwd)/services/ui/src/ui/static/vendor"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$SSE" >/dev/null)
tar -xzf "$tmp/htmx.org-$HTMX.tgz" -C "$tmp" package/dist/htmx.min.js package/LICENSE
cp "$tmp/package/dist/htmx.min.js" "$dest/htmx-$HTMX.min.js"
cp "$tmp/package/LICENSE" "$dest/htmx.LICENSE"
rm -rf "$tmp/package"
tar -xzf "$tmp/htmx-ext-sse-$SSE.tgz" -C "$tmp" package/dist/sse.min.js
cp "$tmp/package/dist/sse.min.js" "$dest/htmx-ext-sse-$SSE.min.js"
echo "vendored htmx $HTMX and htmx-ext-sse $SSE into $dest"
