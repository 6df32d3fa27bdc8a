"""`xlmr-ds info`: a model's exact parameter count and its model-state memory per GPU under ZeRO 1/2/3."""

from __future__ import annotations

import argparse
import json

from xlmr_ds.cli.arguments import add_model_arguments, model_config_from_args, positive_int, require_at_least
from xlmr_ds.cli.table import format_table
from xlmr_ds.estimate.memory import BYTES_PER_PARAMETER
from xlmr_ds.model.architectures import MODERNBERT, XLMR

GIB = 1024**3


def register(commands) -> None:
    parser = commands.add_parser("info", help="parameter count and ZeRO memory per GPU of a model")
    add_model_arguments(parser, default="large", architectures=(XLMR, MODERNBERT))
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    parser.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    parser.add_argument("--precision", choices=sorted(BYTES_PER_PARAMETER), default="mixed",
                        help="mixed: bf16/fp16 training with fp32 Adam states (default); fp32: fp32 training, "
                             "as on CPU")
    vocabulary = parser.add_mutually_exclusive_group()
    vocabulary.add_argument("--vocab-size", type=positive_int, metavar="N", help="the model with N ids instead")
    vocabulary.add_argument("--spm", metavar="MODEL", help="the model with the vocabulary of this SentencePiece model "
                                                           "(pieces + 2 ids), e.g. one made by xlmr-ds spm extend")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xlmr_ds.estimate.memory import model_state_memory
    from xlmr_ds.model.architectures import architecture_of, describe, largest_parameter_count, parameter_count

    require_at_least(args, 1, "gpus_per_node", "nodes")
    name, config = model_config_from_args(args)
    if args.spm:
        from xlmr_ds.tokenizer import XLMRTokenizer

        config = config.replace(vocab_size=XLMRTokenizer(args.spm).vocab_size)
    elif args.vocab_size:
        config = config.replace(vocab_size=args.vocab_size)
    total = parameter_count(config)  # built on the meta device: Large with any vocabulary costs nothing
    largest = largest_parameter_count(config)
    stages = [model_state_memory(s, total, largest, args.gpus_per_node, args.nodes, args.precision)
              for s in (1, 2, 3)]
    if args.json:
        print(json.dumps({
            "model": name, "architecture": architecture_of(config), "config": config.to_dict(),
            "parameters": total, "largest_parameter": largest,
            "gpus_per_node": args.gpus_per_node, "nodes": args.nodes, "precision": args.precision,
            "zero": {s.stage: {"params": s.params, "grads": s.grads, "optimizer": s.optimizer, "total": s.total,
                               "gathered": s.gathered,
                               "deepspeed_gpu": s.deepspeed_gpu, "deepspeed_cpu_per_node": s.deepspeed_cpu}
                     for s in stages},
        }, indent=2))
        return 0
    print(describe(name, config))
    print(f"parameters: {total:,} (tied LM decoder counted once); largest tensor {largest:,}")
    gpus = args.gpus_per_node * args.nodes
    param_bytes, grad_bytes, optimizer_bytes = BYTES_PER_PARAMETER[args.precision]
    kind = "mixed-precision" if args.precision == "mixed" else "fp32"
    print(f"\nmodel-state memory per GPU (or process), {kind} Adam, {gpus} GPUs ({args.nodes} node(s) x "
          f"{args.gpus_per_node}); activations not included")
    header = ("ZeRO", "params", "grads", "optimizer", "total", "+ gathered", "DeepSpeed est. GPU",
              "DeepSpeed est. CPU/node")
    rows = [(str(s.stage),) + tuple(f"{v / GIB:.2f} GiB" for v in
            (s.params, s.grads, s.optimizer, s.total, s.gathered, s.deepspeed_gpu, s.deepspeed_cpu)) for s in stages]
    print(format_table(header, rows))
    print(f"\nparams/grads/optimizer: {param_bytes} + {grad_bytes} + {optimizer_bytes} bytes per parameter (ZeRO "
          f"paper{'' if args.precision == 'mixed' else '; fp32 master copies kept as DeepSpeed does'}); + gathered: "
          f"ZeRO-3's largest parameter gathered whole with its gradient, for a moment. DeepSpeed's estimate "
          f"(mixed precision) also counts fp32 gradient copies (stages 1-2 share its ZeRO-2 estimator) and, for "
          f"ZeRO-3, the largest layer gathered whole.")
    return 0
