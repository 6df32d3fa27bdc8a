"""The run report: runs/<name>/report.md with loss and learning-rate plots, throughput, per-language
validation perplexity before and after, fill-mask examples and the commands that scale the run up."""

from __future__ import annotations

import os
from pathlib import Path

from xlmr_ds.engine.metrics import read_metrics
from xlmr_ds.errors import XLMRDSError

SCALE_UP = """```bash
# what a cluster needs, before it is booked
xlmr-ds plan --model large --gpus 64 --gpus-per-node 8 --gpu h100 --zero 2 --micro-batch 16 --seq 512 \\
    --global-batch 8192 --tokens 6.3e12 --mfu 0.4 --write-config ds_configs/my_large.json
# Base on one 8-GPU node, then Large across nodes (hostfiles/ has examples; data on shared storage)
deepspeed --num_gpus 8 --module xlmr_ds.train --deepspeed_config ds_configs/base_zero2_bf16.json \\
    --data DATA --model base --steps 1500000 --save runs/base --save-every 1000 --eval-every 1000 --keep 3
deepspeed --hostfile hostfiles/two_nodes --module xlmr_ds.train --deepspeed_config ds_configs/large_zero2_bf16.json \\
    --data DATA --model large --steps 1500000 --save runs/large --save-every 1000 --eval-every 1000 --keep 3
```
The same corpus -> `xlmr-ds spm train --vocab-size 250000` -> `mpiexec -n R xlmr-ds binarize` steps make DATA;
`--init-from HF_DIR` continues from released XLM-R weights (with the released sentencepiece.bpe.model)."""


def _plot(path: Path, series: dict[str, tuple[list, list]], ylabel: str, title: str, log: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    for label, (x, y) in series.items():
        axis.plot(x, y, label=label, marker="." if len(x) < 40 else None)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    if log:
        axis.set_yscale("log")
    if len(series) > 1:
        axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def fill_mask_examples(hf_dir: Path, texts: list[str]) -> list[tuple[str, list[tuple[str, float]]]]:
    from transformers import pipeline

    from xlmr_ds.model.hf import require_safetensors

    require_safetensors(hf_dir)
    fill = pipeline("fill-mask", model=str(hf_dir), tokenizer=str(hf_dir), model_kwargs={"use_safetensors": True})
    return [(text, [(p["token_str"].strip(), p["score"]) for p in fill(text, top_k=3)]) for text in texts]


def write_report(run_dir: str | Path, out: str | Path, hf_dir: str | Path | None = None,
                 fill_mask: list[str] | None = None, title: str = "xlmr-ds run") -> Path:
    run_dir, out = Path(run_dir), Path(out)
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.is_file():
        raise XLMRDSError(f"{metrics_file}: not found; --run must be a training --save directory")
    train = read_metrics(metrics_file, "train")
    evals = read_metrics(metrics_file, "eval")
    if not train:
        raise XLMRDSError(f"{metrics_file}: no training steps recorded yet")
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in train]
    _plot(out.parent / "loss.png", {"training loss": (steps, [r["loss"] for r in train]),
                                    **({"validation loss (mean of languages)": (
                                        [e["step"] for e in evals],
                                        [sum(v["loss"] for v in e["languages"].values()) / len(e["languages"])
                                         for e in evals])} if evals else {})},
          "masked-LM loss", "Loss")
    _plot(out.parent / "lr.png", {"learning rate": (steps, [r["lr"] for r in train])}, "learning rate",
          "Learning rate (warmup, then linear decay)")
    throughput = [r["tokens_per_s"] for r in train[1:]] or [train[0]["tokens_per_s"]]
    lines = [f"# {title}", "", f"Run directory: `{run_dir}`; {len(train)} optimizer steps, "
             f"{train[-1]['consumed_samples']:,} sequences consumed.", "",
             "## Loss", "", "![loss](loss.png)", "",
             f"Training loss: {train[0]['loss']:.4f} at step {train[0]['step']} -> {train[-1]['loss']:.4f} at step "
             f"{train[-1]['step']}.", "", "## Learning rate", "", "![learning rate](lr.png)", "",
             "## Throughput", "",
             f"Mean {sum(throughput) / len(throughput):,.0f} tokens/s over the steps after the first "
             f"(max {max(throughput):,.0f}); mean step time "
             f"{sum(r['step_time_s'] for r in train) / len(train):.2f} s.", ""]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        lines += ["## Validation perplexity per language", "",
                  f"Held-out documents, fixed masks; step {first['step']} (before) and step {last['step']} "
                  f"(after).", "",
                  "| language | before | after | accuracy after |", "|---|---:|---:|---:|"]
        for language in sorted(last["languages"]):
            before = first["languages"].get(language, {}).get("perplexity")
            after = last["languages"][language]
            lines.append(f"| {language} | {before:,.1f} | {after['perplexity']:,.1f} | "
                         f"{after.get('accuracy', float('nan')):.3f} |" if before is not None else
                         f"| {language} | - | {after['perplexity']:,.1f} | {after.get('accuracy', float('nan')):.3f} |")
        lines.append("")
    if hf_dir and fill_mask:
        lines += ["## Fill-mask with the exported model", "", f"`transformers` pipeline on `{hf_dir}`:", ""]
        for text, predictions in fill_mask_examples(Path(hf_dir), fill_mask):
            shown = ", ".join(f"`{token}` ({score:.3f})" for token, score in predictions)
            lines.append(f"- {text} -> {shown}")
        lines.append("")
    lines += ["## Scaling the same run to Base and Large on GPUs", "", SCALE_UP, ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out)
    return out
