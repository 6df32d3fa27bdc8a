"""`xlmr-ds fill-mask --model HF_DIR TEXT...`: the top predictions for <mask> with transformers' pipeline, shown
as SentencePiece pieces (`▁` marks a word start, so that an answer that is only the boundary is not a blank), and
last how many top answers are words in their prompt's script, counted as `xlmr-ds report` counts them. A prompt
with several <mask> gets answers for each (the pipeline predicts each mask with the others left masked). A
directory without a masked-LM head (a fine-tuned classifier) is refused: transformers would answer from a
randomly initialized head."""

from __future__ import annotations

import argparse

from xlmr_ds.cli.arguments import positive_int
from xlmr_ds.errors import XLMRDSError


def register(commands) -> None:
    parser = commands.add_parser("fill-mask", help="predict <mask> in sentences with an exported model")
    parser.add_argument("--model", required=True, metavar="HF_DIR", help="an `xlmr-ds export` directory")
    parser.add_argument("--top-k", type=positive_int, default=3)
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="sentences containing <mask>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from transformers import pipeline
    except ImportError:
        raise XLMRDSError("fill-mask needs transformers: pip install 'xlmr-ds[dev]'") from None
    for text in args.texts:
        if "<mask>" not in text:
            raise XLMRDSError(f"{text!r} has no <mask> token to predict")
    from xlmr_ds.model.hf import require_masked_lm
    from xlmr_ds.tools.report import answers_per_mask, is_word_in_script_of

    require_masked_lm(args.model, "fill-mask")
    fill = pipeline("fill-mask", model=args.model, tokenizer=args.model, model_kwargs={"use_safetensors": True})
    words = masks = 0
    for text in args.texts:
        print(text)
        per_mask = answers_per_mask(fill(text, top_k=args.top_k))
        for number, predictions in enumerate(per_mask, start=1):
            pieces = fill.tokenizer.convert_ids_to_tokens([p["token"] for p in predictions])
            shown = ", ".join(f"{piece!r} ({p['score']:.3f})" for piece, p in zip(pieces, predictions, strict=True))
            print(f"  -> {f'<mask> {number}: ' if len(per_mask) > 1 else ''}{shown}")
            words += bool(pieces) and is_word_in_script_of(pieces[0], text)
        masks += len(per_mask)
    print(f"top answers that are words in the prompt's script: {words} of {masks}")
    return 0
