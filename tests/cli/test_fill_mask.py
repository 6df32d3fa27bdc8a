"""`xlmr-ds fill-mask` (and the fill-mask section of `xlmr-ds report`) answers every <mask> of a prompt, each as
transformers' pipeline ranks it, on a directory transformers 5 wrote (tokenizer.json, no sentencepiece.bpe.model)."""

import subprocess
import sys

from transformers import pipeline
from transformers_dirs import save_transformers_model

from xlmr_ds.tools.report import is_word_in_script_of

# (prompt, how many <mask> it has)
PROMPTS = [
    ("The weather is <mask> today.", 1),
    ("<mask> weather is <mask> today.", 2),
    ("Сегодня <mask> <mask> погода <mask>.", 3),
]


def expected_output(fill, prompts: list[str], top_k: int) -> list[str]:
    """The lines fill-mask must print, from the pipeline called here: each prompt, one line per mask (numbered
    when there are several), and the count of top answers that are words over all masks."""
    lines, words, masks = [], 0, 0
    for prompt in prompts:
        answers = fill(prompt, top_k=top_k)
        per_mask = answers if isinstance(answers[0], list) else [answers]
        lines.append(prompt)
        for number, predictions in enumerate(per_mask, start=1):
            pieces = fill.tokenizer.convert_ids_to_tokens([p["token"] for p in predictions])
            shown = ", ".join(f"{piece!r} ({p['score']:.3f})" for piece, p in zip(pieces, predictions))
            lines.append(f"  -> {f'<mask> {number}: ' if len(per_mask) > 1 else ''}{shown}")
            words += is_word_in_script_of(pieces[0], prompt)
        masks += len(per_mask)
    return lines + [f"top answers that are words in the prompt's script: {words} of {masks}"]


def test_every_mask_of_a_prompt_is_answered(spm_model, tmp_path):
    directory = save_transformers_model(tmp_path / "hf", spm_model=spm_model)
    assert not (directory / "sentencepiece.bpe.model").exists()
    prompts = [prompt for prompt, _ in PROMPTS]
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "fill-mask", "--model", str(directory), "--top-k", "2",
                             *prompts], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fill = pipeline("fill-mask", model=str(directory), tokenizer=str(directory))
    expected = expected_output(fill, prompts, 2)
    assert len(expected) == len(PROMPTS) + sum(masks for _, masks in PROMPTS) + 1
    assert result.stdout.splitlines() == expected


def test_the_reports_examples_answer_every_mask_too(spm_model, tmp_path):
    from xlmr_ds.tools.report import fill_mask_examples

    directory = save_transformers_model(tmp_path / "hf", spm_model=spm_model)
    prompts = [prompt for prompt, _ in PROMPTS]
    examples = fill_mask_examples(directory, prompts)
    fill = pipeline("fill-mask", model=str(directory), tokenizer=str(directory))
    expected = []
    for prompt, masks in PROMPTS:
        answers = fill(prompt, top_k=3)
        per_mask = answers if masks > 1 else [answers]
        assert len(per_mask) == masks
        expected += [(f"{prompt} (<mask> {number})" if masks > 1 else prompt,
                      [(fill.tokenizer.convert_ids_to_tokens(p["token"]), p["score"]) for p in predictions])
                     for number, predictions in enumerate(per_mask, start=1)]
    assert examples == expected
