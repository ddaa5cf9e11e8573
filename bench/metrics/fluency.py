"""Fluency: perplexity of each continuation given its prompt under a scoring LM.

PPL = exp(mean over continuation tokens of -log p(token | prompt, earlier continuation tokens)).
Prompt and continuation are tokenized separately and concatenated (the boundary the generator saw).
The LM body runs once per batch to hidden states; the output layer is applied only at the positions that
predict continuation tokens, so a 262k-word vocabulary costs [n_continuation_tokens, V], not [B, L, V].
Continuations with no tokens get NaN; `aggregate` drops PPL >= 1e5 (and counts them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm import tqdm

from bench.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_FLUENCY_MODEL = "embedded:gemma3-270m"


@dataclass
class FluencyConfig:
    model: str = DEFAULT_FLUENCY_MODEL
    batch_size: int = 16
    device: str = "cpu"
    dtype: str = "float32"
    max_length: int | None = None  # default: the model's context size
    logits_chunk: int = 512  # positions per lm_head call (bounds the [n, V] float32 block)


class PerplexityScorer:
    """Per-continuation conditional perplexity under one LM."""

    def __init__(self, cfg: FluencyConfig, model=None, tokenizer=None) -> None:
        from bench.models.loading import load_causal_lm, load_tokenizer

        self.cfg = cfg
        self.model = model if model is not None else load_causal_lm(cfg.model, dtype=cfg.dtype, device=cfg.device)
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(cfg.model)
        self.device = next(self.model.parameters()).device
        conf = self.model.config
        self.max_length = cfg.max_length or getattr(conf, "max_position_embeddings", None) or getattr(conf, "n_positions", 1024)
        self.softcap = getattr(conf, "final_logit_softcapping", None)
        self.body = self.model.base_model
        self.lm_head = self.model.get_output_embeddings()
        if self.body is self.model or self.lm_head is None:
            raise ModelError(f"fluency model '{cfg.model}': cannot split into body and output layer")
        self.name = f"ppl:{cfg.model}"

    def _encode(self, prompt: str, continuation: str) -> tuple[list[int], int]:
        p = self.tok(prompt)["input_ids"] if prompt else []
        c = self.tok(continuation, add_special_tokens=False)["input_ids"]
        if not p:  # nothing to condition the first token on: use BOS (or EOS, GPT-2's document separator)
            start = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
            p = [start]
        ids = p + c
        if len(ids) > self.max_length:  # keep the continuation, cut the prompt from the left
            keep = max(1, self.max_length - len(c))
            ids = p[-keep:] + c
            ids = ids[-self.max_length:]
        n_cont = min(len(c), len(ids) - 1)
        return ids, n_cont

    @torch.no_grad()
    def _batch(self, items: list[tuple[list[int], int]]) -> list[float]:
        out = [float("nan")] * len(items)
        live = [i for i, (_, n) in enumerate(items) if n > 0]
        if not live:
            return out
        width = max(len(items[i][0]) for i in live)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(live), width), pad, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        rows, cols, targets, owner = [], [], [], []
        for r, i in enumerate(live):  # right padding: positions are 0..len-1 for every row
            seq, n = items[i]
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            for j in range(len(seq) - n, len(seq)):  # token j is predicted by the hidden state at j - 1
                rows.append(r)
                cols.append(j - 1)
                targets.append(seq[j])
                owner.append(r)
        hidden = self.body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        picked = hidden[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)]
        tgt = torch.tensor(targets, device=self.device)
        nll = torch.empty(len(targets), dtype=torch.float64)
        for s in range(0, len(targets), self.cfg.logits_chunk):
            logits = self.lm_head(picked[s:s + self.cfg.logits_chunk]).float()
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            lp = torch.log_softmax(logits, dim=-1)
            nll[s:s + len(lp)] = -lp.gather(1, tgt[s:s + len(lp), None])[:, 0].double().cpu()
        sums = torch.zeros(len(live), dtype=torch.float64).index_add_(0, torch.tensor(owner), nll)
        counts = torch.zeros(len(live), dtype=torch.float64).index_add_(0, torch.tensor(owner),
                                                                        torch.ones(len(owner), dtype=torch.float64))
        for r, i in enumerate(live):
            mean = float(sums[r] / counts[r])
            out[i] = math.exp(mean) if mean < 700 else float("inf")
        return out

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        items = [self._encode(p, c) for p, c in zip(prompts, continuations)]
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]))  # similar lengths share a batch
        out = [float("nan")] * len(items)
        bs = max(1, self.cfg.batch_size)
        for s in tqdm(range(0, len(order), bs), desc="perplexity", disable=None, leave=False):
            idx = order[s:s + bs]
            for i, v in zip(idx, self._batch([items[i] for i in idx])):
                out[i] = v
        return out
