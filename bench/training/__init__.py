"""Reward-model training: losses, the JSONL collator, the resumable trainer, and RAD -> ARM distillation."""
