from bench.models.loading import load_causal_lm, load_tokenizer, resolve_model, check_same_vocab

__all__ = ["load_causal_lm", "load_tokenizer", "resolve_model", "check_same_vocab"]
