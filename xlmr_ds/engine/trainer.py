"""The training loop: DeepSpeed ZeRO, exact resume, metrics, evaluation, preemption-safe checkpoints.

It reads top to bottom: set up the process group and config, build data and model, resume if asked,
then optimizer steps (each `gradient_accumulation_steps` micro-batches) with logging, evaluation and saving.

Faults end the job, never hang it nor leave a broken checkpoint: a progress watchdog (watchdog.py) ends a
process that stopped making progress, a lost peer is one line instead of a gloo traceback, a save that fails
(a full disk) is one line and leaves the previous checkpoint as it was, and a NaN/inf loss is handled by the
--nonfinite-loss policy (nonfinite.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from xlmr_ds import __version__
from xlmr_ds.accelerator import select_deepspeed_accelerator
from xlmr_ds.data.masking import IGNORE_INDEX
from xlmr_ds.data.pretraining import DataConfig, PretrainingData, build_train_loader, check_loader_state
from xlmr_ds.data.pretraining import loader_state
from xlmr_ds.data.sampling import stable_seed
from xlmr_ds.engine import checkpoint as ckpt
from xlmr_ds.engine.build import build_model, parameter_groups
from xlmr_ds.engine.ds_config import config_hash, load_ds_config, prepare_ds_config, zero_stage
from xlmr_ds.engine.host_memory import return_freed_memory_to_the_os
from xlmr_ds.engine.metrics import MetricsLog
from xlmr_ds.engine.nonfinite import Outcome, check_supported, decide
from xlmr_ds.engine.teardown import release_shared_memory_buffer, shut_down_process_group
from xlmr_ds.engine.watchdog import ProgressWatchdog
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.evaluation import evaluate_languages
from xlmr_ds.faults import fault_point
from xlmr_ds.flops import device_peak_tflops, training_flops
from xlmr_ds.kernels import mlm_mask
from xlmr_ds.model import XLMRConfig, preset


class StopRequest:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint at the next step boundary and exits cleanly."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True


class Trainer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        select_deepspeed_accelerator()
        import deepspeed

        self.deepspeed = deepspeed
        deepspeed.init_distributed(timeout=timedelta(minutes=args.dist_timeout_minutes))
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        self.save_dir = Path(args.save) if args.save else None
        metrics_file = Path(args.metrics_file) if args.metrics_file else (
            self.save_dir / "metrics.jsonl" if self.save_dir else None)
        self.metrics = MetricsLog(metrics_file or Path(os.devnull), self.rank == 0 and metrics_file is not None)
        self.stop = StopRequest()
        self.watchdog: ProgressWatchdog | None = None
        self.step = 0

    def beat(self, activity: str) -> None:
        if self.watchdog is not None:
            self.watchdog.beat(activity)

    def log(self, message: str) -> None:
        if self.rank == 0:
            tqdm.write(f"[xlmr-ds] {message}")

    # ---- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        args = self.args
        return_freed_memory_to_the_os()  # before the model and the optimizer states are allocated
        raw_config = load_ds_config(args.deepspeed_config)
        self.stage = zero_stage(raw_config)
        self.ds_config = prepare_ds_config(raw_config, args.deepspeed_config, self.world_size, args.steps)
        self.fp16 = bool(self.ds_config.get("fp16", {}).get("enabled"))
        if args.nonfinite_loss == "skip":
            check_supported(args.nonfinite_loss, self.ds_config, self.stage, args.deepspeed_config)
        self._route_monitors()
        base = XLMRConfig.from_json(args.model_config) if args.model_config else preset(args.model)
        self.data = PretrainingData(DataConfig(args.data, block_size=min(args.block_size, base.max_sequence_length),
                                               seed=args.seed, valid_fraction=args.valid_fraction))
        self.model_config = base.replace(vocab_size=self.data.vocab_size)

        self.resume_from, ignored = ckpt.resolve_resume(args.resume, self.save_dir)
        for info in ignored:
            # Never complete, newer than what this run continues from: the space is better used by new saves.
            self.log(f"ignoring incomplete checkpoint {info.path} (no {ckpt.MARKER}: its save did not finish); "
                     f"removing it")
            if self.rank == 0:
                ckpt.remove_checkpoint(info.path)
        self.universal = False
        if self.resume_from:
            ckpt.check_compatible(self.resume_from, self.model_config.to_dict(), self.stage)
            ckpt.verify_files(self.resume_from)
            saved_world = self.resume_from.marker["world_size"]
            if saved_world != self.world_size:
                self.universal = True
                self.log(f"checkpoint saved by {saved_world} processes, resuming on {self.world_size}: "
                         f"loading DeepSpeed's universal form")
                if self.rank == 0:
                    ckpt.convert_to_universal(self.resume_from)
                dist.barrier()
                self.ds_config.setdefault("checkpoint", {})["load_universal"] = True

        torch.manual_seed(args.seed)  # the same initial weights on every rank
        model = build_model(self.model_config, self.ds_config, self.stage, args.init_from)
        model.activation_checkpointing = args.activation_checkpointing
        self.engine, _, _, _ = self.deepspeed.initialize(model=model, model_parameters=parameter_groups(model),
                                                         config=self.ds_config)
        self.step, self.consumed_samples = 0, 0
        if self.resume_from:
            self._load(self.resume_from)
        else:
            torch.manual_seed(stable_seed(args.seed, "dropout", self.rank))
        self.metrics.truncate_after(self.step)
        self.loader = build_train_loader(self.data, self.engine.train_batch_size(),
                                         self.engine.train_micro_batch_size_per_gpu(), self.rank, self.world_size,
                                         self.consumed_samples, num_workers=self.loader_workers,
                                         pin_memory=self.device.type == "cuda", masked=not self.mask_on_device)
        name = torch.cuda.get_device_name() if self.device.type == "cuda" else None
        self.peak_flops = (args.peak_tflops or device_peak_tflops(name) or 0.0) * 1e12

    def _route_monitors(self) -> None:
        """TensorBoard and CSV monitors write under --save unless the config names a path; off without --save."""
        for key in ("tensorboard", "csv_monitor"):
            section = self.ds_config.get(key)
            if not section or not section.get("enabled"):
                continue
            if self.save_dir is None:
                section["enabled"] = False
            elif not section.get("output_path"):
                section["output_path"] = str(self.save_dir / "monitor")

    def _load(self, info: ckpt.CheckpointInfo) -> None:
        load_dir, tag = (info.path, ckpt.UNIVERSAL) if self.universal else (info.path.parent, info.path.name)
        path, _ = self.engine.load_checkpoint(str(load_dir), tag=tag, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if path is None:
            raise XLMRDSError(f"{info.path}: DeepSpeed could not load this checkpoint (files missing?)")
        marker = info.marker
        self.step = marker["step"]
        self.consumed_samples = check_loader_state(self.data, marker["data"])
        if self.universal:
            # Another world size has other ranks: the dropout streams start afresh, keyed by step and rank.
            torch.manual_seed(stable_seed(self.args.seed, "dropout", self.step, self.rank))
        else:
            ckpt.restore_rng_state(info.path, self.rank)
        self.log(f"resumed from {info.path} at step {self.step}, {self.consumed_samples} samples consumed")

    # ---- the loop --------------------------------------------------------------------------------
    def train(self) -> int:
        args = self.args
        batches = iter(self.loader)
        progress = tqdm(total=args.steps, initial=self.step, desc="train", unit="step", disable=self.rank != 0)
        self.watchdog = ProgressWatchdog(args.dist_timeout_minutes * 60, self.rank, self.world_size)
        try:  # the bar is closed before an error is printed, so the error is a line of its own
            if self.step == 0 and args.eval_every:
                self.evaluate()
            while self.step < args.steps:
                record, outcome, nonfinite_ranks, stop = self.train_step(batches)
                self.metrics.write(record)
                progress.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                progress.update(1)
                self._handle_outcome(outcome, record["loss"], nonfinite_ranks)
                if args.eval_every and self.step % args.eval_every == 0:
                    self.evaluate()
                if args.exit_at_step and self.step >= args.exit_at_step and self.step < args.steps:
                    self.log(f"--exit-at-step {args.exit_at_step}: saving at step {self.step} and exiting")
                    stop = True
                elif stop:
                    self.log(f"stop requested (SIGTERM/SIGINT): saving at step {self.step} and exiting")
                if stop:
                    if self.save_dir:
                        self.save()
                    else:
                        self.log("no --save directory: nothing was saved")
                    break
                if self.save_dir and ((args.save_every and self.step % args.save_every == 0) or self.step == args.steps):
                    self.save()
        finally:
            progress.close()
        self.report_peak_memory()
        return 0

    def train_step(self, batches) -> tuple[dict, Outcome, int, bool]:
        """One optimizer step of `gradient_accumulation_steps` micro-batches: (its metrics record, what became of
        it, how many ranks saw a non-finite loss, whether any rank was asked to stop)."""
        engine = self.engine
        started = time.perf_counter()
        activity = f"step {self.step + 1}"
        self.beat(activity)
        fault_point("step", self.step + 1, self.rank)
        lr = engine.optimizer.param_groups[0]["lr"]  # what this step uses (the scheduler steps after it)
        # On the device, read once after the last micro-batch (the step's one device-to-host transfer: no
        # .item() per micro-batch): loss sum, labelled positions, micro-batches with a non-finite loss.
        device_totals = torch.zeros(3, dtype=torch.float64, device=self.device)
        tokens, flops_without_head = 0.0, 0.0
        accumulation = engine.gradient_accumulation_steps()
        for _ in range(accumulation):
            host_batch = next(batches)
            batch = self._on_device(host_batch)
            labels = batch["labels"]
            output = engine(batch["input_ids"], batch["attention_mask"], labels=labels)
            loss = output.loss
            if fault_point("loss", self.step + 1, self.rank) == "nan":
                loss = loss * float("nan")
            # A non-finite loss gets a NaN factor, so that this rank's gradients, and after the reduction every
            # rank's gradient norm, are NaN and DeepSpeed discards the step everywhere (nonfinite.py). A finite
            # loss is multiplied by exactly 1.0, and nothing waits on the device for the test.
            loss = loss * torch.where(torch.isfinite(loss.detach()), 1.0, float("nan")).to(loss.dtype)
            engine.backward(loss)
            engine.step()
            self.beat(activity)
            detached = loss.detach().double()
            device_totals[0] += detached / accumulation
            device_totals[1] += labels.ne(IGNORE_INDEX).sum()
            device_totals[2] += (~torch.isfinite(detached)).float()
            # Tokens and the FLOPs outside the LM head come from the batch on the host: no device work.
            sequences, seq = host_batch["attention_mask"].shape
            tokens += float(host_batch["attention_mask"].sum())
            flops_without_head += sequences * training_flops(self.model_config.num_layers, self.model_config.hidden_size,
                                                             self.model_config.vocab_size, seq, 0)
        loss_sum, labelled, nonfinite_micro_batches = device_totals.tolist()
        head_flops = training_flops(0, self.model_config.hidden_size, self.model_config.vocab_size, 0, int(labelled))
        # loss sum, real tokens, model FLOPs, stop flag, ranks with a non-finite loss
        totals = torch.tensor([loss_sum, tokens, flops_without_head + head_flops, 0.0,
                               1.0 if nonfinite_micro_batches else 0.0], dtype=torch.float64)
        totals[3] = float(self.stop.requested)
        reduced = totals.to(self._reduce_device())
        dist.all_reduce(reduced)
        loss, tokens, flops, stop, nonfinite_ranks = (
            reduced / torch.tensor([self.world_size, 1, 1, 1, 1], device=reduced.device)).tolist()
        self.step += 1
        self.consumed_samples += engine.train_batch_size()
        elapsed = time.perf_counter() - started
        outcome = decide(self.args.nonfinite_loss, nonfinite_ranks > 0, engine.was_step_applied(), self.fp16)
        grad_norm = engine.get_global_grad_norm()
        record = {
            "type": "train", "step": self.step, "loss": loss, "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "consumed_samples": self.consumed_samples, "tokens": int(tokens), "tokens_per_s": tokens / elapsed,
            "mfu": flops / elapsed / (self.peak_flops * self.world_size) if self.peak_flops else None,
            "step_time_s": elapsed, "skipped": outcome is not Outcome.APPLIED, "skipped_steps": engine.skipped_steps,
        }
        return record, outcome, int(nonfinite_ranks), bool(stop)

    def _handle_outcome(self, outcome: Outcome, loss: float, nonfinite_ranks: int) -> None:
        """Go on, count a skipped step, or stop (see nonfinite.py); every rank reaches the same outcome."""
        if outcome is Outcome.APPLIED:
            return
        what = (f"the loss is {loss} at step {self.step} (not finite on {nonfinite_ranks} of {self.world_size} "
                f"processes)" if nonfinite_ranks else f"the gradients of step {self.step} are not finite")
        newest = self._newest_complete()
        kept = f"the newest complete checkpoint is {newest}" if newest else "no checkpoint was saved yet"
        if outcome is Outcome.CORRUPTED:
            raise XLMRDSError(f"{what} and DeepSpeed applied the update: stopping before a corrupted model is saved; "
                              f"{kept}")
        if outcome is Outcome.STOP:
            raise XLMRDSError(f"{what}; stopping (--nonfinite-loss stop): DeepSpeed skipped the update and nothing was "
                              f"saved after it; {kept}. Lower the learning rate or check the data, then resume "
                              f"(--resume auto), or pass --nonfinite-loss skip to skip such steps")
        reason = "fp16 loss scaler" if self.fp16 else "--nonfinite-loss skip"
        self.log(f"{what}: step skipped ({reason}), the model is unchanged; "
                 f"{self.engine.skipped_steps} step(s) skipped so far")

    def _newest_complete(self) -> Path | None:
        if self.save_dir is None:
            return None
        complete = [c.path for c in ckpt.list_checkpoints(self.save_dir) if c.complete]
        return complete[-1] if complete else None

    def report_peak_memory(self) -> list[float]:
        """Each process's peak resident memory in GiB (max RSS), logged by rank 0 and kept in metrics."""
        peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30], dtype=torch.float64)
        gathered = [torch.zeros_like(peak) for _ in range(self.world_size)]
        dist.all_gather(gathered, peak)
        per_rank = [round(float(t), 3) for t in gathered]
        self.log(f"peak memory per process (max RSS, GiB): {per_rank}")
        self.metrics.write({"type": "summary", "step": self.step, "peak_rss_gib": per_rank})
        return per_rank

    @property
    def loader_workers(self) -> int:
        if self.args.num_workers is not None:
            return self.args.num_workers
        return 2 if self.device.type == "cuda" else 0

    @property
    def mask_on_device(self) -> bool:
        """On a GPU the MLM masking kernel masks the batch (bit-identical to the loader's CPU masking)."""
        return self.device.type == "cuda"

    def _on_device(self, batch: dict) -> dict:
        moved = {key: batch[key].to(self.device, non_blocking=True)
                 for key in ("input_ids", "attention_mask", "labels", "sample_index")}
        if self.mask_on_device:
            moved["input_ids"], moved["labels"] = mlm_mask(moved["input_ids"], moved["sample_index"],
                                                           self.data.masking, self.data.config.seed)
        return moved

    def _reduce_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def evaluate(self) -> dict:
        """Per-language validation; every rank runs the same batches (ZeRO-3 needs all ranks in every
        forward) and rank 0 logs."""
        self.engine.eval()
        results = evaluate_languages(self.engine, self.data, self.args.eval_samples,
                                     self.engine.train_micro_batch_size_per_gpu(), self.device,
                                     on_batch=lambda: self.beat(f"evaluation at step {self.step}"))
        self.engine.train()
        self.metrics.write({"type": "eval", "step": self.step, "languages": results})
        if results:
            mean = sum(r["loss"] for r in results.values()) / len(results)
            self.log(f"step {self.step}: validation loss {mean:.4f} (mean of {len(results)} languages)")
        return results

    def save(self) -> None:
        tag = ckpt.tag_for(self.step)
        target = self.save_dir / tag
        self.beat(f"saving {tag}")
        newest = self._newest_complete()
        if self.rank == 0 and target.exists():
            # The leftovers of a save that died, or a checkpoint of this step from a history that was resumed
            # from an earlier step: either way it is replaced, its marker removed first.
            if (target / ckpt.MARKER).exists():
                self.log(f"replacing {target}: this run resumed from an earlier step")
            ckpt.remove_checkpoint(target)
        dist.barrier()
        # The position is in DeepSpeed's client_state and in our marker (the marker is what --resume reads, as
        # it is also there for universal checkpoints); each rank's RNG state is a file of its own, because
        # client_state is written by one rank only.
        client_state = {"step": self.step, "consumed_samples": self.consumed_samples,
                        "data": loader_state(self.data, self.consumed_samples)}
        try:
            self.engine.save_checkpoint(str(self.save_dir), tag=tag, client_state=client_state, save_latest=False)
            ckpt.save_rng_state(target, self.rank)
        except (OSError, RuntimeError) as error:
            self._save_failed(error, target, newest)
        fault_point("save", self.step, self.rank)
        self.beat(f"saving {tag}")
        dist.barrier()
        if self.rank == 0:
            try:
                self._write_marker(target)
            except OSError as error:
                self._save_failed(error, target, newest)
            for removed in ckpt.prune(self.save_dir, self.args.keep):
                self.log(f"removed old checkpoint {removed}")
        dist.barrier()
        self.log(f"saved {target}")

    def _save_failed(self, error: BaseException, target: Path, newest: Path | None) -> None:
        """A write error (a full disk, a lost mount) becomes one line. The partial checkpoint stays until the next
        start removes it: deleting it now would free the space and hide from the other ranks why their writes
        failed. Other errors are bugs and keep their traceback."""
        if isinstance(error, RuntimeError) and not ckpt.is_write_error(error):
            raise error
        raise XLMRDSError(ckpt.save_failure_message(error, target, newest)) from None

    def _write_marker(self, target: Path) -> None:
        tokenizer_path = (Path(self.args.data) / self.data.manifest["tokenizer"]["file"]).resolve()
        ckpt.write_marker(target, {
            "step": self.step, "consumed_samples": self.consumed_samples,
            "data": loader_state(self.data, self.consumed_samples), "world_size": self.world_size,
            "zero_stage": self.stage, "config_hash": config_hash(self.ds_config),
            "model_config": self.model_config.to_dict(),
            "tokenizer": {**self.data.manifest["tokenizer"], "path": str(tokenizer_path)},
            "data_config": asdict(self.data.config), "xlmr_ds_version": __version__,
            "deepspeed_version": self.deepspeed.__version__, "files": ckpt.list_files(target),
        })


def run(args: argparse.Namespace) -> int:
    trainer = Trainer(args)
    try:
        trainer.setup()
        return trainer.train()
    except RuntimeError as error:
        if not is_lost_peer(error):
            raise
        newest = trainer._newest_complete()
        detail = str(error).strip().splitlines()[0].split("] ", 1)[-1].split(". ")[0][:160]
        raise XLMRDSError(f"lost contact with another process of the job during step {trainer.step + 1} ({detail}): "
                          f"it died or its node failed; restart the job, it resumes from "
                          f"{newest or 'the newest complete checkpoint'}") from None
    finally:
        trainer.beat("shutting down")
        release_shared_memory_buffer()
        shut_down_process_group()
        if trainer.watchdog is not None:
            trainer.watchdog.stop()


def is_lost_peer(error: RuntimeError) -> bool:
    """A collective failed because a peer went away (gloo's words for a closed or silent connection)."""
    text = str(error)
    return "gloo" in text and any(words in text for words in (
        "Connection reset by peer", "Connection closed by peer", "Broken pipe", "Timed out waiting"))
