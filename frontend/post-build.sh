#!/usr/bin/env bash
# trunk post_build hook: copies what the site serves besides its own build into the staging
# folder: Pyodide's runtime (npm package, vendored: no CDN at run time) and the shipped models (written by `cargo xtask assets`; optional until they exist).
set -euo pipefail
stage="${TRUNK_STAGING_DIR:?run me from trunk}"
cache="${AW_CACHE:-$HOME/.cache/attention-workshop}"
pyodide="$cache/node_modules/pyodide"
if [[ ! -f "$pyodide/pyodide.mjs" ]]; then
  echo "error: Pyodide is missing at $pyodide; run \`cargo xtask setup\` (npm install pyodide)" >&2
  exit 1
fi
mkdir -p "$stage/pyodide"
find "$pyodide" -maxdepth 1 -type f \( -name '*.mjs' -o -name '*.js' -o -name '*.wasm' -o -name '*.zip' -o -name '*.json' \) \
  -exec cp {} "$stage/pyodide/" \;
if [[ -d static/models ]]; then
  cp -r static/models "$stage/models"
fi
