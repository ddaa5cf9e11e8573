"""Fluency: perplexity of each continuation given its prompt under a scoring LM.

PPL = exp(mean over continuation tokens of -log p(token | prompt, earlier continuation tokens)).
Prompt and continuation are tokenized separately and concatenated (the boundary the generator saw).
The LM body runs once per batch to hidden states; the output layer is applied only at the positions that
predict continuation tokens, so a 262k-word vocabulary costs [n_continuation_tokens, V], not [B, L, V].
Continuations with no tokens get NaN; `aggregate` drops PPL >= 1e5 (and counts them).

A text's PPL is a function of that text alone, not of its batch-mates (on one device and thread count):
every sequence is right-padded to its own width (its length rounded up to `pad_multiple`) and a batch holds
sequences of one width (a matrix product's row does not depend on the other rows, but the attention's reduction
length does). With "pad to the longest in the batch" the reduction length changed with the mates, so a rerun
after a kill (other cache misses, other batches) moved PPLs by ~1e-7 and the tables were no longer identical.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bench.errors import ModelError
from bench.utils.progress import progress

log = logging.getLogger(__name__)

DEFAULT_FLUENCY_MODEL = "embedded:gemma3-270m"
MIN_ROWS = 16  # rows per output-layer call, at least (see _batch)


@dataclass
class FluencyConfig:
    model: str = DEFAULT_FLUENCY_MODEL
    batch_size: int = 16
    device: str = "cpu"
    dtype: str = "float32"
    max_length: int | None = None  # default: the model's context size
    logits_chunk: int = 512  # positions per lm_head call (bounds the [n, V] float32 block)
    pad_multiple: int = 16  # sequences are padded to their length rounded up to this (batch-independent)


class PerplexityScorer:
    """Per-continuation conditional perplexity under one LM."""

    def __init__(self, cfg: FluencyConfig, model=None, tokenizer=None) -> None:
        from bench.models.loading import load_causal_lm, load_tokenizer

        self.cfg = cfg
        self.model = model if model is not None else load_causal_lm(cfg.model, dtype=cfg.dtype, device=cfg.device)
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(cfg.model)
        self.device = next(self.model.parameters()).device
        conf = self.model.config
        self.max_length = (
            cfg.max_length or getattr(conf, "max_position_embeddings", None) or getattr(conf, "n_positions", 1024)
        )
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
            ids = ids[-self.max_length :]
        n_cont = min(len(c), len(ids) - 1)
        return ids, n_cont

    def _width(self, n: int) -> int:
        m = max(1, self.cfg.pad_multiple)
        return min(self.max_length, -(-n // m) * m)  # _encode keeps n <= max_length

    @torch.no_grad()
    def _batch(self, items: list[tuple[list[int], int]]) -> list[float]:
        """PPLs of sequences that share one width (see the module docstring)."""
        out = [float("nan")] * len(items)
        live = [i for i, (_, n) in enumerate(items) if n > 0]
        if not live:
            return out
        widths = {self._width(len(items[i][0])) for i in live}
        if len(widths) != 1:
            raise ValueError(f"one batch, one width: got {sorted(widths)}")
        width = widths.pop()
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(live), width), pad, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        for r, i in enumerate(live):  # right padding: positions are 0..len-1 for every row
            seq, _ = items[i]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        hidden = self.body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        rows, cols, targets = [], [], []
        for r, i in enumerate(live):
            seq, n = items[i]
            for j in range(len(seq) - n, len(seq)):  # token j is predicted by the hidden state at j - 1
                rows.append(r)
                cols.append(j - 1)
                targets.append(seq[j])
        picked = hidden[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)]
        tgt = torch.tensor(targets, device=self.device)
        nll = torch.empty(len(targets), dtype=torch.float64)
        for s in range(0, len(targets), self.cfg.logits_chunk):  # a row's logits do not depend on the chunk's others
            x = picked[s : s + self.cfg.logits_chunk]
            n_rows = len(x)
            if n_rows < MIN_ROWS:  # ... except in the few-row kernels (1-3 rows on CPU), which round differently
                x = torch.cat([x, x.new_zeros(MIN_ROWS - n_rows, x.shape[1])])
            logits = self.lm_head(x)[:n_rows].float()
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            lp = torch.log_softmax(logits, dim=-1)
            nll[s : s + len(lp)] = -lp.gather(1, tgt[s : s + len(lp), None])[:, 0].double().cpu()
        start = 0
        for i in live:  # a text's targets are contiguous: summed in token order (an index_add could reorder)
            n = items[i][1]
            mean = float(nll[start : start + n].sum()) / n
            start += n
            out[i] = math.exp(mean) if mean < 700 else float("inf")
        return out

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        items = [self._encode(p, c) for p, c in zip(prompts, continuations)]
        groups: dict[int, list[int]] = {}  # one width per batch
        for i in sorted(range(len(items)), key=lambda i: len(items[i][0])):
            groups.setdefault(self._width(len(items[i][0])), []).append(i)
        bs = max(1, self.cfg.batch_size)
        batches = [idx[s : s + bs] for idx in groups.values() for s in range(0, len(idx), bs)]
        out = [float("nan")] * len(items)
        # a bar on a terminal only: the score stage's loop (bench.metrics.cache.score_texts) logs the progress
        for idx in progress(batches, "perplexity", "batches", logger=log, lines=False):
            for i, v in zip(idx, self._batch([items[i] for i in idx])):
                out[i] = v
        return out
