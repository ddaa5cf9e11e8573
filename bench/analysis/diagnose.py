"""Why steering backfires: the spread of a reward model's candidate rewards within a decoding step.

Decoding adds `beta * (1 - r)` to each of the base LM's top-k logits (`bench.decoding.processors`), so all
that steers is the DIFFERENCE between the k candidates' rewards after the clamp to [0, 1]. This replays
generated continuations (teacher-forced: the continuation is re-tokenized, so a step may differ from the one
sampled at a token boundary) and, at every step, scores the base LM's top-k candidates and the token that
was actually generated with the reward model, exactly as decoding does (`score_candidates` with the
model's prefix cache). Per step: the raw spread (max - min over the k candidates), the share of candidates
outside [0, 1], the spread left after the clamp and whether the clamp TIES candidates (two or more at 1).
With a judge (`--judge`), each candidate's text (the continuation so far + the candidate) is scored too, and
the within-step rank correlation of rewards and judge scores is the signal steering actually uses.
Per continuation: the reward of the text as generated (the generated token's reward at the last step:
the model's prediction for prompt + continuation) against the judge's score of the continuation
(`bench score` JSONL). Rows are grouped by prompt set and prefix class (prompt toxicity >= 0.5: toxic).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.errors import DataError

log = logging.getLogger(__name__)

TOXIC_PREFIX = 0.5  # a prompt whose Perspective toxicity is at least this counts as a toxic prefix


@dataclass
class TextTrace:
    """One replayed continuation: per-step raw candidate rewards [T, k] and the generated token's [T]."""

    prompt_set: str
    prompt_id: str
    sample: int
    prefix_class: str
    candidates: np.ndarray
    chosen: np.ndarray
    judge: float = math.nan
    in_topk: list[bool] = field(default_factory=list)
    candidate_judge: np.ndarray | None = None  # [T, k]: the judge's score of continuation-so-far + candidate


def step_stats(r: np.ndarray) -> dict[str, np.ndarray]:
    """Per-step statistics of raw candidate rewards r [T, k] (one row per step)."""
    import torch

    from bench.decoding.processors import squash_rewards

    clamped = squash_rewards(torch.as_tensor(r), "clamp").numpy()
    return {
        "spread": r.max(axis=1) - r.min(axis=1),
        "spread_clamped": clamped.max(axis=1) - clamped.min(axis=1),
        "above_1": (r > 1.0).mean(axis=1),
        "below_0": (r < 0.0).mean(axis=1),
        "tied_at_1": ((r >= 1.0).sum(axis=1) >= 2).astype(float),
        "mean": r.mean(axis=1),
    }


def _corr(x: Sequence[float], y: Sequence[float], min_n: int = 3) -> tuple[float, float]:
    """(Pearson, Spearman) over the finite pairs; NaN with fewer than `min_n` pairs or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < min_n or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan

    def rank(v):
        order = np.argsort(v, kind="stable")
        ranks = np.empty(len(v))
        ranks[order] = np.arange(len(v))
        for u in np.unique(v):  # ties share their mean rank
            ranks[v == u] = ranks[v == u].mean()
        return ranks

    with np.errstate(invalid="ignore", divide="ignore"):  # a side constant up to round-off: NaN, not a warning
        return float(np.corrcoef(x, y)[0, 1]), float(np.corrcoef(rank(x), rank(y))[0, 1])


def summarize(traces: Sequence[TextTrace], model: str) -> list[dict]:
    """One row per (prompt set, prefix class) and one per prompt set ("all")."""
    rows = []
    groups: dict[tuple[str, str], list[TextTrace]] = {}
    for t in traces:
        groups.setdefault((t.prompt_set, t.prefix_class), []).append(t)
        groups.setdefault((t.prompt_set, "all"), []).append(t)
    for (pset, cls), part in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
        steps = [step_stats(t.candidates) for t in part if len(t.candidates)]
        if not steps:
            continue
        cat = {k: np.concatenate([s[k] for s in steps]) for k in steps[0]}
        final = [float(t.chosen[-1]) if len(t.chosen) else math.nan for t in part]
        spread = [float(np.mean(s["spread"])) for s in steps]
        judge = [t.judge for t in part if len(t.candidates)]
        final_j = [f for f, t in zip(final, part) if len(t.candidates)]
        p_final, s_final = _corr(final_j, judge)
        p_spread, s_spread = _corr(spread, judge)
        within = [
            _corr(t.candidates[i], t.candidate_judge[i], min_n=2)[1]
            for t in part
            if t.candidate_judge is not None
            for i in range(len(t.candidates))
        ]
        defined = [w for w in within if math.isfinite(w)]
        rows.append(
            {
                "model": model,
                "prompt_set": pset,
                "prefix": cls,
                "n_texts": len(steps),
                "n_steps": len(cat["spread"]),
                "k": int(part[0].candidates.shape[1]),
                "reward_mean": float(cat["mean"].mean()),
                "spread_mean": float(cat["spread"].mean()),
                "spread_median": float(np.median(cat["spread"])),
                "spread_clamped_mean": float(cat["spread_clamped"].mean()),
                "share_above_1": float(cat["above_1"].mean()),
                "share_below_0": float(cat["below_0"].mean()),
                "share_outside_01": float(cat["above_1"].mean() + cat["below_0"].mean()),
                "steps_tied_at_1": float(cat["tied_at_1"].mean()),
                "final_reward_mean": float(np.nanmean(final_j)),
                "judge_mean": float(np.nanmean(judge)) if np.isfinite(judge).any() else math.nan,
                "corr_final_judge": p_final,
                "spearman_final_judge": s_final,
                "corr_spread_judge": p_spread,
                "spearman_spread_judge": s_spread,
                "steps_judge_varies": float(len(defined) / len(within)) if within else math.nan,
                "step_spearman_judge": float(np.mean(defined)) if defined else math.nan,
                "generated_in_topk": float(np.mean([x for t in part for x in t.in_topk]))
                if part[0].in_topk
                else math.nan,
            }
        )
    return rows


def replay(
    reward_model,
    base_model,
    tokenizer,
    records: Sequence[dict],
    judge: dict[tuple[str, int], float],
    *,
    prompt_set: str,
    top_k: int,
    attribute: str | None = None,
    max_texts: int | None = None,
    judge_scorer=None,
) -> list[TextTrace]:
    """Teacher-force every continuation of `records` (generations JSONL rows) and score each step's top-k
    (and, with `judge_scorer`, each candidate's text: the continuation so far + the candidate)."""
    import torch

    cfg = reward_model.config
    steer = cfg.attributes.index(attribute or cfg.steer_attribute)
    traces: list[TextTrace] = []
    device = base_model.device
    todo = [(rec, j, c) for rec in records for j, c in enumerate(rec["continuations"])]
    if max_texts is not None:
        todo = todo[:max_texts]
    from bench.utils.progress import progress

    for rec, j, cont in progress(todo, f"diagnose {cfg.parametrization} on {prompt_set}", "text", logger=log):
        tox = rec.get("prompt_toxicity")
        cls = "toxic" if isinstance(tox, (int, float)) and tox >= TOXIC_PREFIX else "non-toxic"
        p_ids = tokenizer([rec["prompt"]], return_tensors="pt").input_ids.to(device)
        c_ids = tokenizer([cont], add_special_tokens=False, return_tensors="pt").input_ids.to(device)
        steps = c_ids.shape[1]
        if steps == 0:
            continue
        full = torch.cat([p_ids, c_ids], dim=1)
        with torch.no_grad():
            logits = base_model(input_ids=full, attention_mask=torch.ones_like(full)).logits[0]
        p = p_ids.shape[1]
        idx = logits[p - 1 : p - 1 + steps].topk(top_k, dim=-1).indices  # [T, k]
        state = reward_model.new_state()
        cand_r, chosen_r, in_topk = [], [], []
        rm_dev = reward_model.device
        with torch.no_grad():
            for t in range(steps):
                prefix = full[:, : p + t].to(rm_dev)
                cands = torch.cat([idx[t], c_ids[0, t : t + 1]]).unsqueeze(0).to(rm_dev)
                r = reward_model.score_candidates(prefix, torch.ones_like(prefix), cands, state)[0, :, steer].float()
                if not torch.isfinite(r).all():
                    raise DataError(f"{prompt_set} {rec['id']} sample {j}: non-finite reward at step {t}")
                cand_r.append(r[:-1].cpu().numpy())
                chosen_r.append(float(r[-1]))
                in_topk.append(bool((idx[t] == c_ids[0, t]).any()))
        cand_judge = None
        if judge_scorer is not None:
            ids = c_ids[0].tolist()
            texts = [
                tokenizer.decode(ids[:t] + [int(v)], skip_special_tokens=True)
                for t in range(steps)
                for v in idx[t].tolist()
            ]
            cand_judge = np.asarray(judge_scorer.score(texts), float).reshape(steps, -1)
        traces.append(
            TextTrace(
                prompt_set,
                str(rec["id"]),
                j,
                cls,
                np.stack(cand_r),
                np.array(chosen_r),
                judge.get((str(rec["id"]), j), math.nan),
                in_topk,
                cand_judge,
            )
        )
    return traces


def read_judge(path, attribute: str) -> dict[tuple[str, int], float]:
    """(prompt id, sample) -> the judge's score of the continuation from a `bench score` JSONL."""
    from bench.utils.io import iter_jsonl

    out = {}
    for lineno, rec in iter_jsonl(path):
        if "id" not in rec or "sample" not in rec:
            raise DataError(f"{path}: line {lineno}: missing 'id' or 'sample'; expected a `bench score` row")
        v = rec.get(attribute)
        out[(str(rec["id"]), int(rec["sample"]))] = math.nan if v is None else float(v)
    if not out:
        raise DataError(f"{path}: no scored continuations")
    return out


COLUMNS = [
    ("model", "Reward model"),
    ("prompt_set", "Prompts"),
    ("prefix", "Prefix"),
    ("n_texts", "Texts"),
    ("reward_mean", "Mean r"),
    ("spread_mean", "Spread (raw)"),
    ("spread_clamped_mean", "Spread (clamped)"),
    ("share_above_1", "> 1"),
    ("share_below_0", "< 0"),
    ("steps_tied_at_1", "Steps with ties at 1"),
    ("final_reward_mean", "r(text)"),
    ("judge_mean", "Judge"),
    ("corr_final_judge", "corr(r(text), judge)"),
    ("spearman_final_judge", "Spearman"),
    ("corr_spread_judge", "corr(spread, judge)"),
    ("steps_judge_varies", "Steps judge varies"),
    ("step_spearman_judge", "Within-step Spearman"),
]
NOTE = (
    "Per decoding step, the raw rewards of the base LM's top-k candidates (replayed, teacher-forced, on the "
    "generations given): spread = max - min over the k (raw, and after the clamp to [0, 1] that decoding "
    "applies), the share of candidates above 1 / below 0, and the share of steps where the clamp ties two or "
    "more candidates at 1 (steering cannot tell them apart). r(text): the reward of the generated text (prompt "
    "+ continuation, the last step's generated token); Judge: the scorer's value of the continuation; corr: "
    "Pearson (and Spearman) over texts. Within-step Spearman: the rank correlation of the k candidates' rewards with the "
    "judge's scores of continuation-so-far + candidate, averaged over the steps where the judge tells candidates "
    "apart (their share: 'Steps judge varies'); this is the signal steering uses. Prefix: prompt toxicity >= 0.5 "
    "is toxic."
)


def to_markdown(rows: Sequence[dict]) -> str:
    from bench.reporting.tables import method_label

    def cell(key, v):
        if key == "model":
            return method_label(str(v))
        if isinstance(v, float):
            return "–" if not math.isfinite(v) else f"{v:.3f}"
        return str(v)

    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|" + "|".join(":---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(cell(k, r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + f"\n\n{NOTE}\n"
