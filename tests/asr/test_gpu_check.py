"""scripts/gpu_check.sh and .py: the no-GPU answer, and the measurements at smoke sizes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_the_check_says_so_in_one_line_and_exits_0():
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0:
        pytest.skip("this machine has nvidia-smi: the check would measure")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert (
        done.stdout
        == "gpu_check: no NVIDIA GPU here (nvidia-smi finds none); nothing to measure.\n"
    )


def test_the_measurements_run_end_to_end_at_smoke_sizes_on_the_cpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    figures = {
        int(line[0]): line for line in done.stdout.splitlines() if re.match(r"^[1-4]\. ", line)
    }
    assert sorted(figures) == [1, 2, 3, 4]
    for number in (1, 3):
        assert float(re.search(r"([\d,.]+) audio s/s", figures[number])[1].replace(",", "")) > 0
    ours, theirs = re.findall(r"([\d,.]+) audio s/s", figures[2])
    assert float(ours.replace(",", "")) > 0 and float(theirs.replace(",", "")) > 0
    assert len(re.findall(r"step \d+: \d+\.\d+", figures[4])) >= 2  # a loss curve
