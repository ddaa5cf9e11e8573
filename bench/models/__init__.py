from bench.models.loading import check_same_vocab, load_causal_lm, load_tokenizer, resolve_model

__all__ = ["load_causal_lm", "load_tokenizer", "resolve_model", "check_same_vocab"]
