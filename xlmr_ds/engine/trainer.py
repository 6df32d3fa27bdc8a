"""The training loop: DeepSpeed ZeRO steps with metrics, evaluation and preemption-safe checkpoints.

It reads top to bottom: the trainer starts the job's runtime (engine/runtime.py: the process group, the guards,
the collectives); `setup` prepares the DeepSpeed config, builds data and model, and resumes if asked; `train`
runs optimizer steps (each `gradient_accumulation_steps` micro-batches) with logging, evaluation and saving.
Everything the run is told comes in one RunConfig (xlmr_ds/config.py); checkpoints go through the
CheckpointManager (checkpoint.py), failures through the guards (guards/): a progress watchdog ends a process
that stopped making progress, a lost peer is one line instead of a gloo traceback, a save that fails (a full
disk) is one line and leaves the previous checkpoint as it was, and a NaN/inf loss is handled by the
non-finite policy.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import time
from pathlib import Path

import torch

from xlmr_ds import __version__
from xlmr_ds.config import RunConfig
from xlmr_ds.dataset.loader import PretrainingData, TrainLoader
from xlmr_ds.dataset.recipe import Recipe, load_recipe
from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.dataset.sampling_report import REPORT_FILE, describe, sampling_report
from xlmr_ds.engine import checkpoint as ckpt
from xlmr_ds.engine.build import build_model, parameter_groups
from xlmr_ds.engine.ds_config import (
    config_hash,
    load_ds_config,
    prepare_ds_config,
    resolve_batch_sizes,
    route_monitors,
    zero_stage,
)
from xlmr_ds.engine.evaluation import context_free_guesses, evaluate_languages
from xlmr_ds.engine.guards.host_memory import return_freed_memory_to_the_os
from xlmr_ds.engine.guards.nonfinite import Outcome, check_supported, decide
from xlmr_ds.engine.guards.watchdog import is_lost_peer
from xlmr_ds.engine.metrics import MetricsLog
from xlmr_ds.engine.new_rows import NewRowsOnly, read_new_rows
from xlmr_ds.engine.runtime import Runtime
from xlmr_ds.engine.schedule import RecipeLearningRate
from xlmr_ds.engine.step import MaskedLMStep, StepTotals, keyed_loss
from xlmr_ds.engine.word_probes import ask_word_probes, choose_word_probes, default_probe_languages
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.estimate.flops import device_peak_tflops
from xlmr_ds.logs import log, progress_bar
from xlmr_ds.model.architectures import data_vocabulary
from xlmr_ds.outputs import write_json_atomically

BRANCH_FILE = "branch.json"
"""In a branch's save_dir: {"branch_from": the source checkpoint's absolute path, "step": its step}."""


class Trainer:
    def __init__(self, config: RunConfig):
        self.config = config
        self.runtime = Runtime.start(config.policies.dist_timeout_minutes)
        import deepspeed

        self.deepspeed = deepspeed
        self.rank, self.world_size, self.device = self.runtime.rank, self.runtime.world_size, self.runtime.device
        self.save_dir = Path(config.checkpointing.save_dir) if config.checkpointing.save_dir else None
        metrics_file = Path(config.logging.metrics_file) if config.logging.metrics_file else (
            self.save_dir / "metrics.jsonl" if self.save_dir else None)
        self.metrics = MetricsLog(metrics_file or Path(os.devnull), self.rank == 0 and metrics_file is not None)
        self.step = 0

    def beat(self, activity: str) -> None:
        self.runtime.beat(activity)

    # ---- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        config = self.config
        return_freed_memory_to_the_os()  # before the model and the optimizer states are allocated
        ds_config_path = config.optimization.deepspeed_config
        raw_config = load_ds_config(ds_config_path)
        self.stage = zero_stage(raw_config)
        batch_size, _, _ = resolve_batch_sizes(raw_config, ds_config_path, self.world_size)
        shape = config.model.shape()
        recipe = load_recipe(config.data.recipe) if config.data.recipe else None
        self.data = PretrainingData(
            dataclasses.replace(config.data, block_size=min(config.data.block_size, shape.max_sequence_length)),
            recipe or Recipe.single_phase(config.optimization.steps), batch_size,
            peak_lr=raw_config.get("optimizer", {}).get("params", {}).get("lr"),
            max_sequence_length=shape.max_sequence_length, world=self.runtime)
        self.plan = self.data.plan
        if config.logging.eval_every:
            self._prepare_evaluation()
        self.total_steps = self._total_steps(recipe)
        self.ds_config = prepare_ds_config(raw_config, ds_config_path, self.world_size, self.total_steps)
        self.fp16 = bool(self.ds_config.get("fp16", {}).get("enabled"))
        if config.policies.nonfinite_loss == "skip":
            check_supported(config.policies.nonfinite_loss, self.ds_config, self.stage, ds_config_path)
        route_monitors(self.ds_config, self.save_dir)
        self.model_config = data_vocabulary(shape, self.data.vocab_size)
        scheduler = None
        if self.plan.recipe.has_learning_rates:
            if self.ds_config.pop("scheduler", None):
                log(f"{recipe.source} sets the learning rate of every phase: the scheduler of {ds_config_path} is "
                    f"not used")
            plan = self.plan
            scheduler = lambda optimizer: RecipeLearningRate(optimizer, plan)  # noqa: E731 (DeepSpeed calls it)
        # A batch size that changes between steps: the accumulation boundary is set for each micro-batch, since
        # DeepSpeed's own count of micro-steps assumes one accumulation for the whole run.
        self.batch_changes = any(p.batch.start != p.batch.end or p.batch.start != batch_size for p in self.plan.phases)

        resume_from, universal = self._resume_point()
        self.resumed_from = resume_from.path if resume_from else None
        if resume_from is not None and resume_from.step >= self.total_steps:
            # Nothing left to train: no model, no DeepSpeed engine (its monitors would open new event files),
            # no record rewritten; train() says so.
            self.step = resume_from.step
            return
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        model = build_model(self.model_config, self.ds_config, self.stage, config.model.init_from,
                            config.model.activation_checkpointing)
        self.new_rows_only = None
        new_embedding_phases = [p for p in self.plan.phases if p.train == "new_embeddings"]
        if new_embedding_phases:  # hooks on the parameters, before DeepSpeed partitions them
            where = f"{recipe.source}: phases[{new_embedding_phases[0].index}]"
            self.new_rows_only = NewRowsOnly(model, read_new_rows(config.model.init_from, where))
        self.engine, _, _, _ = self.deepspeed.initialize(model=model, model_parameters=parameter_groups(model),
                                                         config=self.ds_config, lr_scheduler=scheduler)
        self.loader = TrainLoader(self.data, self.plan,
                                  self.engine.train_micro_batch_size_per_gpu(), self.rank, self.world_size,
                                  num_workers=self._loader_workers(), pin_memory=self.device.type == "cuda",
                                  masked=not self.mask_on_device)
        self._loss_of = keyed_loss(config.seed, keyed_dropout=config.model.dropout_keys == "sample")
        self.step_runner = MaskedLMStep(
            self.engine, self.runtime, self.model_config, self.data.config.seed, self.mask_on_device,
            lambda engine, batch, sample_index: self.micro_batch_loss(batch, sample_index),
            on_micro_batch=lambda: self.beat(f"step {self.step + 1}"))
        self.checkpoints = ckpt.CheckpointManager(self.save_dir, self.engine, {"data": self.loader},
                                                  self._marker_meta(), self.runtime, log)
        if resume_from:
            self.step = self.checkpoints.load(resume_from, universal)
            if universal:
                # Another world size has other ranks: with --dropout-keys rank the dropout streams start afresh,
                # keyed by step and rank (keyed by sample, dropout does not depend on them).
                torch.manual_seed(stable_seed(config.seed, "dropout", self.step, self.rank))
            log(f"resumed from {resume_from.path} at step {self.step}, {self.loader.consumed_samples} samples "
                f"consumed")
        else:
            torch.manual_seed(stable_seed(config.seed, "dropout", self.rank))
        self.metrics.truncate_after(self.step)
        self._write_sampling_report()  # once the checkpoint is known to fit the recipe
        name = torch.cuda.get_device_name() if self.device.type == "cuda" else None
        self.peak_flops = (config.logging.peak_tflops or device_peak_tflops(name) or 0.0) * 1e12

    def _total_steps(self, recipe: Recipe | None) -> int:
        """The run's length: --steps, or the recipe's (which --steps, when given, must equal)."""
        steps = self.config.optimization.steps
        if recipe is None:
            return steps
        if steps is not None and steps != self.plan.total_steps:
            raise XLMRDSError(f"--steps {steps} but {recipe.source} has {self.plan.total_steps} steps "
                              f"({', '.join(f'{p.name} {p.steps}' for p in self.plan.phases)}); leave --steps out "
                              f"to train the whole recipe, or stop early with --exit-at-step")
        return self.plan.total_steps

    def _write_sampling_report(self) -> None:
        """Log what each phase draws from each language, and keep it as save_dir/sampling.json."""
        if self.rank != 0:
            return
        report = sampling_report(self.data)
        for line in describe(report):
            log(line)
        if self.save_dir:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomically(self.save_dir / REPORT_FILE, report)

    def _resume_point(self) -> tuple[ckpt.CheckpointInfo | None, bool]:
        """The checkpoint to resume from (checked against this run) and whether it needs its universal form."""
        resume_from, ignored = ckpt.resolve_resume(self.config.checkpointing.resume, self.save_dir)
        branch_from = self.config.checkpointing.branch_from
        if branch_from and resume_from is None:
            resume_from, _ = ckpt.resolve_resume(branch_from, None)
            if self.save_dir.resolve() == resume_from.path.parent.resolve():
                raise XLMRDSError(f"--branch-from {branch_from} is in --save {self.save_dir}: a branch saves in a "
                                  f"directory of its own (or resume the run itself with --resume)")
            log(f"branching from {resume_from.path} at step {resume_from.step} into {self.save_dir}")
            branching = True
        else:
            branching = False
        for info in ignored:
            # Never complete, newer than what this run continues from: the space is better used by new saves.
            log(f"ignoring incomplete checkpoint {info.path} (no {ckpt.MARKER}: its save did not finish); removing it")
            if self.rank == 0:
                ckpt.remove_checkpoint(info.path)
        if resume_from is None:
            return None, False
        ckpt.check_compatible(resume_from, self.model_config.to_dict(), self.stage)
        ckpt.verify_files(resume_from)
        consumed = resume_from.marker["state"]["data"]["consumed_samples"]
        if consumed != self.plan.samples_before(resume_from.step):
            self._refuse_changed_batch_size(resume_from, consumed)
            raise XLMRDSError(f"{resume_from.path}: {consumed} samples consumed by step {resume_from.step}, but this "
                              f"run's recipe reaches step {resume_from.step} after "
                              f"{self.plan.samples_before(resume_from.step)}: its phases before step "
                              f"{resume_from.step} differ from the ones the checkpoint was trained with; change only "
                              f"later phases")
        if branching:
            self._start_branch(resume_from)
        changes = self.config.changes_since(resume_from.marker["run_config"])
        if changes:
            log(f"settings changed since {resume_from.path.name}: {'; '.join(changes)}")
        saved_phases = resume_from.marker.get("recipe")
        if saved_phases is not None and saved_phases != self.plan.to_dict():
            # A decay branch does this on purpose; by mistake it changes the samples from here on.
            changed = [p["name"] for p, q in zip(self.plan.to_dict(), saved_phases) if p != q]
            log(f"the recipe's phases differ from those {resume_from.path.name} was saved with (changed: "
                f"{', '.join(changed) or 'the number of phases'}); the run goes on with the new ones")
        saved_world = resume_from.marker["world_size"]
        if saved_world == self.world_size or resume_from.step >= self.total_steps:
            return resume_from, False  # (with nothing left to train, no universal form is written either)
        log(f"checkpoint saved by {saved_world} processes, resuming on {self.world_size}: loading DeepSpeed's "
            f"universal form")
        if self.rank == 0:
            ckpt.convert_to_universal(resume_from)
        self.runtime.barrier()
        self.ds_config.setdefault("checkpoint", {})["load_universal"] = True
        return resume_from, True

    def _refuse_changed_batch_size(self, resume_from: ckpt.CheckpointInfo, consumed: int) -> None:
        """Where neither this run nor the saved one has a recipe, only the DeepSpeed config's global batch size
        moves the samples before a step: say so, rather than speak of phases the user never wrote."""
        saved_recipe = resume_from.marker.get("run_config", {}).get("data", {}).get("recipe")
        if self.config.data.recipe is not None or saved_recipe is not None:
            return
        step, saved_batch = resume_from.step, consumed // max(resume_from.step, 1)
        batch = self.plan.batch_size(0)
        raise XLMRDSError(f"{resume_from.path}: trained with a global batch of {saved_batch} samples, but "
                          f"{self.config.optimization.deepspeed_config} gives {batch} (train_batch_size = micro batch "
                          f"x gradient_accumulation_steps x {self.world_size} processes); a run resumes with the "
                          f"batch size it was trained with: restore it, or change it from step {step} on with a "
                          f"--recipe whose first phase runs {step} steps at batch_size {saved_batch} "
                          f"(docs/training.md: Recipes), or train into a new --save")

    def _start_branch(self, source: ckpt.CheckpointInfo) -> None:
        """The branch's directory begins with where it came from (branch.json) and the source run's metrics up
        to the branch point, so that its curves start where the source's do."""
        if self.rank != 0:
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomically(self.save_dir / BRANCH_FILE, {"branch_from": str(source.path.resolve()),
                                                            "step": source.step})
        source_metrics = source.path.parent / "metrics.jsonl"
        if source_metrics.exists() and self.metrics.enabled and not self.metrics.path.exists():
            shutil.copyfile(source_metrics, self.metrics.path)

    def _marker_meta(self) -> dict:
        """What every checkpoint's marker records about this run (checkpoint.py lists the fields)."""
        tokenizer = self.data.manifest["tokenizer"]
        return {"zero_stage": self.stage, "ds_config_hash": config_hash(self.ds_config),
                "model_config": self.model_config.to_dict(),
                "tokenizer": {**tokenizer, "path": str(self.data.tokenizer_file.resolve())},
                "run_config": self.config.to_dict(), "recipe": self.plan.to_dict(),
                "versions": {"xlmr_ds": __version__, "deepspeed": self.deepspeed.__version__,
                             "torch": torch.__version__}}

    def _loader_workers(self) -> int:
        if self.config.loader_workers is not None:
            return self.config.loader_workers
        return 2 if self.device.type == "cuda" else 0

    @property
    def mask_on_device(self) -> bool:
        """On a GPU the MLM masking kernel masks the batch (bit-identical to the loader's CPU masking)."""
        return self.device.type == "cuda"

    # ---- the loop --------------------------------------------------------------------------------
    def train(self) -> int:
        steps, exit_at = self.total_steps, self.config.optimization.exit_at_step
        eval_every, save_every = self.config.logging.eval_every, self.config.checkpointing.save_every
        if self.step >= steps:
            log(f"nothing to train: {self.resumed_from} is at step {self.step} and this run has "
                f"{steps} steps; its records are left as they are (raise --steps, or choose a new --save, to train "
                f"more)")
            return 0
        batches = iter(self.loader)
        progress = progress_bar(total=steps, initial=self.step, desc="train", unit="step", rank=self.rank)
        self.runtime.start_watchdog()
        try:  # the bar is closed before an error is printed, so the error is a line of its own
            if self.step == 0 and eval_every:
                self.evaluate()
            while self.step < steps:
                record, outcome, totals = self.train_step(batches)
                self.metrics.write(record)
                progress.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                progress.update(1)
                self._handle_outcome(outcome, record["loss"], int(totals.nonfinite_ranks))
                if eval_every and self.step % eval_every == 0:
                    self.evaluate()
                stop = bool(totals.stop_requested)
                if exit_at and exit_at <= self.step < steps:
                    log(f"--exit-at-step {exit_at}: saving at step {self.step} and exiting")
                    stop = True
                elif stop:
                    log(f"stop requested (SIGTERM/SIGINT): saving at step {self.step} and exiting")
                if stop:
                    if self.save_dir:
                        self.save()
                    else:
                        log("no --save directory: nothing was saved")
                    break
                if self.save_dir and ((save_every and self.step % save_every == 0) or self.step == steps):
                    self.save()
        finally:
            progress.close()
        self.report_peak_memory()
        return 0

    def train_step(self, batches) -> tuple[dict, Outcome, StepTotals]:
        """One optimizer step of `gradient_accumulation_steps` micro-batches: its metrics record, what became
        of it, and its totals over every process."""
        engine = self.engine
        started = time.perf_counter()
        activity = f"step {self.step + 1}"
        self.beat(activity)
        lr = engine.optimizer.param_groups[0]["lr"]  # what this step uses (the scheduler steps after it)
        phase = self.plan.phase_of_step(self.step)
        if self.new_rows_only is not None:
            self.new_rows_only.set_active(phase.train == "new_embeddings", engine.optimizer)
        batch_size = self.plan.batch_size(self.step)
        if batch_size != engine.train_batch_size():
            engine.set_train_batch_size(batch_size)
        totals = self.step_runner(batches, self.data.phase_masking[phase.index], self.batch_changes)
        loss, flops = totals.loss / self.world_size, totals.flops(self.model_config)
        self.step += 1
        self.loader.step_done()
        elapsed = time.perf_counter() - started
        outcome = decide(self.config.policies.nonfinite_loss, totals.nonfinite_ranks > 0, engine.was_step_applied(),
                         self.fp16)
        record = {
            "type": "train", "step": self.step, "phase": phase.name, "batch_size": batch_size, "loss": loss,
            "lr": lr,
            "grad_norm": totals.grad_norm,
            "consumed_samples": self.loader.consumed_samples, "tokens": int(totals.tokens),
            "tokens_per_s": totals.tokens / elapsed,
            "mfu": flops / elapsed / (self.peak_flops * self.world_size) if self.peak_flops else None,
            "step_time_s": elapsed, "skipped": outcome is not Outcome.APPLIED, "skipped_steps": engine.skipped_steps,
        }
        return record, outcome, totals

    def micro_batch_loss(self, batch: dict, sample_index: torch.Tensor) -> torch.Tensor:
        """The masked-LM loss of one micro-batch on the device; sample_index (on the host) keys its dropout.
        (A method of its own: the fault tests' NaN injection wraps it.)"""
        return self._loss_of(self.engine, batch, sample_index)

    def _handle_outcome(self, outcome: Outcome, loss: float, nonfinite_ranks: int) -> None:
        """Go on, count a skipped step, or stop (see guards/nonfinite.py); every rank reaches the same outcome."""
        if outcome is Outcome.APPLIED:
            return
        what = (f"the loss is {loss} at step {self.step} (not finite on {nonfinite_ranks} of {self.world_size} "
                f"processes)" if nonfinite_ranks else f"the gradients of step {self.step} are not finite")
        newest = ckpt.newest_complete(self.save_dir)
        kept = f"the newest complete checkpoint is {newest}" if newest else "no checkpoint was saved yet"
        if outcome is Outcome.CORRUPTED:
            raise XLMRDSError(f"{what} and DeepSpeed applied the update: stopping before a corrupted model is saved; "
                              f"{kept}")
        if outcome is Outcome.STOP:
            raise XLMRDSError(f"{what}; stopping (--nonfinite-loss stop): DeepSpeed skipped the update and nothing was "
                              f"saved after it; {kept}. Lower the learning rate or check the data, then resume "
                              f"(--resume auto), or pass --nonfinite-loss skip to skip such steps")
        reason = "fp16 loss scaler" if self.fp16 else "--nonfinite-loss skip"
        log(f"{what}: step skipped ({reason}), the model is unchanged; {self.engine.skipped_steps} step(s) skipped "
            f"so far")

    def report_peak_memory(self) -> list[float]:
        """Each process's peak resident memory in GiB (max RSS), logged by rank 0 and kept in metrics."""
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
        per_rank = [round(value, 3) for value in self.runtime.gather_objects(peak)]
        log(f"peak memory per process (max RSS, GiB): {per_rank}")
        self.metrics.write({"type": "summary", "step": self.step, "peak_rss_gib": per_rank})
        return per_rank

    def evaluate(self) -> dict:
        """Per-language validation; every rank runs the same batches (ZeRO-3 needs all ranks in every
        forward) and rank 0 logs."""
        self.engine.eval()
        results = evaluate_languages(self.engine, self.data, self.config.logging.eval_samples,
                                     self.engine.train_micro_batch_size_per_gpu(), self.device,
                                     on_batch=lambda: self.beat(f"evaluation at step {self.step}"),
                                     guesses=self.context_free)
        probes = ask_word_probes(self.engine, self.data, self.tokenizer, self.word_probes, self.device)
        self.engine.train()
        for result in results.values():
            result["context_free_piece"] = self.tokenizer.id_to_piece(result["context_free_id"])
        self.metrics.write({"type": "eval", "step": self.step, "languages": results, "word_probes": probes})
        if results:
            mean = sum(r["loss"] for r in results.values()) / len(results)
            log(f"step {self.step}: validation loss {mean:.4f} (mean of {len(results)} languages)")
        return results

    def _prepare_evaluation(self) -> None:
        """What every validation reuses: each language's context-free guess and the held-out word probes."""
        from xlmr_ds.tokenizer import XLMRTokenizer

        self.tokenizer = XLMRTokenizer(self.data.tokenizer_file)
        self.context_free = context_free_guesses(self.data)
        languages = list(self.config.logging.probe_languages) or default_probe_languages(self.data)
        unknown = sorted(set(languages) - set(self.data.languages))
        if unknown:
            raise XLMRDSError(f"--probe-languages: {', '.join(unknown)} not in {self.data.config.data_dir} "
                              f"(it has {', '.join(self.data.languages)})")
        self.word_probes = choose_word_probes(self.data, self.tokenizer, languages, self.data.config.seed)

    def save(self) -> None:
        self.checkpoints.save(self.step, self.config.checkpointing.keep)


def run(config: RunConfig) -> int:
    trainer = Trainer(config)
    try:
        trainer.setup()
        return trainer.train()
    except RuntimeError as error:
        if not is_lost_peer(error):
            raise
        newest = ckpt.newest_complete(trainer.save_dir)
        detail = str(error).strip().splitlines()[0].split("] ", 1)[-1].split(". ")[0][:160]
        raise XLMRDSError(f"lost contact with another process of the job during step {trainer.step + 1} ({detail}): "
                          f"it died or its node failed; restart the job, it resumes from "
                          f"{newest or 'the newest complete checkpoint'}") from None
    finally:
        trainer.runtime.shut_down()
