"""Fine-tuning a pretrained encoder on one task and scoring it on every test language: the cross-lingual transfer
of the XLM-R paper (train on the source languages, test on all). Classification tasks score accuracy or entity
F1; question answering (SQuAD / MLQA / XQuAD) trains on windows of each context (tasks/spans.py) and scores
MLQA's F1 and exact match of the best span (tasks/answers.py). All that differs between the kinds of task is one
object per kind (tasks/kinds.py); this module runs them all the same way.

It reads top to bottom: `load_task_data` reads and encodes every file (on every rank: task files are small);
`FineTuner.run` builds the classifier from the pretrained encoder, trains it with DeepSpeed (the pretraining
engine, launchers and ZeRO stages; one process works without a launcher), scores the dev and test sets after
every epoch, keeps the epoch the dev sets choose, and writes everything into --out at once.

The example order of epoch e is a permutation seeded by (seed, e), cut into global batches of --batch-size;
the last batch is filled up from the epoch's first examples, so every step has a full batch and every
process its equal share (rank r takes the r-th slice of each global batch). `epoch_batches` is that order.

--out, once complete (it appears only then: the run writes into a staging directory beside it and renames):

    results.json / results.csv / results.md   the test scores of the chosen epoch (tasks/results.py)
    metrics.jsonl     one object per optimizer step ({"type": "train", "step", "epoch", "loss", "lr",
                      "examples_per_s", "tokens_per_s"}) and per epoch ({"type": "eval", "step", "epoch",
                      "valid": {lang: score}, "test": {lang: score}, "selection": score or null})
    model/            the chosen epoch's classifier as a Hugging Face directory with its tokenizer
    settings.json     the run's settings (tasks/settings.py) and what was fine-tuned
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.engine.build import parameter_groups
from xlmr_ds.engine.ds_config import load_ds_config, prepare_ds_config, route_monitors, shipped_configs_dir
from xlmr_ds.engine.metrics import MetricsLog
from xlmr_ds.engine.pretrained import Pretrained, load_pretrained
from xlmr_ds.engine.runtime import Runtime
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import log, progress_bar
from xlmr_ds.model.architectures import save_hf_directory, task_head
from xlmr_ds.model.modeling import XLMRModel
from xlmr_ds.tasks.encoding import Encoded, LabelSet
from xlmr_ds.tasks.formats import TaskFile
from xlmr_ds.tasks.kinds import KINDS, TaskKind
from xlmr_ds.tasks.output import StagedOutput
from xlmr_ds.tasks.results import ResultTable
from xlmr_ds.tasks.settings import FinetuneSettings
from xlmr_ds.tasks.spans import SpanFeature
from xlmr_ds.tokenizer import Tokenizer

DEFAULT_DS_CONFIG = "finetune.json"
"""The shipped DeepSpeed config used without --deepspeed_config (ds_configs/finetune.json)."""


@dataclass
class EvalSet:
    """One language's dev or test examples, as read and as encoded."""

    language: str
    examples: list
    encoded: list[Encoded] | list[SpanFeature]
    """One per example; for question answering one per window of a context (several per example)."""


@dataclass
class TaskData:
    labels: LabelSet
    train: list[Encoded] | list[SpanFeature]
    source: tuple[str, ...]
    """The training files' languages, in the order given (those unknown are left out)."""

    valid: list[EvalSet]
    test: list[EvalSet]


def _eval_sets(kind: TaskKind, files: tuple[TaskFile, ...], tokenizer, labels, max_length, doc_stride,
               flag: str) -> list[EvalSet]:
    sets, seen = [], set()
    for file in files:
        examples, language = kind.read(file)
        if language is None:  # a name's stem ("dev") is no language to report a score under
            raise XLMRDSError(f"{flag} {file.path}: its language is not known (no language column, `lang:` prefix "
                              f"or language code in its name); give it as LANG=FILE")
        if language in seen:
            raise XLMRDSError(f"{flag} {file.path}: language {language!r} is given twice; one file per language")
        seen.add(language)
        sets.append(EvalSet(language, examples, kind.encode(tokenizer, examples, labels, max_length, doc_stride)))
    return sets


def load_task_data(settings: FinetuneSettings, tokenizer: Tokenizer, max_length: int) -> TaskData:
    """Every file read, checked and encoded: a bad line fails here, before any training."""
    kind, stride = KINDS[settings.task], settings.doc_stride
    train_examples, source = [], []
    for file in settings.train:
        examples, language = kind.read(file)
        train_examples += examples
        if language and language not in source:
            source.append(language)
    labels = kind.labels(train_examples)
    if len(labels.names) < 2:
        raise XLMRDSError(f"--train {settings.train[0].path}: every example has the label {labels.names[0]!r}; "
                          f"a classifier needs at least 2 labels in the training files")
    train = kind.encode(tokenizer, train_examples, labels, max_length, stride)
    valid = _eval_sets(kind, settings.valid, tokenizer, labels, max_length, stride, "--valid")
    if valid and settings.select_on == "source" and not any(s.language in source for s in valid):
        raise XLMRDSError(f"--valid: no file of the source language(s) ({', '.join(source) or 'unknown'}) to pick "
                          f"the epoch with; add one, or pass --select-on all")
    test = _eval_sets(kind, settings.test, tokenizer, labels, max_length, stride, "--test")
    return TaskData(labels, train, tuple(source), valid, test)


def build_classifier(task: str, encoder: XLMRModel, labels: LabelSet, seed: int) -> XLMRModel:
    """The classifier to fine-tune: the pretrained encoder's weights, a head initialized from `seed`."""
    torch.manual_seed(seed)
    model = task_head(KINDS[task].head, encoder.config)(encoder.config, labels.names)
    model.load_encoder(encoder)
    return model


def epoch_batches(examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of one epoch: example indices, every batch full (see the module docstring)."""
    order = torch.randperm(examples, generator=torch.Generator().manual_seed(stable_seed(seed, "order", epoch)))
    order = order.tolist()
    steps = math.ceil(examples / batch_size)
    filled = order + order * math.ceil((steps * batch_size - examples) / examples)
    return [filled[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def finetune_ds_config(settings: FinetuneSettings, world_size: int, total_steps: int) -> dict:
    """The DeepSpeed config with --lr, --batch-size and the step count filled in."""
    path = settings.deepspeed_config or str(shipped_configs_dir() / DEFAULT_DS_CONFIG)
    config = load_ds_config(path)
    if settings.batch_size % world_size:
        raise XLMRDSError(f"--batch-size={settings.batch_size} is not divisible by the {world_size} processes; "
                          f"use a multiple of {world_size}")
    config.update(train_batch_size=settings.batch_size,
                  train_micro_batch_size_per_gpu=settings.batch_size // world_size, gradient_accumulation_steps=1)
    optimizer = config.setdefault("optimizer", {"type": "AdamW", "params": {"torch_adam": True}})
    optimizer.setdefault("params", {})["lr"] = settings.lr
    params = config.get("scheduler", {}).get("params")
    if params is not None:
        for key in ("warmup_max_lr", "max_lr", "cycle_max_lr"):
            if key in params:
                params[key] = settings.lr
        if params.get("warmup_num_steps") == "auto":
            params["warmup_num_steps"] = max(1, round(settings.warmup_fraction * total_steps))
    return prepare_ds_config(config, path, world_size, total_steps)


def head_loss(engine, batch: dict) -> torch.Tensor:
    """The loss of one of our task heads (model/heads.py) on a micro-batch that kind.collate made."""
    return engine(**batch).loss


def fine_tuning_step(engine, runtime: Runtime, host_batch: dict, loss_of=head_loss) -> tuple[float, float, bool]:
    """One fine-tuning optimizer step on this process's micro-batch: (the loss summed over the processes, their
    real tokens, whether any process was asked to stop). The loss stays on the device until the step's one
    all-reduce, which carries the token count and the stop request with it: one host synchronization. What
    `xlmr-ds finetune` runs and `xlmr-ds bench --task` times."""
    batch = {k: v.to(runtime.device, non_blocking=True) for k, v in host_batch.items()}
    loss = loss_of(engine, batch)
    engine.backward(loss)
    engine.step()
    host = torch.tensor([float(host_batch["attention_mask"].sum()), float(runtime.stop_requested)],
                        dtype=torch.float64)
    loss_sum, tokens, stop = runtime.sum_tensor(torch.cat([loss.detach().double().reshape(1), host.to(loss.device)]))
    return loss_sum, tokens, bool(stop)


class FineTuner:
    """One fine-tuning run. It runs on the job's runtime (engine/runtime.py): the one given (a transfer sweep
    runs several fine-tunes on one), or one it starts, and shuts down at its end, itself."""

    def __init__(self, settings: FinetuneSettings, dist_timeout_minutes: float = 30.0, runtime: Runtime | None = None):
        self.settings = settings
        self.dist_timeout_minutes = dist_timeout_minutes
        self.runtime = runtime

    def run(self, pretrained: Pretrained | None = None) -> ResultTable:
        """Fine-tune, score, write --out; the result table of the chosen epoch (on every rank). Every file is
        read and checked first, so that bad input fails before a process group or --out exists."""
        settings = self.settings
        pretrained = pretrained or load_pretrained(settings.model, settings.step)
        max_length = min(settings.max_length, pretrained.model.config.max_sequence_length)
        data = load_task_data(settings, pretrained.tokenizer, max_length)
        StagedOutput.check(settings.out)
        owns_runtime = self.runtime is None
        runtime = self.runtime = self.runtime or Runtime.start(self.dist_timeout_minutes, job="xlmr-ds finetune")
        import deepspeed

        self.deepspeed = deepspeed
        self.rank, self.world_size, self.device = runtime.rank, runtime.world_size, runtime.device
        output = StagedOutput(settings.out, self.rank == 0)
        try:
            table = self._train_and_score(pretrained, data, output)
            runtime.barrier()
            output.commit()
            return table
        except BaseException:
            output.discard()
            raise
        finally:
            runtime.stop_watchdog()
            if owns_runtime:
                runtime.shut_down()

    def _train_and_score(self, pretrained: Pretrained, data: TaskData, output: StagedOutput) -> ResultTable:
        settings, kind = self.settings, KINDS[self.settings.task]
        steps_per_epoch = math.ceil(len(data.train) / settings.batch_size)
        total_steps = steps_per_epoch * settings.epochs
        ds_config = finetune_ds_config(settings, self.world_size, total_steps)
        route_monitors(ds_config, output.path)  # TensorBoard/CSV, when the config enables them: --out/monitor
        log(f"fine-tuning {pretrained.description} on {settings.task}: {len(data.train):,} training {kind.unit} "
            f"({', '.join(data.source) or 'language unknown'}), labels {', '.join(data.labels.names)}; "
            f"{settings.epochs} epochs of {steps_per_epoch} steps, batch {settings.batch_size} on "
            f"{self.world_size} process(es)")
        model = build_classifier(settings.task, pretrained.model, data.labels, settings.seed)
        engine, _, _, _ = self.deepspeed.initialize(model=model, model_parameters=parameter_groups(model),
                                                    config=ds_config)
        torch.manual_seed(stable_seed(settings.seed, "dropout", self.rank))
        metrics = MetricsLog(output.path / "metrics.jsonl" if output.path else Path("/dev/null"), output.enabled)
        best: tuple[float, ResultTable, dict | None] | None = None  # (selection score, test table, weights)
        step = 0
        micro = ds_config["train_micro_batch_size_per_gpu"]
        bar = progress_bar(rank=self.rank, total=total_steps, desc="fine-tune", unit="step")
        # From the first step on (DeepSpeed's start-up is not watched: it has no beats to give).
        self.runtime.start_watchdog(restart="the job can be run again (fine-tuning keeps no checkpoints)")
        for epoch in range(1, settings.epochs + 1):
            engine.train()
            for batch_indices in epoch_batches(len(data.train), settings.batch_size, settings.seed, epoch):
                mine = batch_indices[self.rank * micro:(self.rank + 1) * micro]
                step += 1
                self.runtime.beat(f"step {step}")
                record, stop = self._train_step(engine, kind.collate([data.train[i] for i in mine]), step)
                metrics.write({**record, "epoch": epoch})
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                bar.update()
                if stop:
                    bar.close()
                    raise XLMRDSError(f"stopped at step {step} of {total_steps} (SIGTERM/SIGINT): fine-tuning keeps "
                                      f"no checkpoints, so nothing was written and --out {settings.out} is as it "
                                      f"was; run the command again to fine-tune")
            valid = self.score(engine.module, kind, data.valid, data.labels)
            test = self.score(engine.module, kind, data.test, data.labels)
            chosen = [s.language for s in data.valid if settings.select_on == "all" or s.language in data.source]
            selection = sum(valid[lang][0] for lang in chosen) / len(chosen) if chosen else None
            metrics.write({"type": "eval", "step": step, "epoch": epoch, "selection": selection,
                           "valid": {lang: v[0] for lang, v in valid.items()},
                           "test": {lang: t[0] for lang, t in test.items()}})
            log(f"epoch {epoch}: " + ", ".join(f"test {lang} {kind.metric} {t[0]:.4f}" for lang, t in test.items())
                + (f"; dev selection {selection:.4f}" if selection is not None else ""))
            score = selection if selection is not None else float(epoch)  # no dev set: the last epoch
            if best is None or score > best[0]:
                table = ResultTable(settings.task, kind.metric, data.source, details=kind.details)
                for lang, (value, count, details) in test.items():
                    table.add(lang, value, count, **details)
                table.extra.update(epoch=epoch, step=step, selection=selection, select_on=settings.select_on,
                                   model=pretrained.description, pretraining_step=pretrained.step)
                if kind.metric == "accuracy":  # what a uniform guess scores: the bar zero-shot results must clear
                    table.extra["chance"] = 1 / len(data.labels.names)
                best = (score, table, self._gathered_state(engine.module))
        bar.close()
        self.runtime.beat("writing --out")
        _, table, state = best
        if output.enabled:
            self._write(output.path, table, state, model, pretrained, data)
        return table

    def _train_step(self, engine, host_batch: dict, step: int) -> tuple[dict, bool]:
        """One optimizer step on this process's share of the global batch: its metrics record, and whether any
        process was asked to stop (SIGTERM/SIGINT)."""
        started = time.perf_counter()
        lr = engine.get_lr()[0]  # this step's; the scheduler moves on in engine.step()
        loss_sum, tokens, stop = fine_tuning_step(engine, self.runtime, host_batch)
        seconds = max(time.perf_counter() - started, 1e-9)
        record = {"type": "train", "step": step, "loss": loss_sum / self.world_size, "lr": lr,
                  "examples_per_s": self.settings.batch_size / seconds, "tokens_per_s": tokens / seconds}
        return record, bool(stop)

    def _gathered_state(self, module: torch.nn.Module) -> dict | None:
        """The whole model's weights on rank 0 (a CPU copy; ZeRO-3's partitions gathered), None elsewhere."""
        params = [p for p in module.parameters() if hasattr(p, "ds_id")]
        with self.deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params)):
            if self.rank != 0:
                return None
            return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def score(self, module: torch.nn.Module, kind: TaskKind, sets: list[EvalSet],
              labels: LabelSet) -> dict[str, tuple[float, int, dict]]:
        """{language: (metric, examples, details)} for each set; every rank takes part (ZeRO-3 gathers in
        forward)."""
        module.eval()
        scores = {}
        for eval_set in sets:
            self.runtime.beat(f"scoring {eval_set.language}")
            predicted = self._predict(module, eval_set.encoded, kind)
            value, details = kind.score(eval_set.language, eval_set.examples, eval_set.encoded, predicted, labels)
            scores[eval_set.language] = (value, len(eval_set.examples), details)
        module.train()
        return scores

    def _predict(self, module: torch.nn.Module, encoded: list, kind: TaskKind) -> list:
        """kind.reduce(logits row, input length) of every input, in order. Rank r scores inputs r, r + world, ...;
        every rank runs the same number of batches (the last ones may repeat an input)."""
        batch_size = self.settings.eval_batch_size
        mine = list(range(self.rank, len(encoded), self.world_size))
        batches = math.ceil(math.ceil(len(encoded) / self.world_size) / batch_size)
        predicted = []
        for b in range(batches):
            self.runtime.beat(f"scoring batch {b + 1} of {batches}")
            indices = mine[b * batch_size:(b + 1) * batch_size]
            real = len(indices)
            indices = indices or [0]  # a rank with nothing left still joins the collective forward
            batch = kind.collate([encoded[i] for i in indices])
            logits = module(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)).logits
            logits = logits.float().cpu()
            predicted += [kind.reduce(logits[row], len(encoded[i].input_ids)) for row, i in enumerate(indices[:real])]
        gathered = self.runtime.gather_objects(predicted)
        ordered = [None] * len(encoded)
        for rank, values in enumerate(gathered):
            ordered[rank::self.world_size] = values
        return ordered

    def _write(self, out: Path, table: ResultTable, state: dict, model: XLMRModel, pretrained: Pretrained,
               data: TaskData) -> None:
        options = {"pooling": model.pooling} if hasattr(model, "pooling") else {}
        head = type(model)(model.config, model.labels, model.classifier_dropout, **options)
        head.load_state_dict(state)
        save_hf_directory(head, out / "model", tokenizer_model=pretrained.tokenizer.model_file)
        title = f"{self.settings.task}: zero-shot transfer from {', '.join(data.source) or 'the training files'}"
        table.write(out, title)
        settings = {**self.settings.to_dict(), "source": list(data.source), "labels": list(data.labels.names),
                    "pretrained": pretrained.description, "pretraining_step": pretrained.step,
                    "world_size": self.world_size}
        (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def finetune(settings: FinetuneSettings, pretrained: Pretrained | None = None) -> ResultTable:
    return FineTuner(settings).run(pretrained)

