"""Bad input refused: every row is a real command on a real bad input, run as a user runs it.

A refused row must exit non-zero with exactly one error line on stderr that contains `expect` (the problem and
the fix), no traceback, and nothing left behind: the row's directory is as it was before (a complete cache of
block tables, `.index/`, is the only thing a failing run may add). A row with `succeeds=True` must exit 0 and
print `expect`. Rows are one line each; the inputs they need are built by `Inputs` in the row's own directory.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from launch import environment, train
from released_size_spm import write_bpe_spm, write_every_ab_piece_spm, write_released_size_spm
from transformers_dirs import edit_json, save_transformers_model, swap_s_and_pad

from xlmr_ds.prep.spm.train import train_sentencepiece

CONFIGS = Path(__file__).parents[2] / "ds_configs"
TINY_CONFIG = json.loads((CONFIGS / "tiny_cpu_zero2.json").read_text())


class Inputs:
    """Bad inputs, each made in the row's directory from the session's good ones."""

    def __init__(self, root: Path, corpus: Path, spm: Path, dataset: Path, run: Callable[[], Path],
                 other_tokenizer: tuple[Path, Path]):
        self.root, self.corpus_dir, self.spm, self.good_dataset = root, corpus, spm, dataset
        self._run = run
        self.other_spm, self.other_dataset = other_tokenizer  # 300 pieces, and the corpus binarized with it

    def text(self, content: str | bytes, name: str = "file") -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def config(self, raw: str | None = None, **changes) -> str:
        """The tiny ZeRO-2 config with top-level `changes` (None deletes a key), or `raw` text."""
        config = {key: value for key, value in {**TINY_CONFIG, **changes}.items() if value is not None}
        return self.text(raw if raw is not None else json.dumps(config), "ds.json")

    def corpus(self, files: dict[str, bytes]) -> str:
        for name, content in files.items():
            self.text(content, f"corpus/{name}")
        (self.root / "corpus").mkdir(exist_ok=True)
        return str(self.root / "corpus")

    @staticmethod
    def compressed(content: bytes, codec: str, keep: float = 1.0) -> bytes:
        """`content` as an xz, gz or zst stream, cut to the first `keep` share of its bytes."""
        packed = {"xz": lzma.compress, "gz": gzip.compress,
                  "zst": lambda data: zstandard.ZstdCompressor().compress(data)}[codec](content)
        return packed[: int(len(packed) * keep)]

    @staticmethod
    def parquet(column: str, texts: list[str]) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(pa.table({column: texts}), buffer)
        return buffer.getvalue()

    def warc(self, record_type: str) -> bytes:
        from warcio.warcwriter import WARCWriter

        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=True)
        payload = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>a page</p>" if record_type == "response" \
            else b"a page"
        writer.write_record(writer.create_warc_record("https://example.org/", record_type,
                                                      payload=io.BytesIO(payload)))
        return buffer.getvalue()

    def build(self, raw: str, *flags: str) -> list[str]:
        return ["corpus", "build", "--no-progress", "--input", raw, "--out", str(self.root / "built"), *flags]

    def binarize(self, input_dir: str, spm: Path | None = None) -> list[str]:
        return ["binarize", "--no-progress", "--input", input_dir, "--spm", str(spm or self.spm),
                "--out", str(self.root / "out")]

    def dataset(self, damage: Callable[[Path], object] = lambda data: None) -> str:
        data = self.root / "data"
        shutil.copytree(self.good_dataset, data, ignore=shutil.ignore_patterns(".index"))
        damage(data)
        return str(data)

    def checkpoint(self, damage: Callable[[Path], object] = lambda save: None) -> str:
        """A copy of a complete 2-process ZeRO-2 run of 4 steps (checkpoint step_00000004)."""
        save = self.root / "run"
        shutil.copytree(self._run(), save)
        damage(save / "step_00000004")
        return str(save)

    def modern_hf(self) -> str:
        """A Hugging Face directory of the tiny ModernBERT (random weights)."""
        from xlmr_ds.model.modern_config import MODERN_PRESETS
        from xlmr_ds.model.modern_hf import save_modern_hf
        from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM

        save_modern_hf(ModernBertForMaskedLM(MODERN_PRESETS["modern-tiny"]), self.root / "modern-hf")
        return str(self.root / "modern-hf")

    def hf_pickle_only(self) -> str:
        """A Hugging Face directory of the tiny model whose weights are only a pickle (pytorch_model.bin)."""
        import torch

        from xlmr_ds.model import preset
        from xlmr_ds.model.hf import config_to_hf

        hf = self.root / "hf"
        hf.mkdir()
        (hf / "config.json").write_text(json.dumps(config_to_hf(preset("tiny").replace(vocab_size=502))))
        torch.save({}, hf / "pytorch_model.bin")
        return str(hf)

    def finetune(self, *extra: str, task: str = "pair-classification", train: str | None = None,
                 model: str | None = None) -> list[str]:
        """`xlmr-ds finetune` of the 2-process run's checkpoint on a two-label pair task, then `extra`."""
        train = train or self.text("a b\ta c\tentailment\nx y\tz\tcontradiction\n", "train.tsv")
        return ["finetune", "--task", task, "--model", model or self.checkpoint(), "--train", train,
                "--out", str(self.root / "out"), *extra]

    def hf_with_tokenizer(self, tokenizer: Path) -> str:
        """A Hugging Face directory of the tiny model (502 ids) with `tokenizer` as its sentencepiece.bpe.model."""
        from xlmr_ds.model import XLMRForMaskedLM, preset
        from xlmr_ds.model.hf import save_hf

        save_hf(XLMRForMaskedLM(preset("tiny").replace(vocab_size=502)), self.root / "hf", tokenizer_model=tokenizer)
        return str(self.root / "hf")

    def extend_vocab(self, model: str, spm: Path) -> list[str]:
        return ["model", "extend-vocab", "--model", model, "--spm", str(spm), "--out", str(self.root / "out")]

    def hf_without_tokenizer(self) -> str:
        """A Hugging Face directory (config.json) without sentencepiece.bpe.model."""
        from xlmr_ds.model import preset
        from xlmr_ds.model.hf import config_to_hf

        self.text(json.dumps(config_to_hf(preset("tiny").replace(vocab_size=502))), "hf/config.json")
        return str(self.root / "hf")

    def recipe(self, *phases: dict) -> str:
        return self.text(json.dumps({"phases": list(phases)}), "recipe.json")

    def spm_extend(self, base: Path, *extra: str, corpus: str | None = None) -> list[str]:
        return ["spm", "extend", "--base", str(base), "--input", corpus or str(self.corpus_dir), "--add", "50",
                "--new-languages", *(["ab"] if corpus else ["hi"]), "--out", str(self.root / "out" / "new"), *extra]

    def train(self, *extra: str, config: str | None = None, data: str | None = None, steps: str = "2",
              model: tuple[str, str] = ("--model", "tiny")) -> list[str]:
        return ["--deepspeed_config", config or str(CONFIGS / "tiny_cpu_zero2.json"),
                "--data", data or str(self.good_dataset), *model, "--block-size", "64", "--steps", steps, *extra]


def _set_header(data: Path, offset: int, fmt: str, value: int | bytes) -> None:
    with open(data / "en.idx", "r+b") as index:
        index.seek(offset)
        index.write(struct.pack(fmt, value))


def _truncate(path: Path, keep: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(keep)


def _wide_model(i: Inputs) -> str:
    return i.text(json.dumps({"hidden_size": 64, "num_layers": 2, "num_heads": 2, "ffn_size": 128}), "wide.json")


def _max_ids(data: Path) -> None:
    for path in data.glob("*.bin"):  # uint16 ids of 65535 for a 502-id vocabulary
        path.write_bytes(b"\xff" * path.stat().st_size)


@dataclass
class Case:
    id: str
    command: str  # "xlmr-ds" (python -m xlmr_ds) or "train" (python -m xlmr_ds.train, one process)
    args: Callable[[Inputs], list[str]]
    expect: str
    succeeds: bool = False


UTF8_BAD = b"caf\xc3 au lait.\nsecond line.\n"
CRAWL = b"".join(b'{"text": "This is an English sentence about the weather number %d."}\n' % i for i in range(50))
MANY_LINES = b"".join(b"line number %d of a shard.\n" % i for i in range(20_000))
AB_TEXT = "".join(f"{'ab' * (i % 3 + 1)} ba {'a' * (i % 5 + 1)}\n" for i in range(300)).encode()
CASES = [
    # DeepSpeed configs
    Case("config-invalid-json", "train", lambda i: i.train(config=i.config("{not json")), "ds.json: invalid JSON at line 1 column 2"),
    Case("config-not-an-object", "train", lambda i: i.train(config=i.config("[1, 2]")), "ds.json: a DeepSpeed config must be a JSON object"),
    Case("config-missing", "train", lambda i: i.train(config=str(i.root / "none.json")), "none.json: DeepSpeed config not found"),
    Case("config-unknown-key", "train", lambda i: i.train(config=i.config(zero_optimisation={"stage": 2})), "unknown key 'zero_optimisation'; did you mean 'zero_optimization'?"),
    Case("config-misspelled-nested-key", "train", lambda i: i.train(config=i.config(zero_optimization={"stag": 2})), "unknown key 'zero_optimization.stag'; did you mean 'stage'?"),
    Case("config-batch-does-not-multiply", "train", lambda i: i.train(config=i.config(train_batch_size=9)), "train_batch_size=9 != train_micro_batch_size_per_gpu=2 x gradient_accumulation_steps=4 x 1 processes; with 1 processes set train_batch_size to 8"),
    Case("config-fp16-and-bf16", "train", lambda i: i.train(config=i.config(fp16={"enabled": True}, bf16={"enabled": True})), "fp16.enabled and bf16.enabled are both true; enable at most one"),
    Case("config-negative-micro-batch", "train", lambda i: i.train(config=i.config(train_micro_batch_size_per_gpu=-2)), "train_micro_batch_size_per_gpu=-2 must be a positive integer"),
    Case("config-stage-differs-from-checkpoint", "train", lambda i: i.train("--save", i.checkpoint(), steps="6", config=str(CONFIGS / "tiny_cpu_zero3.json")), "saved with ZeRO stage 2 but the config uses stage 3; DeepSpeed cannot change the stage of a checkpoint: use a stage-2 config"),
    Case("config-skip-without-overflow-check", "train", lambda i: i.train("--nonfinite-loss", "skip", config=i.config(bf16={"enabled": True, "check_grad_overflow": False})), "bf16.check_grad_overflow is false, so DeepSpeed would apply a step with NaN/inf gradients and corrupt the model; remove the key"),
    # hostfiles (`xlmr-ds launch check`, before any host is contacted)
    Case("hostfile-missing", "xlmr-ds", lambda i: ["launch", "check", "--hostfile", str(i.root / "hosts")], "hosts: hostfile not found"),
    Case("hostfile-syntax", "xlmr-ds", lambda i: ["launch", "check", "--hostfile", i.text("node1 slots=1\nnode2 slotz=1\n", "hosts")], "hosts:2: 'node2 slotz=1': expected 'HOSTNAME slots=N' (N >= 1)"),
    Case("hostfile-duplicate-host", "xlmr-ds", lambda i: ["launch", "check", "--hostfile", i.text("node1 slots=1\nnode1 slots=2\n", "hosts")], "hosts:2: host node1 is listed twice (first on line 1); give each host one line with its total slots"),
    Case("hostfile-zero-slots", "xlmr-ds", lambda i: ["launch", "check", "--hostfile", i.text("node1 slots=0\n", "hosts")], "hosts:1: slots=0 for node1: a host needs at least 1 slot"),
    # corpora
    Case("corpus-missing-directory", "xlmr-ds", lambda i: i.binarize(str(i.root / "nowhere")), "nowhere: corpus directory not found (expected a directory of <lang>.txt files or <lang>/ shard folders)"),
    Case("corpus-without-lang-txt", "xlmr-ds", lambda i: i.binarize(i.corpus({"notes.md": b"text\n"})), "no <lang>.txt files or <lang>/ shard folders found (one per language; formats: .txt.xz, "),
    Case("corpus-all-files-empty", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": b"", "fr.txt": b""})), "every language's files are empty"),
    Case("corpus-bad-language-name", "xlmr-ds", lambda i: i.binarize(i.corpus({"en us.txt": b"text\n"})), "language name 'en us' must be letters, digits, '-' or '_'"),
    Case("shard-truncated-xz", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt.xz": i.compressed(MANY_LINES, "xz", 0.5)})), "en.txt.xz: after line 8,"),
    Case("shard-truncated-zst", "xlmr-ds", lambda i: i.binarize(i.corpus({"en/00.txt.zst": i.compressed(MANY_LINES, "zst", 0.5)})), "the zst stream is truncated or corrupt (compressed file ended before the end-of-frame marker"),
    Case("shard-not-gzip", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.jsonl.gz": b"plain text, not gzip\n"})), "en.jsonl.gz: after line 0: the gz stream is truncated or corrupt (Not a gzipped file"),
    Case("shard-bad-json-line", "xlmr-ds", lambda i: i.binarize(i.corpus({"en/00.jsonl": b'{"text": "a line."}\n{"text": "cut\n'})), "00.jsonl:2: not a JSON object (Unterminated string starting at at column 10)"),
    Case("shard-json-not-an-object", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.jsonl": b'["a line."]\n'})), "en.jsonl:1: expected a JSON object, got list"),
    Case("shard-unknown-text-field", "xlmr-ds", lambda i: i.binarize(i.corpus({"en/00.jsonl.zst": i.compressed(b'{"content": "x", "id": 1}\n', "zst")})), "00.jsonl.zst:1: no field 'text' (the record has: content, id); name the text field with --text-field"),
    Case("shard-text-field-not-a-string", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.jsonl": b'{"text": 3}\n'})), "en.jsonl:1: field 'text' is int, expected a string"),
    Case("shard-parquet-without-column", "xlmr-ds", lambda i: i.binarize(i.corpus({"en/00.parquet": i.parquet("content", ["a line."])})), "00.parquet: no column 'text' (the file has: content); name the text column with --text-field"),
    Case("shard-not-parquet", "xlmr-ds", lambda i: i.binarize(i.corpus({"en/00.parquet": b"not parquet at all"})), "00.parquet: not a readable parquet file"),
    Case("shard-folder-unknown-file", "xlmr-ds", lambda i: i.binarize(i.corpus({"en/00.jsonl": b'{"text": "x"}\n', "en/notes.csv": b"a,b\n"})), "notes.csv: not a shard this reader knows (a shard folder holds files ending in .txt.xz"),
    Case("shard-language-twice", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": b"x\n", "en/00.jsonl": b'{"text": "x"}\n'})), "language 'en' is also given by"),
    Case("build-input-missing", "xlmr-ds", lambda i: i.build(str(i.root / "nowhere")), "nowhere: no such file or directory"),
    Case("build-unknown-raw-file", "xlmr-ds", lambda i: i.build(i.text(b"a,b\n", "raw/pages.csv")), "pages.csv: not a raw shard this reader knows (files ending in .warc.wet.gz"),
    Case("build-warc-without-wet", "xlmr-ds", lambda i: i.build(i.text(i.warc("response"), "raw/crawl.warc.gz")), "none of its 1 WARC records is a WET conversion record; corpus build reads the extracted text of WET files"),
    Case("build-truncated-shard", "xlmr-ds", lambda i: i.build(i.text(i.compressed(CRAWL * 40, "gz", 0.6), "raw/00.jsonl.gz")), "00.jsonl.gz: after line "),
    Case("build-unknown-text-field", "xlmr-ds", lambda i: i.build(i.text(CRAWL, "raw/00.jsonl"), "--text-field", "content"), "00.jsonl:1: no field 'content' (the record has: text)"),
    Case("build-empty-result", "xlmr-ds", lambda i: i.build(i.text(CRAWL, "raw/00.jsonl"), "--min-chars", "100000"), "no document is left of 50 (removed: dedup 48, min_chars 2); lower --lid-threshold or the filters' thresholds"),
    Case("build-out-not-a-build", "xlmr-ds", lambda i: i.build(i.text(CRAWL, "raw/00.jsonl")) if i.text(b"mine", "built/notes.md") else [], "built: holds files that are not a corpus build's output (no stats.json); choose a new or empty directory"),
    Case("build-bad-lid-model", "xlmr-ds", lambda i: i.build(i.text(CRAWL, "raw/00.jsonl"), "--lid-model", i.text(b"not a model", "lid.bin")), "lid.bin: not a fastText classifier (" ),
    Case("build-lid-threshold-above-one", "xlmr-ds", lambda i: i.build(i.text(CRAWL, "raw/00.jsonl"), "--lid-threshold", "1.5"), "--lid-threshold 1.5: must be between 0 and 1"),
    Case("corpus-one-empty-file", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": b"a line.\n", "fr.txt": b""})), "note: skipped fr: no text (no dataset written)", succeeds=True),
    Case("corpus-invalid-utf8", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": UTF8_BAD})), "note: 1 invalid UTF-8 sequence(s) were replaced by U+FFFD", succeeds=True),
    Case("corpus-nul-bytes", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": b"nul\x00byte line.\nnext.\n"})), "note: NUL bytes (encoded as <unk>) in en (1)", succeeds=True),
    Case("corpus-10mb-line", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": b"short.\n" + b"word " * 2_000_000 + b"\nend.\n"})), "manifest.json", succeeds=True),
    Case("spm-model-missing", "xlmr-ds", lambda i: i.binarize(str(i.corpus_dir), i.root / "x.model"), "x.model: SentencePiece model not found"),
    Case("spm-model-not-a-model", "xlmr-ds", lambda i: i.binarize(str(i.corpus_dir), Path(i.text(b"junk", "junk.model"))), "junk.model: not a SentencePiece model"),
    Case("binarize-out-is-a-file", "xlmr-ds", lambda i: [*i.binarize(str(i.corpus_dir))[:-1], i.text("x", "out")], "out: exists and is not a directory; choose another path"),
    # datasets
    Case("dataset-truncated-bin", "xlmr-ds", lambda i: ["data", "inspect", i.dataset(lambda d: _truncate(d / "en.bin", 100)) + "/en"], "en.bin: 100 bytes, but its index describes"),
    Case("dataset-truncated-idx", "xlmr-ds", lambda i: ["data", "inspect", i.dataset(lambda d: _truncate(d / "en.idx", 200)) + "/en"], "en.idx: 200 bytes, but"),
    Case("dataset-wrong-magic", "xlmr-ds", lambda i: ["data", "inspect", i.dataset(lambda d: _set_header(d, 0, "<9s", b"NOTMMIDX\x00")) + "/en"], "en.idx: bad magic b'NOTMMIDX\\x00'; expected b'MMIDIDX\\x00\\x00' (Megatron MMIDIDX)"),
    Case("dataset-wrong-version", "xlmr-ds", lambda i: ["data", "inspect", i.dataset(lambda d: _set_header(d, 9, "<Q", 2)) + "/en"], "index version 2 is not supported; expected 1"),
    Case("dataset-wrong-dtype", "xlmr-ds", lambda i: ["data", "inspect", i.dataset(lambda d: _set_header(d, 17, "<B", 7)) + "/en"], "dtype code 7 is not a token dtype; expected 8 (uint16) or 4 (int32)"),
    Case("data-index-no-manifest", "xlmr-ds", lambda i: ["data", "index", "--data", i.dataset(lambda d: (d / "manifest.json").unlink()), "--block-size", "64"], "manifest.json: not found;"),
    Case("data-index-block-over-model", "xlmr-ds", lambda i: ["data", "index", "--data", i.dataset(), "--block-size", "1024"], "--block-size=1024 is longer than model base's max_sequence_length 512"),
    Case("data-batches-no-manifest", "xlmr-ds", lambda i: ["data", "batches", "--data", i.dataset(lambda d: (d / "manifest.json").unlink()), "--start-sample", "0"], "manifest.json: not found;"),
    Case("data-batches-past-the-end", "xlmr-ds", lambda i: ["data", "batches", "--data", i.dataset(), "--block-size", "64", "--global-batch", "4", "--recipe", i.recipe({"steps": 2}), "--start-sample", "8"], "--start-sample=8 is past the end of the sample order: the recipe"),
    Case("data-batches-past-the-steps", "xlmr-ds", lambda i: ["data", "batches", "--data", i.dataset(), "--block-size", "64", "--global-batch", "4", "--steps", "3", "--start-sample", "12"], "--steps 3 x --global-batch 4 gives 12 samples (0..11)"),
    Case("data-batches-block-over-model", "xlmr-ds", lambda i: ["data", "batches", "--data", i.dataset(), "--block-size", "600", "--model", "tiny", "--start-sample", "0"], "--block-size=600 is longer than model tiny's max_sequence_length"),
    Case("data-batches-recipe-block-over-model", "xlmr-ds", lambda i: ["data", "batches", "--data", i.dataset(), "--recipe", i.recipe({"steps": 2, "block_size": 1024}), "--start-sample", "0"], "phases[0].block_size=1024 is longer than the model's max_sequence_length 512"),
    Case("dataset-not-complete", "train", lambda i: i.train(data=i.dataset(lambda d: (d / "manifest.json").unlink())), "manifest.json: not found;"),
    Case("dataset-tokenizer-replaced", "train", lambda i: i.train(data=i.dataset(lambda d: shutil.copy(i.other_spm, d / "tokenizer.model"))), "this SentencePiece model is not the one"),
    Case("dataset-ids-beyond-vocabulary", "train", lambda i: i.train(data=i.dataset(_max_ids)), "token id 65535 (tokens"),
    Case("vocabulary-differs-from-model", "xlmr-ds", lambda i: ["eval", "--ckpt", i.checkpoint(), "--data", str(i.other_dataset), "--samples", "2"], "its tokenizer has 302 ids but the model has 502"),
    # checkpoints
    Case("checkpoint-missing-marker", "train", lambda i: i.train("--resume", i.checkpoint(lambda c: (c / "xlmr_ds_checkpoint.json").unlink()) + "/step_00000004"), "has no xlmr_ds_checkpoint.json: its save did not finish; use an older checkpoint"),
    Case("checkpoint-of-another-model-size", "train", lambda i: i.train("--save", i.checkpoint(), steps="6", model=("--model-config", _wide_model(i))), "saved for another model (ffn_size 512 vs 128, hidden_size 128 vs 64"),
    Case("checkpoint-missing-shard", "train", lambda i: i.train("--save", i.checkpoint(lambda c: (c / "zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()), steps="6"), "zero_pp_rank_1_mp_rank_00_optim_states.pt: missing from this checkpoint (its marker lists it)"),
    Case("checkpoint-truncated-shard", "xlmr-ds", lambda i: ["export", "--ckpt", i.checkpoint(lambda c: _truncate(c / "mp_rank_00_model_states.pt", 1000)), "--out", str(i.root / "hf")], "mp_rank_00_model_states.pt: 1000 bytes, but"),
    Case("checkpoint-none-complete", "xlmr-ds", lambda i: ["export", "--ckpt", i.checkpoint(lambda c: (c / "xlmr_ds_checkpoint.json").unlink()), "--out", str(i.root / "hf")], "no complete checkpoint (a step_* directory with its completion marker)"),
    Case("resume-not-a-checkpoint", "train", lambda i: i.train("--resume", str(i.root / "nowhere")), "nowhere: not a checkpoint directory (expected DIR/step_NNNNNNNN)"),
    # command lines
    Case("train-missing-data", "train", lambda i: ["--deepspeed_config", str(CONFIGS / "tiny_cpu_zero2.json"), "--steps", "2"], "the following arguments are required: --data"),
    Case("train-negative-steps", "train", lambda i: i.train(steps="-1"), "argument --steps: -1 must be at least 1"),
    Case("train-unknown-model", "train", lambda i: i.train(model=("--model", "huge")), "argument --model: invalid choice: 'huge'"),
    Case("train-zero-timeout", "train", lambda i: i.train("--dist-timeout-minutes", "0"), "argument --dist-timeout-minutes: 0 must be more than 0"),
    Case("train-probe-language-not-in-the-data", "train", lambda i: i.train("--eval-every", "1", "--probe-languages", "en", "xx"), "--probe-languages: xx not in"),
    Case("train-unknown-nonfinite-policy", "train", lambda i: i.train("--nonfinite-loss", "ignore"), "argument --nonfinite-loss: invalid choice: 'ignore'"),
    Case("info-unknown-model", "xlmr-ds", lambda i: ["info", "--model", "huge"], "argument --model: invalid choice: 'huge'"),
    Case("binarize-missing-out", "xlmr-ds", lambda i: i.binarize(str(i.corpus_dir))[:-2], "the following arguments are required: --out"),
    # fine-tuning task files, parallel files, transfer task files (xlmr-ds finetune / eval retrieval / eval transfer / task demo)
    Case("task-wrong-column-count", "xlmr-ds", lambda i: i.finetune("--test", "en=" + i.text("a\tb\tentailment\n", "t.tsv"), train=i.text("a\tb\tentailment\nc\td\n", "train.tsv")), "train.tsv:2: 2 columns, expected 3 tab-separated columns (text_a<TAB>text_b<TAB>label)"),
    Case("task-empty-file", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("", "test.tsv")), "test.tsv: no examples; expected one per line"),
    Case("task-label-missing-from-training", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a\tb\tmaybe\n", "test.tsv")), "test.tsv:1: label 'maybe' does not occur in the training files (their labels: contradiction, entailment)"),
    Case("task-token-without-label", "xlmr-ds", lambda i: i.finetune("--test", "en=" + i.text("en:a\tO\n", "t.conll"), task="token-classification", train=i.text("en:a\tB-PER\nen:b\n", "train.conll")), "train.conll:2: one column ('en:b'); expected `token<TAB>label`"),
    Case("task-test-language-without-file", "xlmr-ds", lambda i: i.finetune("--test", "de"), "--test de: expected LANG=FILE (for example de=xnli.test.tsv)"),
    Case("task-model-without-tokenizer", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a\tb\tentailment\n", "t.tsv"), model=i.hf_without_tokenizer()), "hf: no sentencepiece.bpe.model or tokenizer.json, so its text cannot be tokenized"),
    Case("parallel-line-counts-differ", "xlmr-ds", lambda i: ["eval", "retrieval", "--model", i.checkpoint(), "--pairs", "de=" + i.text("a\nb\n", "en.txt") + ":" + i.text("a\n", "de.txt")], "en.txt has 2 lines but"),
    Case("transfer-task-file-unknown-key", "xlmr-ds", lambda i: ["eval", "transfer", "--ckpt", i.checkpoint(), "--task-config", i.text(json.dumps({"task": "retrieval", "pairs": ["de=a:b"], "layers": 3}), "task.json")], "task.json: unknown key 'layers'; did you mean 'layer'?"),
    Case("demo-corpus-out-holds-other-files", "xlmr-ds", lambda i: ["corpus", "demo", "--out", str(Path(i.text("mine", "home/notes.md")).parent), "--scale", "0.01"], "holds files that `xlmr-ds corpus demo` does not write (notes.md)"),
    Case("demo-crawl-out-holds-other-files", "xlmr-ds", lambda i: ["corpus", "demo-crawl", "--from", str(i.corpus_dir), "--out", str(Path(i.text("mine", "home/en.txt")).parent)], "holds files that `xlmr-ds corpus demo-crawl` does not write (en.txt)"),
    Case("demo-task-out-holds-other-files", "xlmr-ds", lambda i: ["task", "demo", "--out", str(Path(i.text("mine", "home/notes.md")).parent), "--languages", "en", "de"], "holds files that `xlmr-ds task demo` does not write (notes.md)"),
    Case("demo-task-unknown-language", "xlmr-ds", lambda i: ["task", "demo", "--out", str(i.root / "out"), "--languages", "en", "qq-zz"], "--languages: 'qq-zz' is not a CLDR locale Babel knows"),
    # recipe files (xlmr-ds train --recipe)
    Case("recipe-unknown-key", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "alhpa": 0.5})), "recipe.json: unknown key 'phases[0].alhpa'; did you mean 'alpha'?"),
    Case("recipe-wrong-type", "train", lambda i: i.train("--recipe", i.recipe({"steps": "2"})), "recipe.json: phases[0].steps must be an integer (got '2')"),
    Case("recipe-alpha-out-of-range", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "alpha": {"start": 0.7, "end": 1.3}})), "recipe.json: phases[0].alpha.end=1.3 must be in (0, 1]"),
    Case("recipe-train-unknown", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "train": "embeddings"})), "recipe.json: phases[0].train must be one of all, new_embeddings (got 'embeddings')"),
    Case("recipe-new-embeddings-late", "train", lambda i: i.train("--recipe", i.recipe({"steps": 1}, {"steps": 1, "train": "new_embeddings"})), "recipe.json: phases[1].train is new_embeddings after phases[0] trained everything; new_embeddings phases must come first"),
    Case("recipe-new-embeddings-no-extension", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "train": "new_embeddings"})), "phases[0]: \"train\": \"new_embeddings\" needs --init-from a model grown by `xlmr-ds model extend-vocab`"),
    Case("recipe-empty-languages", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "languages": []})), "recipe.json: phases[0].languages must be a non-empty list of language names (got [])"),
    Case("recipe-phase-shorter-than-a-step", "train", lambda i: i.train("--recipe", i.recipe({"steps": 1}, {"steps": 0})), "recipe.json: phases[1].steps=0 must be at least 1 (a phase is at least one step)"),
    Case("recipe-unknown-language", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "languages": ["en", "xx"]})), "recipe.json: phases[0].languages: 'xx' is not a language of the dataset"),
    Case("recipe-batch-not-split-over-ranks", "train", lambda i: i.train("--recipe", i.recipe({"steps": 2, "batch_size": 3})), "recipe.json: phases[0].batch_size.start=3 is not a multiple of micro batch 2 x 1 data-parallel ranks"),
    Case("recipe-steps-disagree", "train", lambda i: i.train("--recipe", i.recipe({"steps": 1}, {"steps": 2}), steps="5"), "--steps 5 but "),
    Case("branch-without-save", "train", lambda i: i.train("--branch-from", i.checkpoint() + "/step_00000004", steps="6"), "--branch-from needs --save: a branch is a run of its own"),
    Case("branch-with-other-earlier-phases", "train", lambda i: i.train("--recipe", i.recipe({"steps": 4, "batch_size": 16}, {"steps": 2}), "--branch-from", i.checkpoint() + "/step_00000004", "--save", str(i.root / "branch"), steps="6"), "step_00000004: 32 samples consumed by step 4, but this run's recipe reaches step 4 after 64: its phases before step 4 differ"),
    # vocabulary extension (xlmr-ds spm extend)
    Case("spm-extend-base-not-unigram", "xlmr-ds", lambda i: i.spm_extend(write_bpe_spm(i.root / "bpe.model")), "bpe.model: a BPE SentencePiece model; extension needs a unigram model"),
    Case("spm-extend-add-zero", "xlmr-ds", lambda i: i.spm_extend(i.spm, "--add", "0"), "--add 0: the number of pieces to add must be at least 1"),
    Case("spm-extend-no-new-pieces", "xlmr-ds", lambda i: i.spm_extend(write_every_ab_piece_spm(i.root / "ab.model"), corpus=i.corpus({"ab.txt": AB_TEXT})), "has no piece that"),
    Case("extend-vocab-model-and-tokenizer-differ", "xlmr-ds", lambda i: i.extend_vocab(i.hf_with_tokenizer(i.other_spm), i.spm), "hf: the model has 502 ids but its tokenizer"),
    Case("extend-vocab-smaller-tokenizer", "xlmr-ds", lambda i: i.extend_vocab(i.hf_with_tokenizer(i.spm), i.other_spm), "300 pieces, not more than the 500 of"),
    Case("extend-vocab-not-an-extension", "xlmr-ds", lambda i: i.extend_vocab(i.hf_with_tokenizer(i.spm), write_released_size_spm(i.root / "big.model", pieces=900)), "big.model: piece 3 is 'a', but"),
    # weights that are pickles
    Case("init-from-pickle-weights", "train", lambda i: i.train("--init-from", i.hf_pickle_only()), "holds only pytorch_model.bin; xlmr-ds reads Hugging Face weights only from safetensors"),
    Case("report-word-order-missing", "xlmr-ds", lambda i: ["report", "--run", i.checkpoint(), "--out", str(i.root / "r.md"), "--word-order", str(i.root / "missing.json")], "missing.json: --json file of `xlmr-ds eval --shuffled-order` not found"),
    Case("report-word-order-not-json", "xlmr-ds", lambda i: ["report", "--run", i.checkpoint(), "--out", str(i.root / "r.md"), "--word-order", i.text("{loss", "eval.json")], "eval.json: invalid JSON at line 1"),
    Case("report-word-order-not-shuffled", "xlmr-ds", lambda i: ["report", "--run", i.checkpoint(), "--out", str(i.root / "r.md"), "--word-order", i.text('{"languages": {"en": {"loss": 5.0}}}', "eval.json")], "eval.json: no loss_shuffled_order; write it with `xlmr-ds eval --shuffled-order`"),
    Case("fill-mask-pickle-weights", "xlmr-ds", lambda i: ["fill-mask", "--model", i.hf_pickle_only(), "a <mask>."], "holds only pytorch_model.bin; xlmr-ds reads Hugging Face weights only from safetensors"),
    # task files as users have them: byte-order marks, quoting, headers, prefixes, paths with '=' and ':'
    Case("task-bom-before-xnli-mt-header", "xlmr-ds", lambda i: i.finetune("--epochs", "1", "--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text("\ufeffpremise\thypo\tlabel\na b\ta c\tentailment\nx y\tz\tcontradictory\n", "multinli.train.en.tsv")), "2 training examples (en), labels contradiction, entailment;", succeeds=True),
    Case("task-tsv-written-by-csv", "xlmr-ds", lambda i: i.finetune("--epochs", "1", "--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text('"a\tb"\ta c\tentailment\r\n"x ""y"""\tz\tcontradiction\r\n', "train.tsv")), "2 training examples (language unknown), labels contradiction, entailment;", succeeds=True),
    Case("task-header-is-not-a-class", "xlmr-ds", lambda i: i.finetune("--epochs", "1", "--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text("sentence1\tsentence2\tlabel\na b\ta c\tentailment\nx y\tz\tcontradiction\n", "train.tsv")), "2 training examples (language unknown), labels contradiction, entailment;", succeeds=True),
    Case("task-column-name-as-a-label", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text("a b\ta c\tentailment\nsentence1\tsentence2\tlabel\n", "train.tsv")), "train.tsv:2: the label 'label' is a column name; a header is read only as the first line"),
    Case("task-colon-in-tokens", "xlmr-ds", lambda i: i.finetune("--epochs", "1", "--test", "de=" + i.text("Berlin\tB-LOC\nist\tO\n", "test.conll"), task="token-classification", train=i.text("smb://host\tO\nParis\tB-LOC\n", "train.conll")), "1 training examples (language unknown), labels B-LOC, O;", succeeds=True),
    Case("task-line-separator-in-jsonl", "xlmr-ds", lambda i: i.finetune("--epochs", "1", "--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text('{"premise": "a\u2028b", "hypothesis": "a c", "label": "entailment"}\n{"premise": "x y", "hypothesis": "z", "label": "contradiction"}\n', "train.jsonl")), "2 training examples (language unknown), labels contradiction, entailment;", succeeds=True),
    Case("task-several-languages-without-lang", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text("language\tgold_label\tsentence1\tsentence2\nde\tentailment\ta\tb\nen\tcontradiction\tc\td\n", "xnli.dev.tsv")), "xnli.dev.tsv: rows in 2 languages (de, en); name the one to read with LANG=FILE"),
    Case("task-valid-language-unknown", "xlmr-ds", lambda i: i.finetune("--valid", i.text("a b\ta c\tentailment\n", "xnli.dev.tsv"), "--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv")), "xnli.dev.tsv: its language is not known (no language column, `lang:` prefix or language code in its name); give it as LANG=FILE"),
    Case("task-path-with-equals", "xlmr-ds", lambda i: i.finetune("--epochs", "1", "--test", "de=" + i.text("a b\ta c\tentailment\n", "test.tsv"), train=i.text("a b\ta c\tentailment\nx y\tz\tcontradiction\n", "lang=en/train.tsv")), "2 training examples (language unknown), labels contradiction, entailment;", succeeds=True),
    Case("task-test-language-not-a-code", "xlmr-ds", lambda i: i.finetune("--test", "xx=" + i.text("a b\ta c\tentailment\n", "t.tsv")), "t.tsv: expected LANG=FILE; 'xx' is not a language code CLDR names (for example de=xnli.test.tsv)"),
    Case("parallel-path-with-colon", "xlmr-ds", lambda i: ["eval", "retrieval", "--model", i.checkpoint(), "--pairs", "de=" + i.text("a b\nc\n", "run_10:30/en.txt") + ":" + i.text("x y\nz\n", "run_10:30/de.txt")], "accuracy@1", succeeds=True),
    Case("parallel-bom-and-line-separator", "xlmr-ds", lambda i: ["eval", "retrieval", "--model", i.checkpoint(), "--pairs", "de=" + i.text("\ufeffa\u2028b\nc\n", "en.txt") + ":" + i.text("x y\nz\n", "de.txt")], "accuracy@1", succeeds=True),
    # models that xlmr-ds did not write: classifiers, transformers' own directories
    Case("fill-mask-classifier", "xlmr-ds", lambda i: ["fill-mask", "--model", str(save_transformers_model(i.root / "hf", "XLMRobertaForSequenceClassification", i.spm)), "a <mask>."], "hf: config.json's architectures is XLMRobertaForSequenceClassification, which has no masked-LM head; fill-mask needs a masked LM"),
    Case("fill-mask-several-masks", "xlmr-ds", lambda i: ["fill-mask", "--model", str(save_transformers_model(i.root / "hf", spm_model=i.spm)), "a <mask> b <mask>."], "  -> <mask> 2: ", succeeds=True),
    Case("report-hf-classifier", "xlmr-ds", lambda i: ["report", "--run", i.checkpoint(), "--out", str(i.root / "r.md"), "--hf", str(save_transformers_model(i.root / "hf", "XLMRobertaForSequenceClassification", i.spm)), "--fill-mask", "a <mask>."], "hf: config.json's architectures is XLMRobertaForSequenceClassification, which has no masked-LM head; report --hf needs a masked LM"),
    Case("eval-hf-classifier", "xlmr-ds", lambda i: ["eval", "--hf", str(save_transformers_model(i.root / "hf", "XLMRobertaForSequenceClassification")), "--data", str(i.good_dataset), "--samples", "2"], "hf: config.json's architectures is XLMRobertaForSequenceClassification, which has no masked-LM head; eval --hf needs a masked LM"),
    Case("eval-hf-transformers-masked-lm", "xlmr-ds", lambda i: ["eval", "--hf", str(save_transformers_model(i.root / "hf")), "--data", str(i.good_dataset), "--samples", "2"], "mean over", succeeds=True),
    Case("init-from-takes-the-directorys-shape", "train", lambda i: i.train("--init-from", str(save_transformers_model(i.root / "hf")), model=()), "1 layers of width 64 (2 heads, FFN 96), 128 positions, LayerNorm eps 1e-12, dropout 0.1 (attention 0.1), as its config.json says", succeeds=True),
    Case("init-from-shape-differs-from-model", "train", lambda i: i.train("--init-from", str(save_transformers_model(i.root / "hf"))), "its config.json disagrees with --model tiny: hidden_size 64 vs 128, num_layers 1 vs 2, num_heads 2 vs 4, ffn_size 96 vs 512, max_position_embeddings 130 vs 514, layer_norm_eps 1e-12 vs 1e-05"),
    Case("init-from-relative-positions", "train", lambda i: i.train("--init-from", str(edit_json(save_transformers_model(i.root / "hf") / "config.json", position_embedding_type="relative_key").parent), model=()), "position_embedding_type='relative_key' cannot be represented by xlmr-ds (expected 'absolute')"),
    Case("init-from-classifier", "train", lambda i: i.train("--init-from", str(save_transformers_model(i.root / "hf", "XLMRobertaForSequenceClassification")), model=()), "--init-from needs a masked LM"),
    Case("init-from-other-vocabulary", "train", lambda i: i.train("--init-from", str(save_transformers_model(i.root / "hf", vocab_size=302)), model=()), "the model has 302 ids but the data's tokenizer 502; binarize the data with the model's tokenizer"),
    Case("finetune-transformers5-directory", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a\tb\tentailment\n", "t.tsv"), "--epochs", "1", model=str(save_transformers_model(i.root / "hf", spm_model=i.spm))), "results:", succeeds=True),
    Case("finetune-from-a-classifier", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a\tb\tentailment\n", "t.tsv"), "--epochs", "1", model=str(save_transformers_model(i.root / "hf", "XLMRobertaForSequenceClassification", i.spm))), "results:", succeeds=True),
    Case("retrieval-transformers5-directory", "xlmr-ds", lambda i: ["eval", "retrieval", "--model", str(save_transformers_model(i.root / "hf", spm_model=i.spm)), "--pairs", "de=" + i.text("a b\nc d\n", "en.txt") + ":" + i.text("x y\nz w\n", "de.txt")], "accuracy@1", succeeds=True),
    Case("extend-vocab-tokenizer-json-only", "xlmr-ds", lambda i: i.extend_vocab(str(save_transformers_model(i.root / "hf", spm_model=i.spm)), i.spm), "hf: its tokenizer is tokenizer.json, not a SentencePiece model; extending the vocabulary needs the SentencePiece model the new one extends"),
    Case("tokenizer-json-not-xlmr-ids", "xlmr-ds", lambda i: i.finetune("--test", "de=" + i.text("a\tb\tentailment\n", "t.tsv"), model=str(swap_s_and_pad(save_transformers_model(i.root / "hf", spm_model=i.spm)))), "hf/tokenizer.json: <s> is id 1; xlmr-ds needs XLM-R's ids: <s>=0, <pad>=1, </s>=2, <unk>=3 and <mask> last (id 501 of its 502)"),
    # output paths and reruns
    Case("model-config-odd-window", "xlmr-ds", lambda i: ["info", "--model-config", i.text(json.dumps({"architecture": "modernbert", "local_attention": 15}), "model.json")], "local_attention=15 must be even"),
    Case("model-config-rope-odd-head", "xlmr-ds", lambda i: ["info", "--model-config", i.text(json.dumps({"architecture": "modernbert", "hidden_size": 120, "num_heads": 8}), "model.json")], "head size hidden_size / num_heads = 15 is odd; rotary embeddings rotate pairs"),
    Case("model-config-unknown-architecture", "xlmr-ds", lambda i: ["info", "--model-config", i.text(json.dumps({"architecture": "gpt2"}), "model.json")], "model.json: architecture 'gpt2' is not one xlmr-ds builds; expected one of xlmr, modernbert"),
    Case("model-config-architecture-not-run", "xlmr-ds", lambda i: ["smoke", "--model-config", i.text(json.dumps({"architecture": "modernbert"}), "model.json")], "is a ModernBERT model; xlmr-ds smoke takes XLM-R (RoBERTa) models only so far"),
    Case("checkpoint-of-another-architecture", "train", lambda i: i.train("--save", i.checkpoint(), steps="6", model=("--model", "modern-tiny")), "saved for a model of the XLM-R (RoBERTa) architecture, and this run trains a ModernBERT one; resume it with the model it was trained with"),
    Case("init-from-another-architecture", "train", lambda i: i.train("--init-from", i.modern_hf()), "its config.json is a ModernBERT model and --model tiny a XLM-R (RoBERTa) one; leave --model out"),
    Case("model-config-with-byte-order-mark", "xlmr-ds", lambda i: ["info", "--model-config", i.text("\ufeff" + json.dumps({"hidden_size": 64, "num_layers": 2, "num_heads": 2, "ffn_size": 128}), "model.json")], "2 layers, hidden 64, ffn 128", succeeds=True),
    Case("hostfile-with-byte-order-mark", "xlmr-ds", lambda i: ["launch", "check", "--hostfile", i.text("\ufeffnode1 slots=1\n", "hosts")], "hosts: starts with a byte-order mark, which DeepSpeed's launcher reads as part of the first host's name"),
    Case("corpus-with-byte-order-mark", "xlmr-ds", lambda i: i.binarize(i.corpus({"en.txt": "\ufeffa line.\n".encode(), "fr.txt": b"une ligne.\n"})), "manifest.json", succeeds=True),
    Case("train-save-under-a-file", "train", lambda i: i.train("--save", i.text("x", "notes") + "/run"), "notes is a file, so nothing can be written under it; choose another path"),
    Case("export-out-is-a-file", "xlmr-ds", lambda i: ["export", "--ckpt", i.checkpoint(), "--out", i.text("x", "hf")], "hf: exists and is not a directory; choose another path"),
    Case("compare-out-is-a-directory", "xlmr-ds", lambda i: ["compare", i.checkpoint(), "--out", str(i.root)], "is a directory, not a file name"),
    Case("report-out-under-a-file", "xlmr-ds", lambda i: ["report", "--run", i.checkpoint(), "--out", i.text("x", "notes") + "/report.md"], "notes is a file, so nothing can be written under it"),
    Case("spm-train-out-under-a-file", "xlmr-ds", lambda i: ["spm", "train", "--input", str(i.corpus_dir), "--vocab-size", "300", "--out", i.text("x", "notes") + "/spm"], "notes is a file, so nothing can be written under it"),
    Case("resume-batch-size-changed", "train", lambda i: i.train("--save", i.checkpoint(), steps="6", config=i.config(train_batch_size=16, gradient_accumulation_steps=8)), "step_00000004: trained with a global batch of 8 samples, but "),
    Case("eval-json-is-a-directory", "xlmr-ds", lambda i: ["eval", "--ckpt", i.checkpoint(), "--data", str(i.good_dataset), "--json", str(i.root)], "is a directory, not a file name"),
]


@pytest.fixture(scope="module")
def other_tokenizer(corpus_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A second SentencePiece model (300 pieces) and the corpus binarized with it."""
    from xlmr_ds.prep.binarize import binarize_corpus
    from xlmr_ds.world import SingleProcess

    root = tmp_path_factory.mktemp("other-tokenizer")
    train_sentencepiece(corpus_dir, root / "spm", vocab_size=300, sample_lines=2000, seed=0, progress=False)
    binarize_corpus(corpus_dir, root / "spm.model", root / "data", SingleProcess(), progress=False)
    return root / "spm.model", root / "data"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and ".index" not in p.parts}


def run(case: Case, args: list[str]) -> subprocess.CompletedProcess:
    if case.command == "train":
        return train(args, processes=1, launcher="python", timeout=300, check=False)
    return subprocess.run([sys.executable, "-m", "xlmr_ds", *args], capture_output=True, text=True, timeout=300,
                          env=environment())


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_in_one_line_and_leaves_nothing_behind(case, corpus_dir, spm_model, binarized_dir,
                                                                    unbroken_runs, other_tokenizer, tmp_path):
    inputs = Inputs(tmp_path, corpus_dir, spm_model, binarized_dir, lambda: unbroken_runs(2), other_tokenizer)
    args = case.args(inputs)
    before = snapshot(tmp_path)
    result = run(case, args)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    if case.succeeds:
        assert result.returncode == 0, output[-3000:]
        assert case.expect in result.stdout, result.stdout
        return
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and case.expect in errors[0], result.stderr[-3000:]
    print(errors[0])  # shown by pytest -rP: what a user reads
    assert snapshot(tmp_path) == before, "a refused command left something behind"
    assert not os.path.exists(tmp_path / "out" / "manifest.json")
