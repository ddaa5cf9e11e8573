"""The offline Jigsaw-2018 BiLSTM judges (bench.metrics.bilstm): our numpy inference reproduces the outputs
the packages' own READMEs print, the sha256 pins refuse a modified file, and the tokenizer pickle is read
without running anything it names."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from bench.errors import ConfigError, ModelError
from bench.metrics import bilstm
from bench.metrics.registry import build_scorer

# tox-block 0.1.2 README (make_predictions(..., rescale=True)); columns in bilstm.CLASSES order
TOXBLOCK_README = {
    "Good morning my friend, I hope you're having a fantastic day!": [
        0.05347811430692673,
        0.0006274021579883993,
        0.004466842859983444,
        0.009578478522598743,
        0.00757843442261219,
        0.002106667961925268,
    ],
    "I will kill you, you fucking idiot!": [
        0.9998679757118225,
        0.7870362997055054,
        0.9885633587837219,
        0.8483908176422119,
        0.9883397221565247,
        0.171059250831604,
    ],
    "I do strongly disagree with the fascist views of this joke that calls itself a political party.": [
        0.026190076023340225,
        7.185135473264381e-05,
        0.0009493605466559529,
        0.00012321282702032477,
        0.0029190618079155684,
        0.0022098885383456945,
    ],
}
# tox_block.config.RESCALE_PROBA: the README's numbers are |p - min| / (max - min) per class
TOXBLOCK_RESCALE = np.array(
    [
        (0.002116, 0.999858),
        (0.000011, 0.648682),
        (0.000347, 0.997533),
        (0.000040, 0.918887),
        (0.000373, 0.986303),
        (0.000074, 0.901117),
    ]
)
# toxic-comment-classifier 0.3.0 README: classify() of one text, and predict_batch() (mean of the 6 classes)
TCC_CLASSIFY = (
    "You are so dumb and stupid!",
    [
        0.9889402985572815,
        0.07256772369146347,
        0.620429277420044,
        0.01934845559298992,
        0.8664075136184692,
        0.04072948172688484,
    ],
)
TCC_BATCH = {
    "I hate you so much!": 0.1395,
    "This is wonderful news.": 0.0013,
    "You're disgusting!": 0.3110,
    "Absolutely love your energy!": 0.0088,
    "You're the worst person ever!": 0.0937,
    "Have a nice day :)": 0.0115,
}


def _rescaled(p: np.ndarray) -> np.ndarray:
    lo, hi = TOXBLOCK_RESCALE[:, 0], TOXBLOCK_RESCALE[:, 1]
    return np.abs((p - lo) / (hi - lo))


def test_toxblock_reproduces_its_readme():
    scorer = build_scorer("jigsaw-bilstm-toxblock")
    texts = list(TOXBLOCK_README)
    got = _rescaled(scorer.predict_classes(texts))
    np.testing.assert_allclose(got, np.array(list(TOXBLOCK_README.values())), rtol=1e-4, atol=2e-6)
    # the scorer's number is the raw `toxic` probability (no rescaling)
    np.testing.assert_allclose(scorer.score(texts), scorer.predict_classes(texts)[:, 0], rtol=1e-6)
    assert scorer.name == "jigsaw-bilstm-toxblock" and scorer.attribute == "toxicity"
    assert scorer.version == "tox-block==0.1.2/587d40726f12+f73db76ce413"
    assert "Perspective" not in scorer.display_name and "Detoxify" not in scorer.display_name


def test_toxblock_needs_keras2_hard_sigmoid(monkeypatch):
    """Keras 3's hard sigmoid (relu6(x + 3) / 6) or a plain sigmoid would not reproduce the README."""
    scorer = build_scorer("jigsaw-bilstm-toxblock")
    texts = list(TOXBLOCK_README)
    want = np.array(list(TOXBLOCK_README.values()))
    for wrong in (lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0), bilstm._sigmoid):
        monkeypatch.setattr(scorer.network, "act", wrong)
        assert np.abs(_rescaled(scorer.predict_classes(texts)) - want).max() > 1e-3


def test_tcc_reproduces_its_readme():
    scorer = build_scorer("jigsaw-bilstm-tcc")
    np.testing.assert_allclose(scorer.predict_classes([TCC_CLASSIFY[0]])[0], TCC_CLASSIFY[1], rtol=1e-4, atol=1e-6)
    overall = scorer.predict_classes(list(TCC_BATCH)).mean(axis=1)
    np.testing.assert_allclose(overall, list(TCC_BATCH.values()), atol=5e-5)  # printed with 4 decimals
    assert scorer.version.startswith("toxic-comment-classifier==0.3.0/03ed4c3f52be+")


def test_batches_give_the_same_scores_as_single_texts():
    scorer = build_scorer("jigsaw-bilstm-tcc", batch_size=2)
    texts = list(TCC_BATCH) + ["", "a " * 150 + "idiot", "x"]
    together = scorer.score(texts)
    alone = [scorer.score([t])[0] for t in texts]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)
    assert all(0.0 <= s <= 1.0 for s in together)


@pytest.mark.parametrize("name", sorted(bilstm.JUDGES))
def test_shortcuts_equal_the_full_100_step_recurrence(name, data_root):
    """The shared padding prefix and the backward pass's early stop give the plain recurrence's outputs."""
    from bench.data.reference_scores import read_rtp_perspective

    texts = read_rtp_perspective(data_root / "rtp" / "decodingtrust_challenging.jsonl.gz", 150)["continuations"][0]
    texts += ["", "word " * 120, "idiot"]
    scorer = build_scorer(name)
    fast = scorer.predict_classes(texts)
    scorer.fast = False
    np.testing.assert_allclose(fast, scorer.predict_classes(texts), atol=1e-6)


def test_tokenizer_matches_keras_rules_by_hand():
    tok = bilstm.KerasTokenizer(
        {"hello": 1, "world": 2, "rare": 7, "foo": 3},
        num_words=5,
        filters='!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n',
        lower=True,
        split=" ",
        oov_token=None,
    )
    # lower-cased, filters become spaces, unknown and >= num_words ids dropped
    assert tok.ids("Hello,WORLD!\tfoo rare unknown") == [1, 2, 3]
    np.testing.assert_array_equal(tok.pad(["hello world", ""], max_len=4), [[0, 0, 1, 2], [0, 0, 0, 0]])
    np.testing.assert_array_equal(tok.pad(["world " * 5 + "hello"], max_len=3), [[2, 2, 1]])  # keeps the end


def test_pins_refuse_a_modified_file(tmp_path, monkeypatch):
    judge = bilstm.JUDGES["jigsaw-bilstm-tcc"]
    copies = {}
    for rel in (judge.weights, judge.vocab):
        dst = tmp_path / rel.replace("/", "_")
        shutil.copyfile(bilstm._dist_file(judge, rel), dst)
        copies[rel] = dst
    monkeypatch.setattr(bilstm, "_dist_file", lambda j, rel: copies[rel])
    bilstm._load.cache_clear()
    try:
        bilstm.BiLSTMScorer("jigsaw-bilstm-tcc")  # untouched copies load
        data = bytearray(copies[judge.weights].read_bytes())
        data[-100] ^= 1
        copies[judge.weights].write_bytes(bytes(data))
        bilstm._load.cache_clear()
        with pytest.raises(ModelError, match=r"jigsaw-bilstm-tcc weights: .*model.weights.h5: sha256 .* pinned"):
            bilstm.BiLSTMScorer("jigsaw-bilstm-tcc")
    finally:
        bilstm._load.cache_clear()


class Tokenizer:  # pickled under this test module's name: the reader must refuse it
    pass


def test_vocab_unpickler_runs_nothing(tmp_path):
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # protocol-0 call of os.system
    with pytest.raises(ModelError, match="os.system' is not allowed"):
        bilstm.read_tokenizer(evil)
    other = tmp_path / "other.pickle"
    other.write_bytes(pickle.dumps(Tokenizer()))
    with pytest.raises(ModelError, match="is not allowed"):
        bilstm.read_tokenizer(other)
    # an allowed class name becomes an inert stand-in holding only its state
    body = pickle.dumps({"word_index": {"a": 1}}, protocol=2)
    handmade = b"\x80\x02ckeras_preprocessing.text\nTokenizer\n)\x81" + body[2:-1] + b"b."
    ok = tmp_path / "ok.pickle"
    ok.write_bytes(handmade)
    tok = bilstm.read_tokenizer(ok)
    assert tok.word_index == {"a": 1} and tok.ids("A b") == [1]


def test_registry_names():
    with pytest.raises(ConfigError, match="unknown BiLSTM judge"):
        build_scorer("jigsaw-bilstm-nope")
    with pytest.raises(ConfigError, match="unknown"):
        build_scorer("jigsaw-bilstm-tcc:x")
