"""`xlmr-ds plan` numbers against hand calculations, XLM-R's published recipe and DeepSpeed's estimator."""

import json
import subprocess
import sys

import pytest

from xlmr_ds.estimate.data_prep import (
    BINARIZE_BYTES_PER_SECOND_PER_CORE,
    BUILD_BYTES_PER_SECOND_PER_CORE,
    INDEX_LINES_PER_SECOND_PER_PROCESS,
    LARGEST_LANGUAGE_SHARE,
    PrepRates,
    corpus_lines,
    data_prep_times,
)
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


def test_modernbert_plans_count_its_own_parameters_activations_and_windowed_flops():
    """mmBERT-base at 1,024 tokens: transformers' parameter count (tests/model/test_modern.py), activations of
    s*b*(22h + 8f) per layer, and attention FLOPs over 129 keys on the two thirds of layers with a window."""
    from xlmr_ds.model.architectures import preset_config
    from xlmr_ds.model.modern_modeling import modern_parameter_count

    config = preset_config("mmbert-base")
    plan = plan_json("--model", "mmbert-base", "--gpus", "8", "--gpus-per-node", "8", "--micro-batch", "16",
                     "--seq", "1024", "--global-batch", "4608", "--tokens", "3e12")
    assert plan["parameters"] == modern_parameter_count(config)
    s, b, d, f, layers = 1024, 16, 768, 1152, 22
    assert plan["activations"] == layers * s * b * (22 * d + 8 * f)
    global_layers = len(range(0, layers, 3))
    keys = global_layers * s + (layers - global_layers) * 129
    encoder = layers * (8 * s * d**2 + 6 * s * d * f) + 4 * s * keys * d
    masked = round(0.15 * s)
    head = masked * (2 * d**2 + 2 * d * 256_000)
    assert plan["flops_per_step"] == pytest.approx(4608 * 3 * (encoder + head), rel=1e-12)


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


# Data preparation: pure arithmetic on rates (estimate/data_prep.py), checked by hand with round rates.
ROUND_RATES = PrepRates(build_bytes_per_second_per_core=1e6, binarize_bytes_per_second_per_core=1e7,
                        index_lines_per_second_per_process=1e6)


@pytest.mark.parametrize("corpus_bytes, lines, nodes, cores, processes, share, build, binarize, index", [
    (1e12, 4e9, 8, 16, 1, 0.2, 7812.5, 781.25, 4000.0),  # 1e12 / (1e6 x 128); one process indexes all 4e9 lines
    (1e12, 4e9, 8, 16, 64, 0.2, 7812.5, 781.25, 800.0),  # the largest language (0.2 x 4e9) bounds the index
    (1e12, 4e9, 8, 16, 64, 0.01, 7812.5, 781.25, 62.5),  # an even share, 4e9 / 64, is larger than 0.01 x 4e9
    (2e9, 1e7, 1, 1, 8, 0.5, 2000.0, 200.0, 5.0),
])
def test_data_prep_times_by_hand(corpus_bytes, lines, nodes, cores, processes, share, build, binarize, index):
    times = data_prep_times(corpus_bytes, lines, nodes, cores, index_processes=processes,
                            largest_language_share=share, rates=ROUND_RATES)
    assert (times.build, times.binarize, times.index) == pytest.approx((build, binarize, index))
    assert times.total == pytest.approx(build + binarize + index)


def test_a_corpus_of_cc100s_shape_has_its_lines():
    assert corpus_lines(2.5e12) == pytest.approx(314_918_000_000 / 32)  # CC-100's tokens, 32 a line
    assert LARGEST_LANGUAGE_SHARE == pytest.approx(55_608 / 314_918)  # English


def test_the_plan_prints_the_data_preparation():
    plan = plan_json(*XLMR_RECIPE)["data_prep"]  # CC-100 by default, on 8 nodes x 16 cores; 64 index processes
    lines = 314_918_000_000 / 32
    assert plan["lines"] == pytest.approx(lines) and plan["nodes"] == 8 and plan["cores_per_node"] == 16
    assert plan["build_seconds"] == pytest.approx(2.5e12 / (BUILD_BYTES_PER_SECOND_PER_CORE * 128))
    assert plan["binarize_seconds"] == pytest.approx(2.5e12 / (BINARIZE_BYTES_PER_SECOND_PER_CORE * 128))
    assert plan["index_seconds"] == pytest.approx(lines * 55_608 / 314_918 / INDEX_LINES_PER_SECOND_PER_PROCESS)
    small = plan_json(*XLMR_RECIPE, "--corpus-bytes", "1e9", "--prep-cores-per-node", "4")["data_prep"]
    assert small["build_seconds"] == pytest.approx(1e9 / (BUILD_BYTES_PER_SECOND_PER_CORE * 32))
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "plan", *XLMR_RECIPE], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines_out = result.stdout.splitlines()
    assert "data preparation: 2.5 TB corpus, 9.84B lines (CC-100's shape) on 8 nodes x 16 cores: " in result.stdout
    table = lines_out[lines_out.index(next(line for line in lines_out if line.startswith("data preparation  "))):]
    hours = {row.rsplit(None, 1)[0]: float(row.rsplit(None, 1)[1]) for row in table[1:5]}
    assert hours == pytest.approx({"corpus build (128 cores)": plan["build_seconds"] / 3600,
                                   "binarize (128 cores)": plan["binarize_seconds"] / 3600,
                                   "block index (64 processes)": plan["index_seconds"] / 3600,
                                   "total": plan["total_seconds"] / 3600}, abs=0.005)


@pytest.mark.parametrize("flags, message", [
    (["--corpus-bytes", "0"], "--corpus-bytes=0.0 must be positive"),
    (["--prep-cores-per-node", "0"], "--prep-cores-per-node=0 must be at least 1"),
])
def test_bad_data_preparation_flags_fail_with_one_line(flags, message):
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "plan", *XLMR_RECIPE, *flags], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
