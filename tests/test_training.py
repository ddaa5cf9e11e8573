"""Training: a learnable signal is learnt, kill + resume is exact, the CLI writes a reloadable folder,
distillation brings an ARM student to its RAD teacher, and real Jigsaw rows give AUC well above 0.5."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from pathlib import Path

import pytest
import torch

from bench.errors import DataError
from bench.models.loading import load_tokenizer
from bench.rewards.base import RewardConfig
from bench.rewards.registry import build_reward_model, load_reward_model
from bench.training.collate import Collator, LabeledTexts, read_labeled_jsonl
from bench.training.trainer import TrainConfig, Trainer, checkpoint_dir, evaluate
from bench.utils.io import write_jsonl
from tests.conftest import TINY_GPT2

WORDS = "the a dog runs blue house green sky over under big small".split()


def synthetic_rows(n: int, seed: int) -> list[dict]:
    """Label 1 exactly when the word 'banana' occurs: learnable from the tokens alone."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        toxic = rng.random() < 0.5
        if toxic:
            words[rng.randrange(len(words))] = "banana"
        rows.append({"text": " ".join(words), "labels": {"toxicity": float(toxic), "length": len(words) / 10}})
    return rows


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("data")
    write_jsonl(d / "train.jsonl", synthetic_rows(400, 0))
    write_jsonl(d / "heldout.jsonl", synthetic_rows(100, 1))
    return d / "train.jsonl", d / "heldout.jsonl"


def _data(path, max_length=16, attributes=("toxicity",)):
    return LabeledTexts.from_jsonl(path, load_tokenizer(TINY_GPT2), list(attributes), max_length)


def _model(parametrization: str, seed: int = 0, attributes=("toxicity",)):
    torch.manual_seed(seed)
    return build_reward_model(
        RewardConfig(parametrization=parametrization, backbone=TINY_GPT2, mlp_rank=8, attributes=list(attributes))
    )


def test_collator_bos_truncation_padding_and_labels(splits, tmp_path):
    tok = load_tokenizer(TINY_GPT2)
    ds = LabeledTexts([("a b c d e f g", [1.0, 0.5]), ("hi", [0.0, 0.25])], tok, max_length=4)
    batch = Collator(tok.pad_token_id)([ds[0], ds[1]])
    hi = tok("hi", add_special_tokens=False)["input_ids"]
    assert (
        batch["input_ids"][0].tolist()
        == [tok.bos_token_id] + tok("a b c d e f g", add_special_tokens=False)["input_ids"][:3]
    )
    assert batch["input_ids"][1].tolist()[: 1 + len(hi)] == [tok.bos_token_id] + hi
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1] * (1 + len(hi)) + [0] * (3 - len(hi))]
    assert batch["labels"].tolist() == [[1.0, 0.5], [0.0, 0.25]]
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"text": "x", "labels": {"toxicity": 1.0}}, {"text": "y", "labels": {"insult": 0.0}}])
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: label 'toxicity' missing"):
        read_labeled_jsonl(bad, ["toxicity"])


@pytest.mark.parametrize("parametrization", ["rad", "arm-baseline", "arm-mlp"])
def test_training_learns_a_token_signal(parametrization, splits, tmp_path):
    train, heldout = _data(splits[0]), _data(splits[1])
    model = _model(parametrization)
    before = evaluate(model, heldout, Collator(load_tokenizer(TINY_GPT2).pad_token_id), 32, torch.device("cpu"))
    cfg = TrainConfig(
        steps=100, batch_size=16, lr=1e-3, warmup_steps=10, eval_every=50, checkpoint_every=0, device="cpu"
    )
    summary = Trainer(
        model, cfg, train, heldout, tmp_path / "rm", pad_id=load_tokenizer(TINY_GPT2).pad_token_id
    ).train()
    after = summary["final"]
    assert before["heldout_mse"] > 0.3  # untrained: reward 0 for every text, half of the labels are 1
    assert after["heldout_mse"] < 0.1, after
    assert after["heldout_auc"] > 0.95, after
    log_rows = [json.loads(line) for line in (tmp_path / "rm" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_rows] == [50, 100]
    reloaded = load_reward_model(tmp_path / "rm", expected_parametrization=parametrization)
    again = evaluate(reloaded, heldout, Collator(load_tokenizer(TINY_GPT2).pad_token_id), 32, torch.device("cpu"))
    assert again["heldout_mse"] == pytest.approx(after["heldout_mse"], abs=1e-6)


class Killed(Exception):
    pass


@pytest.mark.parametrize("parametrization", ["arm-baseline", "arm-mlp"])
def test_killed_then_resumed_run_matches_uninterrupted(parametrization, splits, tmp_path):
    """Dropout is on (random GPT-2 has p=0.1) and accumulation is 2: RNG and data order must be replayed."""
    train, heldout = _data(splits[0]), _data(splits[1])
    pad = load_tokenizer(TINY_GPT2).pad_token_id
    cfg = TrainConfig(
        steps=7,
        batch_size=8,
        grad_accum=2,
        lr=1e-3,
        warmup_steps=2,
        schedule="cosine",
        weight_decay=0.01,
        eval_every=3,
        eval_size=20,
        checkpoint_every=2,
        device="cpu",
        seed=3,
    )
    assert _model(parametrization).backbone.config.resid_pdrop > 0

    Trainer(_model(parametrization), cfg, train, heldout, tmp_path / "full", pad_id=pad).train()

    def kill_at_5(step: int) -> None:
        if step == 5:
            raise Killed

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        Trainer(_model(parametrization), cfg, train, heldout, out, pad_id=pad, on_step=kill_at_5).train()
    ckpt = checkpoint_dir(out)
    latest = json.loads((ckpt / "latest.json").read_text())
    assert latest["step"] == 4 and not out.exists()
    state = torch.load(ckpt / latest["state"], weights_only=True)  # everything in it is weights_only-loadable
    assert state["step"] == 4
    # a fresh process would build the model from scratch with another init: the checkpoint must win
    summary = Trainer(_model(parametrization, seed=99), cfg, train, heldout, out, pad_id=pad).train()
    assert summary["resumed_from_step"] == 4 and summary["steps_this_run"] == 3
    assert not ckpt.exists()

    full = load_reward_model(tmp_path / "full").trainable_state_dict()
    resumed = load_reward_model(out).trainable_state_dict()
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    rows_full = (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()
    rows_res = (out / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(r)["heldout_mse"] for r in rows_full] == [json.loads(r)["heldout_mse"] for r in rows_res]


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_saves_the_best_step(splits, tmp_path):
    """min_delta larger than any possible gain: the first evaluation stays best, `patience` more stop the run.

    With a constant learning rate the saved model is then exactly the model of a 3-step run."""
    train, heldout = _data(splits[0]), _data(splits[1])
    pad = load_tokenizer(TINY_GPT2).pad_token_id
    cfg = TrainConfig(
        steps=30,
        batch_size=8,
        lr=1e-3,
        schedule="constant",
        eval_every=3,
        eval_size=20,
        patience=2,
        min_delta=10.0,
        checkpoint_every=0,
        device="cpu",
    )
    summary = Trainer(_model("arm-baseline"), cfg, train, heldout, tmp_path / "es", pad_id=pad).train()
    assert (summary["steps"], summary["best_step"], summary["max_steps"]) == (9, 3, 30)
    assert summary["stop_reason"] == "early_stopping" and summary["monitor"] == "heldout_mse"
    assert summary["examples_seen"] == 72 and summary["examples_seen_at_best"] == 24
    assert summary["train_seconds"] > 0
    rows = [json.loads(line) for line in (tmp_path / "es" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 9]
    assert summary["final"]["heldout_mse"] == rows[0]["heldout_mse"]

    short = dataclasses.replace(cfg, steps=3, patience=0)
    ref = Trainer(_model("arm-baseline"), short, train, heldout, tmp_path / "ref", pad_id=pad).train()
    assert ref["stop_reason"] == "max_steps" and ref["steps"] == ref["best_step"] == 3
    assert _tensors_equal(
        load_reward_model(tmp_path / "es").trainable_state_dict(),
        load_reward_model(tmp_path / "ref").trainable_state_dict(),
    )
    # the default min_delta = 0: a real improvement replaces the best
    cfg2 = dataclasses.replace(cfg, min_delta=0.0, patience=0, steps=9)
    s2 = Trainer(_model("arm-baseline"), cfg2, train, heldout, tmp_path / "all", pad_id=pad).train()
    rows2 = [json.loads(line) for line in (tmp_path / "all" / "train_log.jsonl").read_text().splitlines()]
    best = min(rows2, key=lambda r: r["heldout_mse"])
    assert s2["best_step"] == best["step"] and s2["final"]["heldout_mse"] == best["heldout_mse"]


def test_killed_run_resumes_its_early_stopping_state(splits, tmp_path):
    """Killed after an evaluation without improvement: the resumed run must stop at the same evaluation and
    save the best weights from the checkpoint, not the weights it has when it stops."""
    train, heldout = _data(splits[0]), _data(splits[1])
    pad = load_tokenizer(TINY_GPT2).pad_token_id
    cfg = TrainConfig(
        steps=40,
        batch_size=8,
        lr=1e-3,
        eval_every=2,
        eval_size=20,
        patience=2,
        min_delta=10.0,
        checkpoint_every=4,
        device="cpu",
        seed=1,
    )
    full = Trainer(_model("arm"), cfg, train, heldout, tmp_path / "full", pad_id=pad).train()
    assert (full["steps"], full["best_step"], full["stop_reason"]) == (6, 2, "early_stopping")

    def kill_at_5(step: int) -> None:
        if step == 5:
            raise Killed

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        Trainer(_model("arm"), cfg, train, heldout, out, pad_id=pad, on_step=kill_at_5).train()
    latest = json.loads((checkpoint_dir(out) / "latest.json").read_text())
    assert latest["step"] == 4 and latest["best"]  # one evaluation without improvement is in the state
    resumed = Trainer(_model("arm", seed=5), cfg, train, heldout, out, pad_id=pad).train()
    assert resumed["resumed_from_step"] == 4
    assert (resumed["steps"], resumed["best_step"], resumed["stop_reason"]) == (6, 2, "early_stopping")
    assert _tensors_equal(
        load_reward_model(tmp_path / "full").trainable_state_dict(), load_reward_model(out).trainable_state_dict()
    )


def test_resume_with_changed_batch_settings_starts_over_loudly(splits, tmp_path, caplog):
    """A checkpoint written with other batch settings is not resumed (that would mix two runs): a warning names
    the change, and the result equals a fresh run with the new settings."""
    train = _data(splits[0])
    pad = load_tokenizer(TINY_GPT2).pad_token_id
    cfg = TrainConfig(steps=4, batch_size=4, checkpoint_every=1, eval_every=0, device="cpu")

    def stop(step: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        Trainer(_model("arm"), cfg, train, None, tmp_path / "rm", pad_id=pad, on_step=stop).train()
    cfg2 = TrainConfig(steps=4, batch_size=8, checkpoint_every=1, eval_every=0, device="cpu")
    summary = Trainer(_model("arm"), cfg2, train, None, tmp_path / "rm", pad_id=pad).train()
    assert "batch_size: 4 -> 8" in caplog.text and "starting over" in caplog.text
    assert summary["resumed_from_step"] == 0
    fresh = Trainer(_model("arm"), cfg2, train, None, tmp_path / "fresh", pad_id=pad).train()
    assert fresh["final"] == summary["final"]


def test_cli_train_writes_a_reloadable_folder(splits, tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "rm"
    rc = main(
        [
            "train",
            "--parametrization",
            "arm-baseline",
            "--backbone",
            TINY_GPT2,
            "--train",
            str(splits[0]),
            "--heldout",
            str(splits[1]),
            "--steps",
            "6",
            "--batch-size",
            "4",
            "--eval-every",
            "3",
            "--checkpoint-every",
            "2",
            "--max-length",
            "16",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["out"] == str(out) and printed["steps_per_s"] > 0
    model = load_reward_model(out, expected_parametrization="arm-baseline")
    assert model.config.attributes == ["toxicity", "length"]  # default: label keys of the first record
    assert model.config.baseline is True
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["final"]["heldout_auc"] is not None
    assert summary["final"]["heldout_auc/length"] is None  # non-binary labels: MSE only
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    assert not checkpoint_dir(out).exists()
    bad = main(
        [
            "train",
            "--parametrization",
            "arm",
            "--backbone",
            TINY_GPT2,
            "--train",
            str(splits[0]),
            "--attributes",
            "toxicity,threat",
            "--out",
            str(tmp_path / "x"),
            "--steps",
            "1",
        ]
    )
    assert bad == 2


def test_distillation_brings_student_to_teacher(splits, tmp_path):
    from bench.cli import main
    from bench.training.distill import DistillConfig, DistillObjective

    pad = load_tokenizer(TINY_GPT2).pad_token_id
    train, heldout = _data(splits[0]), _data(splits[1])
    teacher_dir = tmp_path / "rad"
    Trainer(
        _model("rad"),
        TrainConfig(steps=40, batch_size=16, lr=1e-3, eval_every=0, checkpoint_every=0, device="cpu"),
        train,
        heldout,
        teacher_dir,
        pad_id=pad,
    ).train()
    teacher = load_reward_model(teacher_dir, expected_parametrization="rad")

    # the candidate path agrees with the teacher's forward on the observed next token
    batch = Collator(pad)([train[i] for i in range(3)])
    obj = DistillObjective(teacher, DistillConfig(num_candidates=3), ["toxicity"])
    cands = obj.candidates(
        batch["input_ids"], batch["attention_mask"], teacher.vocab_size, torch.Generator().manual_seed(0)
    )
    t_cand = obj.teacher_candidates(batch["input_ids"], batch["attention_mask"], cands)
    with torch.no_grad():
        t_fwd = teacher(batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"][:, 1:].bool()
    assert torch.allclose(t_cand[:, :-1, 0][real], t_fwd[:, 1:][real], atol=1e-4)

    out = tmp_path / "student"
    rc = main(
        [
            "train",
            "--parametrization",
            "arm-distill",
            "--teacher",
            str(teacher_dir),
            "--train",
            str(splits[0]),
            "--heldout",
            str(splits[1]),
            "--steps",
            "60",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
            "--max-length",
            "12",
            "--eval-every",
            "0",
            "--checkpoint-every",
            "0",
            "--distill-k",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    student = load_reward_model(out, expected_parametrization="arm-distill")
    assert student.config.baseline and student.config.backbone == TINY_GPT2
    hb = Collator(pad)([heldout[i] for i in range(32)])
    with torch.no_grad():
        t = teacher(hb["input_ids"], hb["attention_mask"])[:, 1:]
        s = student(hb["input_ids"], hb["attention_mask"])[:, 1:]
    m = hb["attention_mask"][:, 1:].bool()
    gap_after = ((s - t)[m] ** 2).mean().item()
    gap_before = (t[m] ** 2).mean().item()  # an untrained student outputs 0
    assert gap_after < 0.3 * gap_before, (gap_after, gap_before)
    # the summary reports the fit to the teacher on held-out texts (prefixes and candidates) and to the labels
    final = json.loads((out / "train_summary.json").read_text())["final"]
    assert (
        final["heldout_mse"] >= 0
        and json.loads((out / "train_summary.json").read_text())["monitor"] == "heldout_objective"
    )
    for part in ("distill_forward", "distill_candidates"):
        assert 0 <= final[f"heldout_objective/{part}"] < 0.3 * gap_before, (part, final, gap_before)


@pytest.mark.slow
def test_jigsaw_rad_and_arm_baseline_beat_chance(data_root, tmp_path):
    """Real Jigsaw comments (balanced), 2-layer SmolLM2 trunk: held-out AUC well above 0.5."""
    from bench.data.toxicity import load_toxicity

    rows = [(r["text"], [r["labels"]["toxicity"]]) for r in load_toxicity("jigsaw/robtest_jigsaw_test.csv", "jigsaw")]
    rng = random.Random(0)
    rng.shuffle(rows)
    spec = "embedded:smollm2-135m"
    tok = load_tokenizer(spec)
    train = LabeledTexts(rows[:4000], tok, max_length=48)
    heldout = LabeledTexts(rows[-300:], tok, max_length=48)
    for parametrization in ("rad", "arm-baseline"):
        torch.manual_seed(0)
        model = build_reward_model(RewardConfig(parametrization=parametrization, backbone=spec, num_layers=2))
        cfg = TrainConfig(
            steps=150, batch_size=16, lr=3e-4, warmup_steps=15, eval_every=0, checkpoint_every=0, device="cpu"
        )
        summary = Trainer(model, cfg, train, heldout, tmp_path / parametrization, pad_id=tok.pad_token_id).train()
        logging.getLogger(__name__).info(
            "jigsaw %s: held-out AUC %.3f", parametrization, summary["final"]["heldout_auc"]
        )
        assert summary["final"]["heldout_auc"] > 0.7, (parametrization, summary["final"])


def test_distill_candidates_are_the_base_lms_top_k(splits):
    from bench.models.loading import load_causal_lm
    from bench.training.distill import DistillConfig, DistillObjective

    pad = load_tokenizer(TINY_GPT2).pad_token_id
    base = load_causal_lm(TINY_GPT2)
    teacher = _model("rad").eval()
    with torch.no_grad():  # an untrained RAD head is zero: give the teacher rewards to distil
        teacher.head.weight.normal_(std=0.5, generator=torch.Generator().manual_seed(1))
        teacher.head.bias.fill_(0.3)
    student = _model("arm-distill")
    obj = DistillObjective(teacher, DistillConfig(num_candidates=5, prior_tokens=3), ["toxicity"], base_lm=base)
    batch = Collator(pad)([_data(splits[0])[i] for i in range(2)])
    cands = obj.candidates(batch["input_ids"], batch["attention_mask"], teacher.vocab_size, torch.Generator())
    with torch.no_grad():
        logits = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert cands.shape == (*batch["input_ids"].shape, 5)
    real = batch["attention_mask"].bool()
    assert torch.equal(cands[real], logits.topk(5, dim=-1).indices[real])
    loss, parts = obj(student, batch, torch.Generator().manual_seed(0))
    loss.backward()  # the untrained student outputs 0: the loss is the teacher's own mean square (+ prior 0)
    assert parts["baseline_prior"] == 0.0 and parts["distill_candidates"] > 0
    assert student.proj.weight.grad is not None and student.baseline.weight.grad.abs().sum() > 0
