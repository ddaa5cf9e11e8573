"""arm-distill: train an ARM student (baseline on) to reproduce a trained RAD teacher's rewards.

Per micro-batch of training texts, under no_grad, the teacher scores
  1. every teacher-forced prefix + observed token (its `forward`), and
  2. c candidate tokens after every prefix (its `score_candidates`, one cached call per position):
     the base LM's top-k if a base LM is given, else the observed next token + k random tokens.
The student matches both with squared error, from ONE trunk forward (ARM scores any token from h).
A "baseline prior" pushes the student's token part (W h)^T e_v toward 0 for random tokens v, so what
is common to all next tokens goes into the baseline w^T h rather than into every token's score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from bench.errors import ModelError
from bench.rewards.arm import ARMRewardModel
from bench.rewards.base import RewardModel
from bench.training.losses import distill_mse

log = logging.getLogger(__name__)


@dataclass
class DistillConfig:
    num_candidates: int = 8  # k: top-k of the base LM, or k random tokens (+ the observed one)
    candidate_weight: float = 1.0
    prior_weight: float = 0.1  # baseline prior on random tokens' token part
    prior_tokens: int = 8  # random tokens per prefix for the prior


class DistillObjective:
    """Loss of one micro-batch: teacher-forced MSE + candidate MSE + prior (see the module docstring)."""

    def __init__(
        self, teacher: RewardModel, config: DistillConfig, attributes: list[str], base_lm: torch.nn.Module | None = None
    ) -> None:
        missing = [a for a in attributes if a not in teacher.config.attributes]
        if missing:
            raise ModelError(
                f"teacher has outputs {teacher.config.attributes}; student attribute(s) {missing} are not among them"
            )
        if config.num_candidates < 1 or config.prior_tokens < 0 or config.prior_weight < 0:
            raise ModelError(f"distillation settings out of range: {config}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.base_lm = base_lm.eval().requires_grad_(False) if base_lm is not None else None
        self.cfg = config
        self.index = torch.tensor([teacher.config.attributes.index(a) for a in attributes])

    @torch.no_grad()
    def candidates(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab: int, gen: torch.Generator
    ) -> torch.Tensor:
        """[B, L, c] candidate tokens after each prefix x_{<=t}."""
        b, length = input_ids.shape
        k = self.cfg.num_candidates
        if self.base_lm is not None:
            from bench.rewards.base import position_ids_from_mask

            logits = self.base_lm(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask)
            ).logits
            return logits[..., :vocab].topk(k, dim=-1).indices
        rand = torch.randint(0, vocab, (b, length, k), generator=gen).to(input_ids.device)
        observed = torch.cat([input_ids[:, 1:], rand[:, -1:, 0]], dim=1)  # last position: no next token
        return torch.cat([observed.unsqueeze(-1), rand], dim=-1)

    @torch.no_grad()
    def teacher_candidates(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cands: torch.Tensor
    ) -> torch.Tensor:
        """Teacher rewards [B, L, c, m] via its cached `score_candidates`, one call per prefix length.

        `input_ids` start with the collator's BOS; `score_candidates` takes the text without it and reads its own
        BOS (the same token: teacher and student share a tokenizer), so the teacher sees BOS + x_1..x_t + v.
        """
        state = self.teacher.new_state()
        out = [
            self.teacher.score_candidates(input_ids[:, 1 : t + 1], attention_mask[:, 1 : t + 1], cands[:, t], state)
            for t in range(input_ids.shape[1])
        ]
        return torch.stack(out, dim=1)[..., self.index.to(input_ids.device)]

    def __call__(
        self, model: ARMRewardModel, batch: dict[str, torch.Tensor], gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        idx = self.index.to(ids.device)
        cands = self.candidates(ids, mask, model.vocab_size, gen)
        with torch.no_grad():
            t_fwd = self.teacher(ids, mask)[..., idx][:, 1:]  # [B, L-1, m]
            t_cand = self.teacher_candidates(ids, mask, cands)  # [B, L, c, m]
        h = model.hidden_states(ids, mask)  # one student forward serves every term
        s_fwd = model.candidate_rewards(h[:, :-1], ids[:, 1:, None]).squeeze(-2)
        fwd_mask = mask[:, 1:] * mask[:, :-1]
        loss_fwd = distill_mse(s_fwd, t_fwd, fwd_mask)
        s_cand = model.candidate_rewards(h, cands)
        loss_cand = distill_mse(s_cand, t_cand, mask)
        loss = loss_fwd + self.cfg.candidate_weight * loss_cand
        parts = {"distill_forward": float(loss_fwd.detach()), "distill_candidates": float(loss_cand.detach())}
        if self.cfg.prior_weight > 0 and self.cfg.prior_tokens > 0:
            b, length = ids.shape
            rand = torch.randint(0, model.vocab_size, (b, length, self.cfg.prior_tokens), generator=gen).to(ids.device)
            token_part = model.token_scores(h, rand)
            prior = distill_mse(token_part, torch.zeros_like(token_part), mask)
            loss = loss + self.cfg.prior_weight * prior
            parts["baseline_prior"] = float(prior.detach())
        return loss, parts


def load_teacher(folder: str, device: torch.device | str, expected: str = "rad") -> RewardModel:
    """The trained teacher (the student's registry entry names its parametrization; safetensors only)."""
    from bench.rewards.registry import load_reward_model

    return load_reward_model(folder, device=device, expected_parametrization=expected)


def check_student_teacher(
    student: RewardModel, teacher: RewardModel, student_spec: str, teacher_spec: str, base_spec: str | None = None
) -> None:
    """Student, teacher (and base LM) must share one tokenizer: token ids are compared directly."""
    from bench.models.loading import check_same_vocab, load_tokenizer

    if student.vocab_size != teacher.vocab_size:
        raise ModelError(
            f"student backbone '{student_spec}' has {student.vocab_size} tokens, teacher "
            f"'{teacher_spec}' {teacher.vocab_size}: distillation needs the same vocabulary"
        )
    check_same_vocab(load_tokenizer(teacher_spec), load_tokenizer(student_spec), "teacher", "student")
    if base_spec:
        check_same_vocab(load_tokenizer(base_spec), load_tokenizer(student_spec), "base LM", "student")
