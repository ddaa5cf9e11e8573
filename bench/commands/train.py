"""`bench train`: train one reward parametrization on a labelled JSONL split (resumes from `<out>.ckpt/`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

import torch

from bench.errors import ConfigError
from bench.utils.argtypes import finite_float, non_negative_float, positive_int

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.rewards.registry import names
    from bench.training.trainer import AMP_MODES, SCHEDULES, TrainConfig

    d = TrainConfig()
    parser.add_argument("--parametrization", required=True, choices=names())
    parser.add_argument(
        "--backbone", default=None, help="trunk model spec (default when distilling: the teacher's backbone)"
    )
    parser.add_argument(
        "--num-layers", type=positive_int, default=None, help="keep the first N transformer blocks (default: all)"
    )
    parser.add_argument("--train", required=True, help="training JSONL {text, labels}")
    parser.add_argument("--heldout", default=None, help="held-out JSONL for periodic evaluation")
    parser.add_argument(
        "--attributes",
        default=None,
        help="comma list (default: label keys of the first record; distilling: the teacher's)",
    )
    parser.add_argument("--steer-attribute", default=None, help="output used for steering (default: the first)")
    parser.add_argument(
        "--mlp-rank", type=positive_int, default=None, help="arm-mlp bottleneck rank (default: hidden size)"
    )
    parser.add_argument(
        "--teacher", default=None, help="distilled parametrizations (arm-distill): the trained teacher's folder"
    )
    parser.add_argument("--distill-base", default=None, help="distilling: base LM spec whose top-k are candidates")
    parser.add_argument("--distill-k", type=positive_int, default=8, help="distilling: candidates per prefix")
    parser.add_argument(
        "--prior-weight", type=non_negative_float, default=0.1, help="distilling: baseline-prior weight"
    )
    parser.add_argument("--out", required=True, help="output reward-model folder")
    parser.add_argument(
        "--max-steps",
        "--steps",
        dest="steps",
        type=int,
        default=d.steps,
        help="step budget; training stops earlier when --patience evaluations bring no improvement",
    )
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--grad-accum", type=int, default=d.grad_accum)
    parser.add_argument("--lr", type=finite_float, default=d.lr)
    parser.add_argument("--weight-decay", type=finite_float, default=d.weight_decay)
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    parser.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    parser.add_argument("--max-grad-norm", type=finite_float, default=d.max_grad_norm)
    parser.add_argument("--max-length", type=int, default=d.max_length)
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument("--eval-size", type=int, default=d.eval_size)
    parser.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="stop after this many held-out evaluations without improvement (0: never)",
    )
    parser.add_argument(
        "--min-delta",
        type=float,
        default=d.min_delta,
        help="smallest drop of the held-out metric that counts as an improvement",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--amp", choices=AMP_MODES, default=d.amp)
    parser.add_argument("--loss", default=d.loss, help="cumulative_mse | cumulative_bce | last_mse")
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--dtype", default="float32", help="trunk dtype (float32 | bfloat16 | float16)")


def run(args: argparse.Namespace) -> int:
    from bench.models.loading import load_tokenizer, model_commit, resolve_device
    from bench.rewards.base import RewardConfig
    from bench.rewards.registry import DISTILLATION, build_reward_model, get, read_reward_config
    from bench.training.collate import LabeledTexts, first_label_keys
    from bench.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        schedule=args.schedule,
        max_grad_norm=args.max_grad_norm,
        max_length=args.max_length,
        eval_every=args.eval_every,
        eval_size=args.eval_size,
        patience=args.patience,
        min_delta=args.min_delta,
        seed=args.seed,
        amp=args.amp,
        loss=args.loss,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
    ).validate()
    from bench.training.trainer import checkpoint_dir
    from bench.utils.io import check_writable

    check_writable(folders=[args.out, checkpoint_dir(args.out)])  # before any model is built or step taken
    spec = get(args.parametrization)
    distill = spec.training == DISTILLATION
    if distill and not args.teacher:
        raise ConfigError(f"--parametrization {spec.name} needs --teacher <trained {spec.teacher} folder>")
    if args.teacher and not distill:
        raise ConfigError(f"--teacher is only used by distilled parametrizations, not '{args.parametrization}'")
    backbone = args.backbone
    if backbone is None:
        if not distill:
            raise ConfigError("--backbone is required")
        backbone = read_reward_config(args.teacher).backbone
    if args.attributes:
        attributes = [a.strip() for a in args.attributes.split(",") if a.strip()]
    elif distill:  # the student reproduces the teacher's outputs
        attributes = list(read_reward_config(args.teacher).attributes)
    else:
        attributes = first_label_keys(args.train)
    extra = {"train_file": str(args.train)}
    if distill:
        extra.update(
            teacher=str(args.teacher),
            distill_base=args.distill_base,
            distill_k=args.distill_k,
            prior_weight=args.prior_weight,
        )
    rconfig = RewardConfig(
        parametrization=args.parametrization,
        backbone=backbone,
        num_layers=args.num_layers,
        attributes=attributes,
        steer_attribute=args.steer_attribute,
        mlp_rank=args.mlp_rank,
        dtype=args.dtype,
        extra=extra,
    )
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # head initialisation (arm-mlp's random A, rad's head)
    model = build_reward_model(rconfig, device=device)
    model.config.extra["backbone_commit"] = model_commit(backbone)  # provenance: the hub commit of the trunk
    tok = load_tokenizer(backbone)
    train = LabeledTexts.from_jsonl(args.train, tok, attributes, cfg.max_length)
    heldout = (
        LabeledTexts.from_jsonl(args.heldout, tok, attributes, cfg.max_length, limit=cfg.eval_size)
        if args.heldout
        else None
    )
    objective = None
    if distill:
        objective = _distill_objective(args, model, backbone, attributes, device, spec.teacher)
    trainer = Trainer(model, cfg, train, heldout, args.out, pad_id=tok.pad_token_id, objective=objective)
    summary = trainer.train()
    final = summary["final"]
    print(
        json.dumps(
            {
                "out": str(args.out),
                "steps": summary["steps"],
                "best_step": summary["best_step"],
                "stop_reason": summary["stop_reason"],
                "steps_per_s": summary["steps_per_s"],
                "heldout_mse": final.get("heldout_mse"),
                "heldout_auc": final.get("heldout_auc"),
            }
        )
    )
    return 0


def _distill_objective(args, model, backbone: str, attributes: list[str], device, teacher_name: str):
    from bench.models.loading import load_causal_lm
    from bench.training.distill import DistillConfig, DistillObjective, check_student_teacher, load_teacher

    teacher = load_teacher(args.teacher, device, expected=teacher_name)
    check_student_teacher(model, teacher, backbone, teacher.config.backbone, args.distill_base)
    base = load_causal_lm(args.distill_base, device=str(device)) if args.distill_base else None
    dcfg = DistillConfig(num_candidates=args.distill_k, prior_weight=args.prior_weight, prior_tokens=args.distill_k)
    log.info("distilling %s -> %s (%s)", args.teacher, model.config.parametrization, dataclasses.asdict(dcfg))
    return DistillObjective(teacher, dcfg, attributes, base_lm=base)
