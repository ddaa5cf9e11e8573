"""Scorers on real data and real (tiny) models: profanity-check vs. Jigsaw labels, the offline SST-2
TF-IDF model (fit, JSON round trip, dev accuracy), a tiny local Detoxify checkpoint, Perspective through
a fake HTTP session (no network), VADER, and the registry."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from bench.errors import ConfigError, ModelError
from bench.metrics.registry import build_scorer


# ---------------------------------------------------------------- profanity-check
def test_profanity_check_auc_on_real_jigsaw_rows(data_root):
    from sklearn.metrics import roc_auc_score

    from bench.data.reference_scores import read_jigsaw_binary

    texts, labels = read_jigsaw_binary(data_root / "jigsaw" / "robtest_jigsaw_test.csv.gz", max_rows=4000)
    assert len(texts) == 4000 and 1900 < sum(labels) < 2100  # evenly spaced rows of a label-sorted file
    scorer = build_scorer("profanity-check")
    scores = scorer.score(texts)
    assert scorer.calls == 1 and all(0.0 <= s <= 1.0 for s in scores)
    assert roc_auc_score(labels, scores) > 0.9


def test_agreement_command_on_the_mirror(data_root, tmp_path):
    from bench.cli import main

    out = tmp_path / "scorer_agreement.csv"
    assert (
        main(["agreement", "--scorer", "profanity-check", "--out", str(out), "--max-rows", "400", "--n-boot", "50"])
        == 0
    )
    import csv

    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:4] == ["judge", "judge_version", "attribute", "reference_set"]
    assert len(rows) == 7 + 1 and out.with_suffix(".md").exists()  # 7 toxicity references + VADER on SST-2
    jig = next(r for r in rows if r["reference_set"] == "jigsaw-2018-test")
    assert jig["n"] == "400" and float(jig["auc"]) > 0.85
    assert float(jig["auc_lo"]) <= float(jig["auc"]) <= float(jig["auc_hi"])
    cont = next(r for r in rows if r["reference_set"] == "rtp-continuations")
    assert cont["headline"] == "True" and 0.3 < float(cont["spearman"]) <= 1.0  # clearly positive


# ---------------------------------------------------------------- TF-IDF sentiment
def test_tfidf_json_matches_sklearn_pipeline(data_root, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from bench.data.sst2 import load_sst2
    from bench.metrics.tfidf import TfidfConfig, TfidfModel, fit_tfidf_logreg

    rows = load_sst2(str(data_root / "sst2" / "train.tsv.gz"), "train")[:1500]
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    cfg = TfidfConfig(min_df=1, C=0.5)  # strong regularization: lbfgs converges fast
    obj = fit_tfidf_logreg(texts, labels, cfg)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(obj))
    mine = TfidfModel(json.loads(path.read_text())).predict_proba(texts[:200] + ["", "unseen zzzz"])
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, token_pattern=cfg.token_pattern)
    clf = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter).fit(vec.fit_transform(texts), labels)
    ref = clf.predict_proba(vec.transform(texts[:200] + ["", "unseen zzzz"]))[:, 1]
    np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-12)
    assert mine[-2] == pytest.approx(1 / (1 + math.exp(-obj["intercept"])))  # empty text: intercept only


def test_fit_sentiment_dev_accuracy(data_root, tmp_path):
    from bench.cli import main
    from bench.data.sst2 import load_sst2

    out = tmp_path / "sst2_tfidf.json"
    assert main(["fit-sentiment", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".metrics.json").read_text())
    assert report["n_train"] == 67349 and report["n_dev"] == 872
    assert report["dev_accuracy"] > 0.78
    scorer = build_scorer(f"tfidf-sst2:{out}")
    dev = load_sst2(str(data_root / "sst2" / "dev.tsv.gz"), "dev")
    pred = np.array(scorer.score([r["text"] for r in dev])) >= 0.5
    assert np.mean(pred == np.array([r["label"] == 1 for r in dev])) == pytest.approx(report["dev_accuracy"])
    assert scorer.attribute == "positive" and scorer.version.startswith("model-")
    # the version is the model, not the file: the same model trained from another clone keeps its cache keys
    obj = json.loads(out.read_text())
    moved = tmp_path / "elsewhere" / "clf.json"
    moved.parent.mkdir()
    moved.write_text(json.dumps({**obj, "train": {**obj["train"], "source": "/another/clone/data/sst2"}}, indent=1))
    assert build_scorer(f"tfidf-sst2:{moved}").version == scorer.version
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({**obj, "intercept": obj["intercept"] + 1e-9}))
    assert build_scorer(f"tfidf-sst2:{changed}").version != scorer.version
    with pytest.raises(ModelError, match="format"):
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": "pickle"}')
        build_scorer(f"tfidf-sst2:{bad}")


# ---------------------------------------------------------------- Detoxify (tiny local checkpoint)
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def _tiny_detoxify(tmp_path, extra=None):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "an", "idiot", "nice", "day", "what", "a"]
    folder = tmp_path / "detox"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"))
    cfg = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(CLASSES),
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg).eval()
    cfg.save_pretrained(folder)
    tok.save_pretrained(folder)
    ckpt = {
        "config": {
            "arch": {
                "args": {
                    "model_type": "bert-base-uncased",
                    "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer",
                    "num_classes": len(CLASSES),
                }
            },
            "dataset": {"args": {"classes": CLASSES}},
        },
        "state_dict": model.state_dict(),
    }
    if extra:
        ckpt.update(extra)
    path = folder / "tiny.ckpt"
    torch.save(ckpt, path)
    return path, model, tok


def test_detoxify_local_checkpoint_matches_direct_forward(tmp_path):
    path, model, tok = _tiny_detoxify(tmp_path)
    scorer = build_scorer(f"detoxify:{path}")
    texts = ["you are an idiot", "what a nice day", "zzz unknown words"]
    got = scorer.score(texts)
    with torch.no_grad():
        enc = tok(texts, return_tensors="pt", padding=True)
        want = torch.sigmoid(model(**enc).logits[:, 0]).tolist()  # 'toxic' is class 0
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert scorer.name == "detoxify:tiny.ckpt" and "/ckpt-" in scorer.version
    assert len(set(round(g, 6) for g in got)) == 3


class _NotAllowed:
    pass


def test_detoxify_refuses_checkpoints_that_need_unpickling(tmp_path):
    path, _, _ = _tiny_detoxify(tmp_path, extra={"callback": _NotAllowed()})
    with pytest.raises(ModelError, match="weights_only"):
        build_scorer(f"detoxify:{path}")


# ---------------------------------------------------------------- Perspective (fake transport)
class FakeResponse:
    def __init__(self, status, payload=None):
        self.status_code, self._payload = status, payload

    def json(self):
        return self._payload


def ok(value):
    return FakeResponse(200, {"attributeScores": {"TOXICITY": {"summaryScore": {"value": value}}}})


class FakeSession:
    def __init__(self, script):
        self.script, self.requests = list(script), []

    def post(self, url, params=None, json=None, timeout=None):
        self.requests.append((url, params, json))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_perspective_retries_backoff_and_nan(monkeypatch, caplog):
    from bench.metrics.perspective import PerspectiveScorer

    secret = "SECRET-KEY-123"
    monkeypatch.setenv("PERSPECTIVE_API_KEY", secret)
    session = FakeSession(
        [
            FakeResponse(429),
            ok(0.8),  # text 1: retried once
            FakeResponse(400),  # text 2: not retryable -> NaN
            ConnectionError(f"https://x?key={secret}"),
            FakeResponse(503),
            FakeResponse(503),
        ]
    )  # text 3
    sleeps = []
    clock = iter(range(1000))
    scorer = PerspectiveScorer(
        qps=1000, max_retries=2, backoff_s=1.5, session=session, sleep=sleeps.append, clock=lambda: float(next(clock))
    )
    with caplog.at_level(logging.DEBUG):
        got = scorer.score(["a", "b", "c"])
    assert got[0] == 0.8 and math.isnan(got[1]) and math.isnan(got[2])
    assert scorer.n_failed == 2 and scorer.n_requests == 6
    assert sleeps == [1.5, 1.5, 3.0]  # exponential backoff: 1.5 * 2**attempt (rate limit never binds here)
    assert all(p == {"key": secret} for _, p, _ in session.requests)
    assert session.requests[0][2]["comment"] == {"text": "a"}
    assert secret not in caplog.text and secret not in repr(scorer)


def test_perspective_rate_limit_and_missing_key(monkeypatch):
    from bench.metrics.perspective import PerspectiveScorer

    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="PERSPECTIVE_API_KEY"):
        build_scorer("perspective")
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "k")
    now = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    scorer = PerspectiveScorer(
        qps=2.0, session=FakeSession([ok(0.1), ok(0.2), ok(0.3)]), sleep=sleep, clock=lambda: now[0]
    )
    assert scorer.score(["a", "b", "c"]) == [0.1, 0.2, 0.3]
    assert sleeps == [0.5, 0.5]  # at most 2 requests per second


# ---------------------------------------------------------------- VADER, registry
def test_vader_maps_compound_to_unit_interval():
    s = build_scorer("vader")
    pos, neg, neutral = s.score(["I love this wonderful movie!", "I hate this awful, terrible movie.", ""])
    assert pos > 0.75 and neg < 0.25 and neutral == 0.5
    assert s.attribute == "positive"


def test_registry_rejects_unknown_specs():
    for bad in ["nope", "tfidf-sst2", "hf:", "vader:x"]:
        with pytest.raises(ConfigError, match="unknown"):
            build_scorer(bad)
    with pytest.raises(ModelError, match="not found"):
        build_scorer("detoxify:/does/not/exist.ckpt")


def test_hf_sentiment_scorer_from_a_local_folder(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    _, _, tok = _tiny_detoxify(tmp_path)
    cfg = DistilBertConfig(
        vocab_size=tok.vocab_size,
        dim=16,
        n_layers=1,
        n_heads=2,
        hidden_dim=32,
        max_position_embeddings=64,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    torch.manual_seed(1)
    model = DistilBertForSequenceClassification(cfg).eval()
    folder = tmp_path / "sst2-tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    scorer = build_scorer(f"hf:{folder}")
    texts = ["what a nice day", "you are an idiot"]
    with torch.no_grad():
        want = torch.softmax(model(**tok(texts, return_tensors="pt", padding=True)).logits, -1)[:, 1].tolist()
    np.testing.assert_allclose(scorer.score(texts), want, rtol=1e-5)
    assert scorer.attribute == "positive" and scorer.name == "hf:sst2-tiny"


def test_detoxify_download_is_checked_against_its_pinned_sha256(tmp_path, monkeypatch):
    """The online path: a downloaded official checkpoint whose sha256 differs is refused and not cached."""
    from bench.metrics import toxicity

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def fake_download(url, dst, progress=True):
        with open(dst, "wb") as fh:
            fh.write(b"not the release")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(ModelError, match=r"toxic_original-c1212f89.ckpt: sha256 .* does not match the pinned c1212f89"):
        build_scorer("detoxify:original")
    assert not list((tmp_path / "hub" / "checkpoints").iterdir())  # nothing half-written or wrong left behind
    assert toxicity.DETOXIFY_SHA256["toxic_original-c1212f89.ckpt"].startswith("c1212f89")
