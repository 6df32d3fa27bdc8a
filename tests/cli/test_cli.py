"""The `xlmr-ds` commands as a user runs them: real processes, real exit codes, real output."""

import json
import subprocess
import sys

import pytest

from xlmr_ds.estimate.memory import model_state_memory


def xlmr_ds(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xlmr_ds", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("model,count", [("base", "278,295,186"), ("large", "560,142,482")])
def test_info_prints_the_exact_parameter_count(model, count):
    result = xlmr_ds("info", "--model", model)
    assert result.returncode == 0, result.stderr
    assert f"parameters: {count} " in result.stdout
    assert "ZeRO" in result.stdout and "DeepSpeed est. GPU" in result.stdout


@pytest.mark.parametrize("model,published_millions", [("modernbert-base", 149), ("modernbert-large", 395),
                                                      ("mmbert-small", 140), ("mmbert-base", 307)])
def test_info_counts_modernbert_presets_as_transformers_does(model, published_millions):
    """The released models' sizes (Warner et al. 2024; Marone et al. 2025), counted by transformers on the meta
    device from the config xlmr-ds would export."""
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    from xlmr_ds.model.modern_config import MODERN_PRESETS
    from xlmr_ds.model.modern_hf import modern_config_to_hf

    result = xlmr_ds("info", "--model", model, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    with torch.device("meta"):
        hf = ModernBertForMaskedLM(ModernBertConfig.from_dict(modern_config_to_hf(MODERN_PRESETS[model])))
    assert report["parameters"] == sum(p.numel() for p in hf.parameters())
    assert report["parameters"] // 10**6 == published_millions
    assert report["architecture"] == "modernbert"
    assert report["largest_parameter"] == hf.model.embeddings.tok_embeddings.weight.numel()


@pytest.mark.parametrize("precision,param_bytes,grad_bytes", [("mixed", 2, 2), ("fp32", 4, 4)])
@pytest.mark.parametrize("gpus_per_node,nodes", [(8, 1), (8, 4), (1, 1)])
def test_info_memory_matches_hand_calculation_and_deepspeed_estimators(gpus_per_node, nodes, precision, param_bytes,
                                                                       grad_bytes):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    result = xlmr_ds("info", "--model", "large", "--gpus-per-node", str(gpus_per_node), "--nodes", str(nodes),
                     "--precision", precision, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    psi, gpus, largest = 560_142_482, gpus_per_node * nodes, 250_002 * 1024
    assert report["parameters"] == psi and report["largest_parameter"] == largest
    # ZeRO paper: (params, grads, optimizer) bytes per GPU for stages 1, 2, 3; 12 optimizer bytes either way.
    p, g = param_bytes, grad_bytes
    expected = {"1": (p * psi, g * psi, 12 * psi // gpus, 0),
                "2": (p * psi, g * psi // gpus, 12 * psi // gpus, 0),
                "3": (p * psi // gpus, g * psi // gpus, 12 * psi // gpus, (p + g) * largest)}
    for stage, (params, grads, optimizer, gathered) in expected.items():
        row = report["zero"][stage]
        assert (row["params"], row["grads"], row["optimizer"], row["gathered"]) == (params, grads, optimizer, gathered)
        assert row["total"] == params + grads + optimizer
    cpu2, gpu2 = estimate_zero2_model_states_mem_needs(psi, gpus_per_node, nodes, cpu_offload=False)
    cpu3, gpu3, _ = estimate_zero3_model_states_mem_needs(psi, largest, gpus_per_node, nodes,
                                                          cpu_offload=False, cpu_offload_params=False)
    assert [report["zero"][s]["deepspeed_gpu"] for s in "123"] == [gpu2, gpu2, gpu3]
    assert [report["zero"][s]["deepspeed_cpu_per_node"] for s in "123"] == [cpu2, cpu2, cpu3]


def test_memory_stage_is_validated():
    with pytest.raises(ValueError, match="ZeRO stage must be 1, 2 or 3"):
        model_state_memory(4, 10, 5, 1, 1)


def test_smoke_trains_the_tiny_model_and_the_loss_falls():
    result = xlmr_ds("smoke", "--model", "tiny", "--steps", "4", "--seq", "32")
    assert result.returncode == 0, result.stderr
    losses = [float(line.split("loss ")[1]) for line in result.stdout.splitlines() if line.startswith("step ")]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert "tokens/s" in result.stdout


def test_model_config_file_is_accepted(tmp_path):
    config = tmp_path / "m.json"
    config.write_text(json.dumps({"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                  "ffn_size": 64}))
    result = xlmr_ds("info", "--model-config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"]["hidden_size"] == 32


BAD_INVOCATIONS = [
    (["info", "--model", "huge"], "invalid choice: 'huge'"),
    (["info", "--gpus-per-node", "0"], "--gpus-per-node=0 must be at least 1"),
    (["info", "--model-config", "missing.json"], "missing.json: model config file not found"),
    (["smoke", "--steps", "-3"], "--steps=-3 must be at least 1"),
    (["smoke", "--seq", "600"], "--seq=600 must be between 3 and 512"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    ([], "required: COMMAND"),
]


@pytest.mark.parametrize("args,message", BAD_INVOCATIONS)
def test_bad_invocations_fail_with_one_line_and_no_traceback(args, message):
    result = xlmr_ds(*args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


def test_console_script_and_module_entry_point_agree():
    import shutil

    script = shutil.which("xlmr-ds", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script, "the xlmr-ds console script is not installed next to this Python"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("xlmr-ds ")


def test_the_command_line_starts_without_torch():
    """Every command parses its flags before anything heavy loads: `xlmr-ds ... --help` and every refused flag
    come back in well under a second, not after importing torch, DeepSpeed or transformers (several seconds)."""
    probe = ("import sys; from xlmr_ds.cli.main import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'deepspeed', 'transformers', 'matplotlib', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_output_into_a_closed_pipe_ends_quietly():
    """`xlmr-ds info ... | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    process = subprocess.Popen([sys.executable, "-m", "xlmr_ds", "info", "--model", "large", "--gpus-per-node", "8"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command has written anything: its first write finds no reader
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141 and b"Traceback" not in stderr, stderr.decode()[-2000:]


def test_fill_mask_ends_with_the_reports_count_of_word_answers(spm_model, tmp_path):
    """The last line counts the top answers that are words in their prompt's script, as transformers' pipeline
    ranks them and `xlmr-ds report` judges them (a random tiny model: whatever it answers, the count must agree)."""
    import torch
    from transformers import pipeline

    from xlmr_ds.model import XLMRForMaskedLM, preset
    from xlmr_ds.model.hf import save_hf
    from xlmr_ds.tools.report import is_word_in_script_of

    torch.manual_seed(0)
    save_hf(XLMRForMaskedLM(preset("tiny").replace(vocab_size=502)), tmp_path / "hf", tokenizer_model=spm_model)
    prompts = ["The weather is <mask> today.", "Сегодня <mask> погода.", "Das ist ein <mask> Haus.", "Это <mask> дом."]
    result = xlmr_ds("fill-mask", "--model", str(tmp_path / "hf"), *prompts)
    assert result.returncode == 0, result.stderr
    fill = pipeline("fill-mask", model=str(tmp_path / "hf"))
    expected = sum(is_word_in_script_of(fill.tokenizer.convert_ids_to_tokens(fill(p, top_k=1)[0]["token"]), p)
                   for p in prompts)
    assert 0 < expected < len(prompts)  # this model's answers are some words of the prompt's script, some not
    assert result.stdout.splitlines()[-1] == f"top answers that are words in the prompt's script: {expected} of 4"
