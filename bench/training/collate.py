"""Training JSONL -> padded batches: BOS at position 0, truncation, right padding, labels [B, m].

BOS is prepended so that the first real token has a prefix (ARM scores x_1 from h(BOS)); the losses
give position 0 weight 0. Texts are tokenized once when the file is read.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch

from bench.errors import DataError
from bench.rewards.base import bos_token_id
from bench.utils.io import iter_jsonl

log = logging.getLogger(__name__)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[float]


def read_labeled_jsonl(path: str | os.PathLike, attributes: list[str]) -> list[tuple[str, list[float]]]:
    """(text, labels in `attributes` order) per line; a missing/non-numeric label names file and line."""
    rows = []
    for lineno, rec in iter_jsonl(path):
        text = rec.get("text")
        if not isinstance(text, str):
            raise DataError(f"{path}: line {lineno}: expected a string 'text' field")
        if not text.strip():  # no token to score: a training example with no prefix is no example
            raise DataError(
                f"{path}: line {lineno}: 'text' is {'empty' if not text else 'whitespace only'}; "
                "expected a non-blank text (`bench prepare` drops such rows)"
            )
        labels = rec.get("labels")
        if not isinstance(labels, dict):
            raise DataError(f"{path}: line {lineno}: expected a 'labels' object {{attribute: number}}")
        values = []
        for attr in attributes:
            if attr not in labels:
                raise DataError(
                    f"{path}: line {lineno}: label '{attr}' missing (has {sorted(labels)}); "
                    f"expected every attribute in {attributes}"
                )
            value = labels[attr]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DataError(f"{path}: line {lineno}: label '{attr}' = {value!r}, expected a finite number")
            if not 0.0 <= value <= 1.0:  # rewards live in [0, 1]: the losses (BCE too) need targets there
                raise DataError(f"{path}: line {lineno}: label '{attr}' = {value!r}, expected a number in [0, 1]")
            values.append(float(value))
        rows.append((text, values))
    if not rows:
        raise DataError(f'{path}: no records; expected JSONL lines {{"text": ..., "labels": {{...}}}}')
    return rows


def first_label_keys(path: str | os.PathLike) -> list[str]:
    """The label names of the first record (the default attribute list)."""
    for lineno, rec in iter_jsonl(path):
        labels = rec.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise DataError(f"{path}: line {lineno}: expected a non-empty 'labels' object")
        return list(labels)
    raise DataError(f"{path}: no records")


class LabeledTexts(torch.utils.data.Dataset):
    """Tokenized texts (BOS + up to max_length - 1 tokens) with their label vectors."""

    def __init__(self, rows: list[tuple[str, list[float]]], tokenizer, max_length: int) -> None:
        if max_length < 2:
            raise DataError(f"max_length must be >= 2 (BOS + one token), got {max_length}")
        self.bos = bos_token_id(tokenizer)  # the one definition of the BOS a reward model reads first
        texts = [t for t, _ in rows]
        enc = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        self.examples = [
            Example([self.bos] + list(ids[: max_length - 1]), labels) for ids, (_, labels) in zip(enc, rows)
        ]

    @classmethod
    def from_jsonl(
        cls, path: str | os.PathLike, tokenizer, attributes: list[str], max_length: int, limit: int | None = None
    ) -> LabeledTexts:
        rows = read_labeled_jsonl(path, attributes)
        if limit is not None:
            rows = rows[:limit]
        ds = cls(rows, tokenizer, max_length)
        log.info("%s: %d texts (max_length %d)", path, len(ds), max_length)
        return ds

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


class Collator:
    """Right-pads a list of Examples into input_ids / attention_mask [B, L] and labels [B, m]."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for e in examples)
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
            mask[i, : len(e.input_ids)] = 1
        labels = torch.tensor([e.labels for e in examples], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
