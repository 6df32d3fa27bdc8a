import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_kernel_compiles_for_hopper_with_the_real_triton_compiler():
    script = Path(__file__).with_name("compile_for_gpu.py")
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") >= 26
    assert "window=True" in result.stdout and "ok _geglu_forward" in result.stdout and "ok rotary" in result.stdout
