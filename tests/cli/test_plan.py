"""`xlmr-ds plan` numbers against hand calculations, XLM-R's published recipe and DeepSpeed's estimator."""

import json
import subprocess
import sys

import pytest

from xlmr_ds.estimate.planning import activation_bytes, make_plan
from xlmr_ds.model import preset

XLMR_RECIPE = ["--model", "large", "--gpus", "64", "--gpus-per-node", "8", "--gpu", "h100", "--zero", "2",
               "--micro-batch", "16", "--seq", "512", "--global-batch", "8192", "--tokens", "6.3e12", "--mfu", "0.4"]


def plan_json(*args):
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "plan", *args, "--json"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_xlmr_recipe_costs_what_its_flops_say(tmp_path):
    plan = plan_json(*XLMR_RECIPE, "--write-config", str(tmp_path / "ds.json"))
    psi, layers, d, vocab, s, m = 560_142_482, 24, 1024, 250_002, 512, 77
    per_sequence = 3 * (layers * (24 * s * d**2 + 4 * s**2 * d) + m * (2 * d**2 + 2 * d * vocab))
    assert per_sequence / 1e12 == pytest.approx(1.12, abs=0.01)  # 3 x forward of a 512-token sequence of Large, 15% labelled
    assert plan["flops_per_step"] == pytest.approx(8192 * per_sequence)
    assert plan["steps"] == 1_502_038  # ceil(6.3e12 / (8192 x 512))
    hours = plan["steps"] * 8192 * per_sequence / (989e12 * 0.4) / 3600
    assert plan["gpu_hours"] == pytest.approx(hours)
    assert plan["gpu_hours"] == pytest.approx(9_700, rel=0.01)  # 6.3e12 tokens at 40% MFU of an H100's 989 TFLOP/s
    # ZeRO-2 model states: 2 + 2/N + 12/N bytes per parameter.
    assert (plan["weights"], plan["gradients"], plan["optimizer"]) == (2 * psi, 2 * psi // 64, 12 * psi // 64)
    assert plan["fits"] is True and plan["accumulation"] == 8
    written = json.loads((tmp_path / "ds.json").read_text())
    assert written == plan["ds_config"]
    assert written["train_batch_size"] == 8192 and written["gradient_accumulation_steps"] == 8
    assert written["zero_optimization"]["stage"] == 2


def test_model_states_match_deepspeeds_estimator():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    plan = plan_json(*[a if a != "2" else "3" for a in XLMR_RECIPE])
    _, gpu, _ = estimate_zero3_model_states_mem_needs(560_142_482, 250_002 * 1024, 8, 8, cpu_offload=False,
                                                      cpu_offload_params=False)
    assert plan["deepspeed_model_states"] == gpu


def test_activation_memory_formula_and_checkpointing():
    config = preset("large")
    full, checkpointed = activation_bytes(config, micro_batch=16, seq=512)
    s, b, h, a, layers = 512, 16, 1024, 16, 24
    assert full == int(layers * s * b * h * (34 + 5 * a * s / h))
    assert checkpointed == int(layers * 2 * s * b * h + s * b * h * (34 + 5 * a * s / h))
    assert checkpointed < full / 10


def test_a_plan_that_does_not_fit_says_so():
    plan = make_plan(preset("large"), gpus=1, gpus_per_node=1, gpu="a100", zero=2, micro_batch=64, seq=512,
                     global_batch=64, tokens=1e9, mfu=0.4, peak_tflops=None, activation_checkpointing=False)
    assert not plan.fits
    fitted = make_plan(preset("large"), gpus=1, gpus_per_node=1, gpu="a100", zero=2, micro_batch=64, seq=512,
                       global_batch=64, tokens=1e9, mfu=0.4, peak_tflops=None, activation_checkpointing=True)
    assert fitted.total < plan.total


BAD_PLANS = [
    (["--global-batch", "1000"], "--global-batch=1000 is not a multiple of --micro-batch x --gpus = 1024"),
    (["--gpu", "v100"], "--gpu 'v100' is not in the table"),
    (["--zero", "4"], "--zero=4 must be 1, 2 or 3"),
    (["--seq", "1024"], "--seq=1024 exceeds the model's 512 positions"),
    (["--gpus", "60"], "--gpus=60 is not a multiple of --gpus-per-node=8"),
]


@pytest.mark.parametrize("change,message", BAD_PLANS)
def test_bad_plans_fail_with_one_line(change, message):
    args = list(XLMR_RECIPE)
    flag = change[0]
    args[args.index(flag) + 1] = change[1]
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "plan", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
