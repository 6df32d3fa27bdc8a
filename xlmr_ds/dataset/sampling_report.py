"""What a run's recipe will draw from each language: `sampling.json`, written by rank 0 when training starts.

The file is a JSON object:

    {"recipe": "recipes/mmbert_like.json" | null, "seed": 0,
     "phases": [{"name": "base", "first_step": 0, "steps": 400, "first_sample": 0, "samples": 9600,
                 "block_size": 128, "mask_prob": 0.3, "alpha": {"start": 0.7, "end": 0.7}, ...,
                 "languages": {"en": {"share": 0.31, "samples": 2976, "tokens": 365000,
                                      "epochs": 0.41, "epochs_so_far": 0.41}, ...}}, ...]}

per phase (the resolved values, phases.ResolvedPhase.to_dict) and per language taking part: the share of the
phase's samples, the samples drawn, the tokens they hold (<s> and </s> included: exactly what the model reads),
the epochs over that language's training blocks at the phase's block size within the phase, and the epochs
since the run began (how often a low-resource language has repeated by the phase's end). Counts are exact:
they come from the same sample order the loader draws from.
"""

from __future__ import annotations

import numpy as np

from xlmr_ds.dataset.loader import PretrainingData

REPORT_FILE = "sampling.json"


def sampling_report(data: PretrainingData) -> dict:
    phases = []
    for phase, order in zip(data.plan.phases, data.phase_orders):
        tables = data.tables(phase.block_size)
        draws = order.draws(phase.samples)
        before = order.initial_draws
        languages = {}
        for index, language in enumerate(data.languages):
            if not draws[index]:
                continue
            blocks = tables[language][0]
            lengths = blocks["token_count"].astype(np.int64) + 1 + blocks["append_eos"].astype(np.int64)
            total = int(lengths.sum())
            # A whole epoch holds every block once: only a partial epoch needs its permutation.
            tokens = sum(total if end - start == len(blocks) else
                         int(lengths[order.blocks_drawn(index, epoch, start, end)].sum())
                         for epoch, start, end in order.epoch_segments(index, int(before[index]),
                                                                       int(before[index] + draws[index])))
            languages[language] = {"share": float(draws[index] / phase.samples), "samples": int(draws[index]),
                                   "tokens": tokens, "epochs": float(draws[index] / len(blocks)),
                                   "epochs_so_far": float((before[index] + draws[index]) / len(blocks))}
        phases.append({**phase.to_dict(), "languages": languages})
    return {"recipe": data.plan.recipe.source, "seed": data.config.seed, "phases": phases}


def describe(report: dict) -> list[str]:
    """One line per phase and its languages, the most sampled first, for the run's log."""
    lines = []
    for phase in report["phases"]:
        alpha = phase["alpha"]
        alpha_text = f"{alpha['start']:g}" + ("" if alpha["start"] == alpha["end"] else f"->{alpha['end']:g}")
        head = (f"phase {phase['name']}: steps {phase['first_step'] + 1}-{phase['first_step'] + phase['steps']}, "
                f"{phase['samples']:,} samples of {phase['block_size']} tokens, alpha {alpha_text}, "
                f"mask {phase['mask_prob']:g}:")
        ranked = sorted(phase["languages"].items(), key=lambda item: -item[1]["samples"])
        body = ", ".join(f"{lang} {v['share']:.1%} ({v['epochs_so_far']:.2f} epochs)" for lang, v in ranked)
        lines.append(f"{head} {body}")
    return lines
