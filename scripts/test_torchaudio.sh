#!/usr/bin/env bash
# The alignment tests where torchaudio imports: a second virtualenv with the GPU workers'
# torch 2.11 build and torchaudio 2.11 (about 4.6 GB and a minute to install), the rest of
# the packages read from .venv, so that tests/asr/test_align.py checks asr.align's Viterbi
# path against torchaudio.functional.forced_align instead of skipping that test.
set -euo pipefail
cd "$(dirname "$0")/.."
side=.venv-torchaudio
test -d "$side" || python3 -m venv "$side"
"$side/bin/pip" install --quiet --disable-pip-version-check torch==2.11.0 torchaudio==2.11.0
main_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
side_site=$("$side/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# a .pth line goes after the side env's own packages: its torch is found before .venv's
echo "$(realpath "$main_site")" > "$side_site/vernacular-main-venv.pth"
"$side/bin/python" -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
"$side/bin/python" -m pytest -p no:cacheprovider -rs tests/asr/test_align.py "$@"
