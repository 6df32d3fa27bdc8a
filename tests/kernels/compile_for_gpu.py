"""Compile every Triton kernel variant for a Hopper GPU (sm_90) with Triton's real compiler, on any machine.

The interpreter that runs the kernels on CPU accepts some programs the compiler rejects (types, layouts,
constexpr use); compiling to a cubin needs no GPU, so CPU-only CI catches those before a GPU session.
Run as a script with TRITON_INTERPRET unset (the kernels must be JIT functions, not interpreted ones):
    python tests/kernels/compile_for_gpu.py [--all]   -> one line per variant, exit 1 on the first failure
By default a representative set (each dtype, head-dim block configuration and flag once, the sliding window
included: 31 compiles, a minute or two on 2 cores); --all compiles every combination (about 130, several
minutes).
"""

from __future__ import annotations

import os
import sys

os.environ["TRITON_INTERPRET"] = "0"

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from xlmr_ds.kernels import flash_attention as fa  # noqa: E402
from xlmr_ds.kernels import fused_bias_gelu as bg  # noqa: E402
from xlmr_ds.kernels import fused_geglu as gg  # noqa: E402
from xlmr_ds.kernels import fused_residual_layernorm as rl  # noqa: E402
from xlmr_ds.kernels import fused_rotary as ro  # noqa: E402
from xlmr_ds.kernels import masked_softmax as ms  # noqa: E402
from xlmr_ds.kernels import mlm_masking as mm  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
DTYPE_NAMES = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}


def _attention_signature(kernel, dtype: str) -> dict:
    tensors = {"Q", "K", "V", "O", "DO", "DK", "DV", "DQ"}
    kinds = {"LSE": "*fp32", "DELTA": "*fp32", "KEY_MASK": "*i8", "CU_SEQLENS": "*i32", "SEEDS": "*i64", "seed": "i64",
             "drop_threshold": "i64", "scale": "fp32", "scale_log2": "fp32", "keep_scale": "fp32"}
    signature = {}
    for name in kernel.arg_names:
        if name in tensors:
            signature[name] = f"*{dtype}"
        elif name in kinds:
            signature[name] = kinds[name]
        elif name.isupper() or name in ("HEAD_DIM", "DOT_PRECISION"):
            signature[name] = "constexpr"
        else:
            signature[name] = "i32"
    return signature


# (dtype, head_dim, varlen, key mask, dropout, per-sample seeds, sliding window): each flag and each dtype and
# block configuration once.
REPRESENTATIVE = [("bf16", 64, False, True, True, False, False), ("fp32", 128, True, False, True, True, False),
                  ("fp16", 32, False, False, False, False, False), ("bf16", 64, True, False, True, True, False),
                  ("bf16", 64, False, True, False, False, True), ("bf16", 64, True, False, True, True, True)]


def attention_variants(everything: bool):
    combinations = REPRESENTATIVE
    if everything:
        combinations = [(dtype, head_dim, *flags) for dtype in ("bf16", "fp16", "fp32") for head_dim in fa.HEAD_DIMS
                        for flags in ((False, True, True, False, False), (True, False, True, False, False),
                                      (False, False, False, False, False), (False, True, True, True, False),
                                      (True, False, True, True, False), (False, True, False, False, True),
                                      (True, False, True, True, True))]
    for kernel, blocks in ((fa._attention_forward, fa._block_sizes),
                           (fa._attention_backward_dkdv, fa._backward_block_sizes),
                           (fa._attention_backward_dq, fa._backward_block_sizes)):
        for dtype, head_dim, varlen, mask, dropout, per_sample, window in combinations:
            config = blocks(head_dim, torch.device("cuda"))
            constants = {"HEAD_DIM": head_dim, "BLOCK_M": config["BLOCK_M"], "BLOCK_N": config["BLOCK_N"],
                         "HAS_KEY_MASK": mask, "IS_VARLEN": varlen, "HAS_DROPOUT": dropout,
                         "DOT_PRECISION": "ieee" if dtype == "fp32" else "tf32", "PER_SAMPLE_SEEDS": per_sample,
                         "HAS_WINDOW": window}
            name = (f"{kernel.fn.__name__} {dtype} d{head_dim} varlen={varlen} mask={mask} "
                    f"dropout={dropout} per_sample_seeds={per_sample} window={window}")
            options = {"num_warps": config["num_warps"], "num_stages": config["num_stages"]}
            yield name, kernel, _attention_signature(kernel, dtype), constants, options


def other_variants(everything: bool):
    for dtype in ("bf16", "fp16", "fp32") if everything else ("bf16",):
        for kind, mask_type in ((0, "*fp32"), (1, "*i8"), (2, f"*{dtype}")) if everything else ((1, "*i8"),):
            signature = dict.fromkeys(ms._masked_softmax_forward.arg_names, "i32")
            signature.update(X=f"*{dtype}", MASK=mask_type, Y=f"*{dtype}", scale="fp32", BLOCK="constexpr",
                             MASK_KIND="constexpr")
            yield (f"masked_softmax_forward {dtype} mask_kind={kind}", ms._masked_softmax_forward, signature,
                   {"BLOCK": 512, "MASK_KIND": kind}, {"num_warps": 4})
        signature = dict.fromkeys(ms._masked_softmax_backward.arg_names, "i32")
        signature.update(Y=f"*{dtype}", DY=f"*{dtype}", DX=f"*{dtype}", scale="fp32", BLOCK="constexpr")
        yield f"masked_softmax_backward {dtype}", ms._masked_softmax_backward, signature, {"BLOCK": 4096}, {"num_warps": 8}
    signature_mlm = dict.fromkeys(mm._mlm_masking.arg_names, "i64")
    signature_mlm.update(TOKENS="*i64", SAMPLE_INDEX="*i64", SPECIAL="*i8", INPUT_IDS="*i64", LABELS="*i64",
                     seq_len="i32", stride_tokens="i32", stride_out="i32", vocab_size="i32", seed="u64",
                     STREAM="constexpr", IGNORE="constexpr", BLOCK="constexpr")
    for kernel in (bg._bias_gelu_forward, bg._bias_gelu_backward):
        signature = dict.fromkeys(kernel.arg_names, "*bf16")
        signature.update(n_cols="i32", BLOCK="constexpr")
        yield f"{kernel.fn.__name__} bf16", kernel, signature, {"BLOCK": 1024}, {"num_warps": 4}
    for kernel in (gg._geglu_forward, gg._geglu_backward):
        signature = dict.fromkeys(kernel.arg_names, "*bf16")
        signature.update(width="i32", BLOCK="constexpr")
        yield f"{kernel.fn.__name__} bf16", kernel, signature, {"BLOCK": 1024}, {"num_warps": 4}
    for backward in (False, True):
        signature = dict.fromkeys(ro._rotary.arg_names, "i32")
        signature.update(X="*bf16", COS="*bf16", SIN="*bf16", Y="*bf16", HALF="constexpr", BLOCK="constexpr",
                         BACKWARD="constexpr")
        yield (f"rotary bf16 d64 backward={backward}", ro._rotary, signature,
               {"HALF": 32, "BLOCK": 32, "BACKWARD": backward}, {"num_warps": 1})
    for kernel in (rl._forward, rl._backward):
        for per_sample in (False, True):
            signature = dict.fromkeys(kernel.arg_names, "*bf16")
            signature.update(dict.fromkeys(("MEAN", "RSTD", "DWEIGHT_PARTIAL", "DBIAS_PARTIAL"), "*fp32"))
            signature.update(n_rows="i32", n_cols="i32", eps="fp32", keep_scale="fp32", drop_threshold="i64",
                             seed="i64", offset="i32", SEEDS="*i64", ROW_SAMPLE="*i32", ROW_POSITION="*i32",
                             HAS_DROPOUT="constexpr", STREAM_WORD="constexpr", BLOCK="constexpr", ROWS="constexpr",
                             PER_SAMPLE_SEEDS="constexpr")
            constants = {"HAS_DROPOUT": True, "STREAM_WORD": rl.STREAM, "BLOCK": 1024, "ROWS": rl.ROWS_PER_PROGRAM,
                         "PER_SAMPLE_SEEDS": per_sample}
            signature = {name: kind for name, kind in signature.items() if name in kernel.arg_names}
            constants = {name: value for name, value in constants.items() if name in kernel.arg_names}
            yield (f"residual_layernorm{kernel.fn.__name__} bf16 dropout per_sample_seeds={per_sample}", kernel,
                   signature, constants, {"num_warps": 4})
    yield ("mlm_masking", mm._mlm_masking, signature_mlm,
           {"STREAM": 0x4D4C4D00, "IGNORE": -100, "BLOCK": 512}, {"num_warps": 4})


def main() -> int:
    everything = "--all" in sys.argv[1:]
    for name, kernel, signature, constants, options in [*attention_variants(everything), *other_variants(everything)]:
        if not isinstance(kernel, triton.runtime.jit.JITFunction):
            print(f"{name}: not a JIT function (is TRITON_INTERPRET set?)")
            return 1
        try:
            triton.compile(ASTSource(kernel, signature, constexprs=constants), target=HOPPER, options=options)
        except Exception as error:  # report which variant and why, in one line
            print(f"FAILED {name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            return 1
        print(f"ok {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
