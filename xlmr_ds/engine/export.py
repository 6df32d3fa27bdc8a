"""Export a training checkpoint to a Hugging Face directory: DeepSpeed's own zero_to_fp32 consolidates the
ZeRO shards, our model of the run's architecture loads them, and save_hf (XLM-R) or save_modern_hf
(ModernBERT) writes config.json, model.safetensors and the tokenizer."""

from __future__ import annotations

import hashlib
from pathlib import Path

from xlmr_ds.accelerator import select_deepspeed_accelerator
from xlmr_ds.engine.checkpoint import CheckpointInfo, complete_checkpoints, verify_files
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import library_output_silenced
from xlmr_ds.model.architectures import config_from_dict, masked_lm
from xlmr_ds.model.hf import save_hf
from xlmr_ds.model.modern_config import ModernBertConfig


def choose_checkpoint(save_dir: str | Path, step: int | None) -> CheckpointInfo:
    complete = complete_checkpoints(save_dir)
    if not complete:
        raise XLMRDSError(f"{save_dir}: no complete checkpoint (a step_* directory with its completion marker); "
                          f"pass the --save directory of a run that saved one (xlmr-ds ckpt list DIR shows them)")
    if step is None:
        return complete[-1]
    for info in complete:
        if info.step == step:
            return info
    raise XLMRDSError(f"{save_dir}: no complete checkpoint at step {step}; complete steps: "
                      f"{', '.join(str(c.step) for c in complete)}")


def load_checkpoint_model(info: CheckpointInfo):
    """The checkpoint's weights, consolidated to fp32, in our model of the run's architecture (on CPU)."""
    verify_files(info)
    select_deepspeed_accelerator()
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with library_output_silenced(stderr=True):  # its lines and shard bar tell a user nothing they can act on
        state = get_fp32_state_dict_from_zero_checkpoint(str(info.path.parent), tag=info.path.name)
    state = {key: value.contiguous() for key, value in state.items()}
    model = masked_lm(config_from_dict(info.marker["model_config"], f"{info.path}: model_config"), initialize=False)
    for name in model.state_dict():
        if name.endswith("decoder.weight"):
            state.setdefault(name, state["embeddings.word.weight"])  # the tie, stored once
    model.load_state_dict(state, strict=True)
    return model.eval()


def export_checkpoint(save_dir: str | Path, out_dir: str | Path, step: int | None = None,
                      tokenizer_model: str | Path | None = None) -> CheckpointInfo:
    info = choose_checkpoint(save_dir, step)
    tokenizer = info.marker["tokenizer"]
    path = Path(tokenizer_model or tokenizer["path"])
    if not path.is_file():
        raise XLMRDSError(f"{path}: the run's SentencePiece model is not there; pass --spm MODEL")
    if hashlib.sha256(path.read_bytes()).hexdigest() != tokenizer["sha256"]:
        raise XLMRDSError(f"{path}: not the SentencePiece model this run was trained with (sha256 differs)")
    model = load_checkpoint_model(info)
    if isinstance(model.config, ModernBertConfig):
        from xlmr_ds.model.modern_hf import save_modern_hf

        save_modern_hf(model, out_dir, tokenizer_model=path)
    else:
        save_hf(model, out_dir, tokenizer_model=path)
    return info
