"""Resumable reward-model training: AdamW, warmup + decay, clipping, accumulation, held-out eval, early stopping.

Early stopping: every `eval_every` steps the held-out metric (`heldout_mse` for label objectives, the held-out
value of the objective, `heldout_objective`, for others such as distillation) is compared with the best so
far; an improvement of more than `min_delta` makes the current weights the best (kept in memory and in each
checkpoint), `patience` evaluations in a row without one stop the run. `steps` is the budget (max steps).
The saved model is the best evaluated one, so training "until it stops improving" never ends on a worse model.

Exact resumption: the batch of (step, micro-batch) is a pure function of the seed (one seeded permutation
of the training set per epoch), every per-step random draw uses a generator seeded from (seed, step,
micro-batch), and checkpoints hold the trainable tensors (safetensors) plus optimizer / grad-scaler / torch
RNG state (`torch.save`, read back with `weights_only=True`). A run killed with -9 and restarted therefore
ends with exactly the weights of an uninterrupted run.

Checkpoint folder `<out>.ckpt/`: `step-XXXXXXXX.safetensors` + `step-XXXXXXXX.pt` (+ `step-XXXXXXXX.best.safetensors`,
the best weights so far), and `latest.json` (written last, atomically) naming the complete set; older sets are
deleted after a new one is in place. The early-stopping state (best step / value, evaluations since) and the
training time so far are in the `.pt`, so a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from bench.errors import ConfigError, ModelError
from bench.reporting.format import fmt
from bench.rewards.base import RewardModel
from bench.training.collate import Collator, LabeledTexts
from bench.training.losses import get_loss, last_token_rewards
from bench.utils.io import atomic_path, set_output_mode, staging_dir, write_json
from bench.utils.testhooks import progress_point

log = logging.getLogger(__name__)

SCHEDULES = ("linear", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")
# Settings that change which batches / updates a step sees: a resumed run must keep them.
IDENTITY_KEYS = ("model_config", "train_data")
RESUME_KEYS = (
    "batch_size",
    "grad_accum",
    "seed",
    "lr",
    "weight_decay",
    "warmup_steps",
    "schedule",
    "max_grad_norm",
    "max_length",
    "loss",
    "amp",
    "eval_every",
    "eval_size",
    "patience",
    "min_delta",
)


@dataclass
class TrainConfig:
    """Optimisation settings (validated by `validate`, which the CLI and Trainer call)."""

    steps: int = 1000  # the step budget (max steps)
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "linear"  # linear | cosine | constant decay after warmup
    max_grad_norm: float = 1.0  # 0: no clipping
    max_length: int = 64
    eval_every: int = 100  # 0: only at the end (then no early stopping)
    patience: int = 0  # stop after this many evaluations without improvement; 0: never stop early
    min_delta: float = 0.0  # an evaluation improves when the metric drops by more than this
    eval_size: int = 1000  # held-out rows used (first N)
    seed: int = 0
    amp: str = "none"  # none | bf16 | fp16 (autocast on CUDA only)
    loss: str = "cumulative_mse"
    checkpoint_every: int = 200  # 0: no checkpoints
    device: str = "auto"

    def validate(self) -> TrainConfig:
        def need(cond: bool, key: str, what: str) -> None:
            if not cond:
                raise ConfigError(f"train config: '{key}' = {getattr(self, key)!r}, expected {what}")

        need(isinstance(self.steps, int) and self.steps >= 1, "steps", "an integer >= 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(isinstance(self.grad_accum, int) and self.grad_accum >= 1, "grad_accum", "an integer >= 1")
        need(self.lr > 0 and math.isfinite(self.lr), "lr", "a positive number")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps, "warmup_steps", "an integer >= 0")
        need(self.schedule in SCHEDULES, "schedule", f"one of {list(SCHEDULES)}")
        need(self.max_length >= 2, "max_length", "an integer >= 2")
        need(self.eval_size >= 1, "eval_size", "an integer >= 1")
        need(
            isinstance(self.eval_every, int) and self.eval_every >= 0,
            "eval_every",
            "an integer >= 0 (0: only at the end)",
        )
        need(
            isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0,
            "checkpoint_every",
            "an integer >= 0 (0: no checkpoints)",
        )
        need(
            math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0,
            "max_grad_norm",
            "a number >= 0 (0: no clipping)",
        )
        need(isinstance(self.patience, int) and self.patience >= 0, "patience", "an integer >= 0")
        need(self.min_delta >= 0 and math.isfinite(self.min_delta), "min_delta", "a finite number >= 0")
        need(self.amp in AMP_MODES, "amp", f"one of {list(AMP_MODES)}")
        get_loss(self.loss)
        return self

    def lr_at(self, step: int) -> float:
        """Learning rate of update `step` (0-based): linear warmup, then the decay schedule to 0."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        span = max(1, self.steps - self.warmup_steps)
        frac = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "linear":
            return self.lr * (1.0 - frac)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * frac))


class Objective(Protocol):
    """What one micro-batch costs: (loss to backpropagate, floats to log)."""

    def __call__(
        self, model: RewardModel, batch: dict[str, torch.Tensor], gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]: ...


class LabelObjective:
    """Regress the model's per-prefix rewards on the texts' labels with a named loss."""

    def __init__(self, loss: str) -> None:
        self.loss_fn = get_loss(loss)

    def __call__(self, model, batch, gen):
        rewards = model(batch["input_ids"], batch["attention_mask"])
        loss = self.loss_fn(rewards, batch["labels"], batch["attention_mask"])
        return loss, {}


class DataOrder:
    """Sample at global position p: epoch p // N, then a permutation seeded by (seed, epoch)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._perms: dict[int, torch.Tensor] = {}

    def index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=gen)}  # keep one epoch in memory
        return int(self._perms[epoch][offset])


def step_generator(seed: int, step: int, micro: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of every random draw in (step, micro-batch): resumption replays it exactly."""
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step) * 1_009 + micro)


def _is_binary(values: torch.Tensor) -> bool:
    return bool(((values == 0) | (values == 1)).all())


@torch.no_grad()
def evaluate(
    model: RewardModel,
    data: LabeledTexts,
    collate: Collator,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    limit: int | None = None,
) -> dict[str, float | None]:
    """Held-out metrics of each whole text's reward (first `limit` rows): MSE; accuracy / ROC-AUC if binary."""
    from sklearn.metrics import roc_auc_score

    was_training = model.training
    model.eval()
    preds, labels = [], []
    n = len(data) if limit is None else min(limit, len(data))
    for start in range(0, n, batch_size):
        batch = collate([data[i] for i in range(start, min(n, start + batch_size))])
        with autocast():
            r = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        preds.append(last_token_rewards(r, batch["attention_mask"].to(device)).float().cpu())
        labels.append(batch["labels"])
    model.train(was_training)
    p, y = torch.cat(preds), torch.cat(labels)
    names = model.config.attributes
    steer = model.config.steer_index
    mse = ((p - y) ** 2).mean(0)
    out: dict[str, float | None] = {
        "heldout_n": float(n),
        "heldout_mse": float(mse[steer]),
        "heldout_mse_mean": float(mse.mean()),
    }
    aucs, accs = [], []
    for j, name in enumerate(names):
        auc = acc = None
        if _is_binary(y[:, j]):
            acc = float(((p[:, j] >= 0.5).float() == y[:, j]).float().mean())
            if 0 < y[:, j].sum() < len(y):
                auc = float(roc_auc_score(y[:, j].numpy(), p[:, j].numpy()))
        out[f"heldout_mse/{name}"] = float(mse[j])
        out[f"heldout_auc/{name}"] = auc
        out[f"heldout_acc/{name}"] = acc
        aucs.append(auc)
        accs.append(acc)
    out["heldout_auc"] = aucs[steer]
    out["heldout_acc"] = accs[steer]
    good_auc = [a for a in aucs if a is not None]
    good_acc = [a for a in accs if a is not None]
    out["heldout_auc_mean"] = sum(good_auc) / len(good_auc) if good_auc else None
    out["heldout_acc_mean"] = sum(good_acc) / len(good_acc) if good_acc else None
    return out


@torch.no_grad()
def evaluate_objective(
    objective: Objective,
    model: RewardModel,
    data: LabeledTexts,
    collate: Collator,
    batch_size: int,
    device: torch.device,
    seed: int,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    limit: int | None = None,
) -> dict[str, float]:
    """Held-out value of a (non-label) objective and of each part it logs, as `heldout_objective[/part]`.

    Batch means weighted by texts per batch; random draws (e.g. random distillation candidates) come from
    generators seeded by (seed, batch), so every evaluation sees the same candidates.
    """
    was_training = model.training
    model.eval()
    n = len(data) if limit is None else min(limit, len(data))
    sums: dict[str, float] = {}
    for b, start in enumerate(range(0, n, batch_size)):
        rows = [data[i] for i in range(start, min(n, start + batch_size))]
        batch = {k: v.to(device) for k, v in collate(rows).items()}
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 7_919 + b)
        with autocast():
            loss, parts = objective(model, batch, gen)
        for key, value in {
            "heldout_objective": float(loss),
            **{f"heldout_objective/{k}": v for k, v in parts.items()},
        }.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(rows)
    model.train(was_training)
    return {k: v / n for k, v in sums.items()} if n else {}


def checkpoint_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


class Trainer:
    """Trains `model` on `train_data` and writes the final folder `out` (see the module docstring)."""

    def __init__(
        self,
        model: RewardModel,
        config: TrainConfig,
        train_data: LabeledTexts,
        heldout_data: LabeledTexts | None,
        out: str | os.PathLike,
        pad_id: int,
        objective: Objective | None = None,
        on_step: Callable[[int], None] | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        from bench.models.loading import resolve_device

        self.cfg = config.validate()
        if len(train_data) == 0:
            raise ConfigError("training data is empty")
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.train_data, self.heldout_data = train_data, heldout_data
        self.out = Path(out)
        self.ckpt = checkpoint_dir(self.out)
        self.collate = Collator(pad_id)
        self.objective = objective if objective is not None else LabelObjective(config.loss)
        self.on_step = on_step  # test hook: called after each completed (and checkpointed) step
        self.eval_batch_size = eval_batch_size or config.batch_size
        self.order = DataOrder(len(train_data), config.seed)
        self.amp = config.amp
        if self.amp != "none" and self.device.type != "cuda":
            log.warning("amp=%s needs CUDA; training in full precision on %s", self.amp, self.device)
            self.amp = "none"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        self.params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in self.params if p.dim() >= 2]
        no_decay = [p for p in self.params if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.loss_sum, self.loss_n = 0.0, 0
        # early stopping: the metric it watches, the best evaluation so far and its weights (CPU copy)
        self.monitor = "heldout_mse" if isinstance(self.objective, LabelObjective) else "heldout_objective"
        self.best_step: int | None = None
        self.best_value = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.evals_since_best = 0
        self.stop_reason: str | None = None
        self.train_seconds = 0.0  # over all runs of a resumed training

    # ---- helpers ------------------------------------------------------------------------------
    def autocast(self):
        if self.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def batch(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        bs = self.cfg.batch_size
        start = (step * self.cfg.grad_accum + micro) * bs
        examples = [self.train_data[self.order.index(p)] for p in range(start, start + bs)]
        return {k: v.to(self.device) for k, v in self.collate(examples).items()}

    def evaluate(self) -> dict[str, float | None]:
        if self.heldout_data is None or len(self.heldout_data) == 0:
            return {}
        out = evaluate(
            self.model,
            self.heldout_data,
            self.collate,
            self.eval_batch_size,
            self.device,
            self.autocast,
            limit=self.cfg.eval_size,
        )
        if not isinstance(self.objective, LabelObjective):
            out.update(
                evaluate_objective(
                    self.objective,
                    self.model,
                    self.heldout_data,
                    self.collate,
                    self.eval_batch_size,
                    self.device,
                    self.cfg.seed,
                    self.autocast,
                    limit=self.cfg.eval_size,
                )
            )
        return out

    def update_best(self, row: dict[str, Any]) -> None:
        """Early-stopping bookkeeping after an evaluation: a new best, or one more evaluation without."""
        value = row.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best_step is None or value < self.best_value - self.cfg.min_delta:
            self.best_step, self.best_value, self.evals_since_best = self.step, float(value), 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.trainable_state_dict().items()}
        else:
            self.evals_since_best += 1
            if self.cfg.patience > 0 and self.evals_since_best >= self.cfg.patience:
                self.stop_reason = "early_stopping"

    # ---- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        from safetensors.torch import save_file

        self.ckpt.mkdir(parents=True, exist_ok=True)
        stem = f"step-{self.step:08d}"
        tensors = {k: v.to("cpu") for k, v in self.model.trainable_state_dict().items()}
        with atomic_path(self.ckpt / f"{stem}.safetensors") as tmp:
            save_file(tensors, str(tmp))
            set_output_mode(tmp)
        best = None
        if self.best_state is not None:
            best = f"{stem}.best.safetensors"
            with atomic_path(self.ckpt / best) as tmp:
                save_file(self.best_state, str(tmp))
                set_output_mode(tmp)
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "rows": self.rows,
            "loss_sum": self.loss_sum,
            "loss_n": self.loss_n,
            "best_step": -1 if self.best_step is None else self.best_step,
            "best_value": self.best_value,
            "evals_since_best": self.evals_since_best,
            "train_seconds": self.train_seconds,
            "train_config": dataclasses.asdict(self.cfg),
            "identity": self.identity(),
        }
        with atomic_path(self.ckpt / f"{stem}.pt") as tmp:
            torch.save(state, tmp)
        write_json(
            self.ckpt / "latest.json",
            {"step": self.step, "weights": f"{stem}.safetensors", "state": f"{stem}.pt", "best": best},
        )
        for old in self.ckpt.glob("step-*"):
            if not old.name.startswith(stem):
                old.unlink(missing_ok=True)
        log.info("checkpoint at step %d -> %s", self.step, self.ckpt)
        progress_point("train-checkpoint")

    def load_checkpoint(self) -> bool:
        """Resume from `<out>.ckpt/latest.json` if present; refuses settings that change the batches."""
        from safetensors.torch import load_file

        latest = self.ckpt / "latest.json"
        if not latest.exists():
            return False
        current = latest
        try:
            meta = json.loads(latest.read_text(encoding="utf-8"))
            current = self.ckpt / meta["state"]
            state = torch.load(current, map_location="cpu", weights_only=True)
            current = self.ckpt / meta["weights"]
            tensors = load_file(str(current))
            best = None
            if meta.get("best"):
                current = self.ckpt / meta["best"]
                best = load_file(str(current))
        except Exception as exc:  # corrupt file, truncated write, or a pickle that is not plain tensors/state
            reason = str(exc).splitlines()[0] if str(exc) else ""
            raise ModelError(
                f"{current}: cannot resume from this checkpoint ({type(exc).__name__}: {reason}); "
                f"only weights_only-loadable state is accepted. Delete {self.ckpt} to start over"
            ) from exc
        saved = dict(state["train_config"], **(state.get("identity") or {}))
        now = dict(dataclasses.asdict(self.cfg), **self.identity())
        changed = [k for k in RESUME_KEYS + IDENTITY_KEYS if saved.get(k) != now.get(k)]
        if changed:  # resuming would mix two runs: start over, loudly
            log.warning(
                "%s: not resuming, %s changed since the checkpoint; starting over",
                self.ckpt,
                ", ".join(_change(k, saved.get(k), now.get(k)) for k in changed),
            )
            shutil.rmtree(self.ckpt, ignore_errors=True)
            return False
        missing, unexpected = self.model.load_state_dict(tensors, strict=False)
        if unexpected or set(missing) & set(self.model.trainable_state_dict()):
            raise ConfigError(f"{self.ckpt}: checkpoint does not match this model (unexpected {unexpected[:5]})")
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = int(state["step"])
        self.rows = list(state["rows"])
        self.loss_sum, self.loss_n = float(state["loss_sum"]), int(state["loss_n"])
        self.best_step = None if int(state["best_step"]) < 0 else int(state["best_step"])
        self.best_value, self.best_state = float(state["best_value"]), best
        self.evals_since_best = int(state["evals_since_best"])
        self.train_seconds = float(state["train_seconds"])
        log.info("resuming from %s at step %d", self.ckpt, self.step)
        return True

    def identity(self) -> dict[str, Any]:
        """What the run trains (the model's config) and on what (a digest of the tokenized data and labels):
        a checkpoint of another model or data set is never resumed."""
        import hashlib

        if getattr(self, "_identity", None) is None:
            h = hashlib.sha256()
            for i in range(len(self.train_data)):
                ex = self.train_data[i]
                h.update(repr((list(ex.input_ids), list(ex.labels))).encode())
            self._identity = {"model_config": self.model.config.to_dict(), "train_data": h.hexdigest()[:16]}
        return self._identity

    # ---- the loop -----------------------------------------------------------------------------
    def train_step(self) -> float:
        cfg = self.cfg
        lr = cfg.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(cfg.grad_accum):
            batch = self.batch(self.step, micro)
            gen = step_generator(cfg.seed, self.step, micro)
            with self.autocast():
                loss, _ = self.objective(self.model, batch, gen)
            self.scaler.scale(loss / cfg.grad_accum).backward()
            total += float(loss.detach()) / cfg.grad_accum
        if cfg.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return total

    def log_eval(self, lr: float, steps_per_s: float | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "step": self.step,
            "lr": lr,
            "train_loss": self.loss_sum / self.loss_n if self.loss_n else None,
            "steps_per_s": steps_per_s,
        }
        row.update(self.evaluate())
        self.rows.append(row)
        self.loss_sum, self.loss_n = 0.0, 0
        self.update_best(row)
        log.info(
            "step %d: train_loss %s, heldout_mse %s, heldout_auc %s%s",
            row["step"],
            fmt(row["train_loss"], ".4f"),
            fmt(row.get("heldout_mse"), ".4f"),
            fmt(row.get("heldout_auc"), ".4f"),
            "" if self.monitor == "heldout_mse" else f", {self.monitor} {fmt(row.get(self.monitor), '.4f')}",
        )
        return row

    def train(self) -> dict[str, Any]:
        """Run (or resume) until early stopping or `steps` updates, then write the best model; returns the summary."""
        from bench.utils.progress import Progress

        cfg = self.cfg
        if not self.load_checkpoint():
            torch.manual_seed(cfg.seed)
        if cfg.patience > 0 and self.evals_since_best >= cfg.patience:
            self.stop_reason = "early_stopping"  # killed after the deciding evaluation, before the final write
        self.model.train()
        start_step, t0 = self.step, time.perf_counter()
        self._clock = t0
        bar = Progress(
            cfg.steps, f"train {self.model.config.parametrization}", "steps", initial=self.step, logger=log
        )  # a bar on a terminal, periodic lines with rate and ETA in a log
        while self.step < cfg.steps and self.stop_reason is None:
            loss = self.train_step()
            if not math.isfinite(loss):
                raise ModelError(
                    f"{self.out}: training loss is {loss} at step {self.step}; expected a finite number "
                    "(non-finite labels, weights or learning rate?)"
                )
            self.loss_sum += loss
            self.loss_n += 1
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            sps = (self.step - start_step) / max(1e-9, time.perf_counter() - t0)
            if cfg.eval_every > 0 and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                self.log_eval(cfg.lr_at(self.step - 1), sps)
                self.model.train()
            if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.add_train_time()
                self.save_checkpoint()
            if self.on_step is not None:
                self.on_step(self.step)
        bar.close()
        done = self.step - start_step
        elapsed = time.perf_counter() - t0
        sps = done / elapsed if done and elapsed > 0 else None
        if not self.rows or self.rows[-1]["step"] != self.step:
            self.log_eval(cfg.lr_at(self.step - 1), sps)
        self.add_train_time()
        if self.stop_reason is None or self.step >= cfg.steps:
            self.stop_reason = "max_steps"
        best = self.rows[-1]
        if self.best_state is not None:  # the saved model is the best evaluated one
            self.model.load_state_dict({k: v.to(self.device) for k, v in self.best_state.items()}, strict=False)
            best = next(r for r in self.rows if r["step"] == self.best_step)
        self.model.eval()
        best_step = self.best_step if self.best_step is not None else self.step
        per_step = cfg.batch_size * cfg.grad_accum
        summary = {
            "parametrization": self.model.config.parametrization,
            "steps": self.step,
            "max_steps": cfg.steps,
            "best_step": best_step,
            "stop_reason": self.stop_reason,
            "monitor": self.monitor,
            "examples_seen": self.step * per_step,
            "examples_seen_at_best": best_step * per_step,
            "epochs": self.step * per_step / len(self.train_data),
            "train_seconds": self.train_seconds,
            "steps_this_run": done,
            "resumed_from_step": start_step,
            "seconds_this_run": elapsed,
            "steps_per_s": sps,
            "examples_per_s": sps * per_step if sps else None,
            "device": str(self.device),
            "train_size": len(self.train_data),
            "heldout_size": len(self.heldout_data) if self.heldout_data is not None else 0,
            "final": {k: v for k, v in best.items() if k.startswith("heldout") or k == "train_loss"},
            "train_config": dataclasses.asdict(cfg),
        }
        self.write_final(summary)
        shutil.rmtree(self.ckpt, ignore_errors=True)
        log.info(
            "trained %s: %d of %d steps (%s), best at step %d (%.1f s) -> %s",
            summary["parametrization"],
            self.step,
            cfg.steps,
            self.stop_reason,
            best_step,
            self.train_seconds,
            self.out,
        )
        return summary

    def add_train_time(self) -> None:
        """Add the time since the last call to the total over all (resumed) runs."""
        now = time.perf_counter()
        self.train_seconds += now - self._clock
        self._clock = now

    def write_final(self, summary: dict[str, Any]) -> None:
        """Model + train_log.jsonl + train_summary.json appear together (one rename of the folder)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_dir(self.out)
        try:
            folder = staging / "model"
            self.model.save_pretrained(folder)
            with open(folder / "train_log.jsonl", "w", encoding="utf-8") as fh:
                for row in self.rows:
                    fh.write(json.dumps(row) + "\n")
            (folder / "train_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
            if self.out.exists():
                shutil.rmtree(self.out)
            os.replace(folder, self.out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _change(key: str, old: Any, new: Any) -> str:
    if key == "train_data":
        return "the training data (content digest)"
    if key == "model_config" and isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "the model config (" + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys) + ")"
    return f"{key}: {old!r} -> {new!r}"
