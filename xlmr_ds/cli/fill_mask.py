"""`xlmr-ds fill-mask --model HF_DIR TEXT...`: the top predictions for <mask> with transformers' pipeline, shown
as SentencePiece pieces (`▁` marks a word start, so that an answer that is only the boundary is not a blank), and
last how many top answers are words in their prompt's script, counted as `xlmr-ds report` counts them."""

from __future__ import annotations

import argparse

from xlmr_ds.errors import XLMRDSError


def register(commands) -> None:
    parser = commands.add_parser("fill-mask", help="predict <mask> in sentences with an exported model")
    parser.add_argument("--model", required=True, metavar="HF_DIR", help="an `xlmr-ds export` directory")
    parser.add_argument("--top-k", type=int, default=3)
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
    from xlmr_ds.model.hf import require_safetensors
    from xlmr_ds.tools.report import is_word_in_script_of

    require_safetensors(args.model)
    fill = pipeline("fill-mask", model=args.model, tokenizer=args.model, model_kwargs={"use_safetensors": True})
    words = 0
    for text in args.texts:
        predictions = fill(text, top_k=args.top_k)
        if predictions and isinstance(predictions[0], list):  # several masks in one text
            predictions = predictions[0]
        pieces = fill.tokenizer.convert_ids_to_tokens([p["token"] for p in predictions])
        shown = ", ".join(f"{piece!r} ({p['score']:.3f})" for piece, p in zip(pieces, predictions, strict=True))
        print(f"{text}\n  -> {shown}")
        words += bool(pieces) and is_word_in_script_of(pieces[0], text)
    print(f"top answers that are words in the prompt's script: {words} of {len(args.texts)}")
    return 0
