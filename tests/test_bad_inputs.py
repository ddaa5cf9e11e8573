"""A catalogue of bad inputs. Each case runs one `bench` command (in-process, like the CLI) or `snakemake`,
and checks: a non-zero exit, a message that names the key / file / line and what was expected, no
traceback, and nothing half-written left behind (the output path does not exist, no temp files remain)."""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bench.cli import main as bench_main
from helpers_reliability import (
    REPO,
    TINY_GPT2,
    bench_cmd,
    bench_env,
    command_available,
    make_reward_folder,
    temp_leftovers,
    write_prompts,
    write_train_split,
)


@dataclass
class Case:
    """`build(tmp)` writes the inputs and returns (argv, outputs that must not exist, words the message needs)."""

    id: str
    command: str
    build: Callable[[Path], tuple[list[str], list[Path], list[str]]]
    # run: "inproc" (bench.cli.main), "bench" (subprocess), "snakemake" (subprocess)
    run: str = "inproc"
    env: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None
    # a failure in the middle of the work may keep generate's resume shard (`<out>.partial.jsonl`): by design
    allow_resume_state: bool = False
    # words that must NOT appear: proof that the command failed before its work (no training step, no scoring)
    absent: tuple[str, ...] = ()


def _gen(tmp: Path, prompts: Path, *extra: str, out: str = "out/gen.jsonl", base: str = TINY_GPT2):
    o = tmp / out
    return [
        "generate",
        "--base",
        base,
        "--prompts",
        str(prompts),
        "--out",
        str(o),
        "--num-samples",
        "1",
        "--max-new-tokens",
        "4",
        "--top-k",
        "5",
        "--device",
        "cpu",
        *extra,
    ], [o, Path(f"{o}.meta.json")]


def _ok_prompts(tmp: Path, n: int = 2) -> Path:
    return write_prompts(tmp / "in" / "prompts.jsonl", n)


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


# ------------------------------------------------------------------------------------ generate: prompts
def c_missing_prompts(tmp):
    p = tmp / "in" / "nope.jsonl"
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "not found"]


def c_malformed_jsonl(tmp):
    p = _write(tmp / "in" / "p.jsonl", '{"id": "a", "prompt": "Hello"}\n{"id": "b", "prompt": \n')
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "line 2", "JSON"]


def c_jsonl_not_object(tmp):
    p = _write(tmp / "in" / "p.jsonl", '["a list", "not an object"]\n')
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "line 1", "object"]


def c_empty_prompt_file(tmp):
    p = _write(tmp / "in" / "p.jsonl", "\n\n")
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "no prompts"]


def c_empty_prompt_string(tmp):
    p = _write(tmp / "in" / "p.jsonl", '{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": ""}\n')
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "line 2", "prompt"]


def c_prompt_missing_key(tmp):
    p = _write(tmp / "in" / "p.jsonl", '{"id": "a", "text": "Hi"}\n')
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "line 1", "prompt"]


def c_duplicate_ids(tmp):
    p = _write(tmp / "in" / "p.jsonl", '{"id": "a", "prompt": "Hi"}\n{"id": "a", "prompt": "Yo"}\n')
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "line 2", "duplicate"]


def c_non_utf8_prompts(tmp):
    p = _write(tmp / "in" / "p.jsonl", b'{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": "caf\xe9"}\n')
    argv, outs = _gen(tmp, p)
    return argv, outs, [str(p), "line 2", "UTF-8"]


def c_prompt_longer_than_context(tmp):
    p = _write(tmp / "in" / "p.jsonl", json.dumps({"id": "long", "prompt": "word " * 40}) + "\n")
    argv, outs = _gen(tmp, p, base=TINY_GPT2 + "&n_positions=32")
    return argv, outs, ["long", "context", "32"]


# ------------------------------------------------------------------------------------ generate: settings
def c_negative_beta(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(make_reward_folder(tmp / "in" / "rad")), "--beta", "-1")
    return argv, outs, ["beta", "-1", ">= 0"]


def c_top_k_larger_than_vocab(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--top-k", "60000")
    return argv, outs, ["top_k", "60000", "50257"]


def c_top_k_zero(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--top-k", "0")
    return argv, outs, ["top_k", "0"]


def c_bad_dtype(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--dtype", "float7")
    return argv, outs, ["float7", "dtype"]


def c_cuda_missing(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp))
    argv[argv.index("--device") + 1] = "cuda"
    return argv, outs, ["cuda", "not available"]


def c_unknown_random_arch(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), base="random:gpt5")
    return argv, outs, ["gpt5", "expected one of"]


def c_missing_model_folder(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), base=str(tmp / "no_such_model"))
    return argv, outs, [str(tmp / "no_such_model"), "not found"]


# ------------------------------------------------------------------------------------ reward checkpoints
def c_tokenizer_mismatch(tmp):
    rm = make_reward_folder(tmp / "in" / "rad_smollm", backbone="embedded:smollm2-135m", num_layers=1)
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, ["vocab", "smollm2"]


def c_other_parametrization(tmp):
    """A folder that says `arm-baseline` but holds RAD weights: refused, naming the file."""
    rm = make_reward_folder(tmp / "in" / "rad")
    cfg = json.loads((rm / "reward_config.json").read_text())
    cfg["parametrization"], cfg["baseline"] = "arm-baseline", True
    (rm / "reward_config.json").write_text(json.dumps(cfg))
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "model.safetensors"), "arm-baseline"]


def c_corrupt_checkpoint(tmp):
    rm = make_reward_folder(tmp / "in" / "rad")
    data = (rm / "model.safetensors").read_bytes()
    (rm / "model.safetensors").write_bytes(data[: len(data) // 3])  # truncated, like an interrupted copy
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "model.safetensors"), "corrupt"]


def c_pickle_only_checkpoint(tmp):
    rm = make_reward_folder(tmp / "in" / "rad")
    (rm / "model.safetensors").rename(rm / "pytorch_model.bin")
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm), "model.safetensors"]


def c_reward_config_unknown_key(tmp):
    rm = make_reward_folder(tmp / "in" / "rad")
    cfg = json.loads((rm / "reward_config.json").read_text())
    cfg["hiden_size"] = 3
    (rm / "reward_config.json").write_text(json.dumps(cfg))
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "reward_config.json"), "hiden_size"]


def c_missing_reward_folder(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(tmp / "no_rm"), "--beta", "1")
    return argv, outs, [str(tmp / "no_rm")]


# ------------------------------------------------------------------------------------ output folder / disk
def c_output_parent_is_a_file(tmp):
    blocker = _write(tmp / "out_file", "I am a file, not a folder\n")
    argv, outs = _gen(tmp, _ok_prompts(tmp), out="out_file/gen.jsonl")
    return argv, [], [str(blocker)]


def c_unwritable_output_folder(tmp):
    """A folder nobody may write to. Root ignores chmod, so as root the folder is made immutable (chattr +i)."""
    d = tmp / "ro"
    d.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)]).returncode != 0:
            pytest.skip("running as root without a working chattr: cannot make a folder unwritable")
    else:
        d.chmod(0o555)
    argv, outs = _gen(tmp, _ok_prompts(tmp), out="ro/gen.jsonl")
    return argv, outs, [str(d)]


def _make_writable(tmp: Path) -> None:
    d = tmp / "ro"
    if d.exists():
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(d)], check=False)
        d.chmod(0o755)


def c_disk_full(tmp):
    """RLIMIT_FSIZE makes the kernel refuse writes past 300 bytes (EFBIG), like a full disk."""
    argv, outs = _gen(tmp, write_prompts(tmp / "in" / "p.jsonl", 8), "--num-samples", "4")
    return argv, outs, [str(outs[0].parent)]


def _fsize_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))


# ------------------------------------------------------------------------------------ train
def _train(tmp, train, heldout, *extra):
    out = tmp / "out" / "rm"
    return [
        "train",
        "--parametrization",
        "rad",
        "--backbone",
        TINY_GPT2,
        "--num-layers",
        "1",
        "--train",
        str(train),
        "--heldout",
        str(heldout),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--max-length",
        "8",
        "--device",
        "cpu",
        *extra,
    ], [out, Path(f"{out}.ckpt")]


def c_train_malformed_line(tmp):
    train = write_train_split(tmp / "in" / "train.jsonl", 6)
    with open(train, "a") as fh:
        fh.write('{"text": "x", "labels": {"toxicity": 1.0}\n')  # missing closing brace on line 7
    argv, outs = _train(tmp, train, write_train_split(tmp / "in" / "held.jsonl", 4))
    return argv, outs, [str(train), "line 7"]


def c_train_missing_label(tmp):
    train = write_train_split(tmp / "in" / "train.jsonl", 6)
    with open(train, "a") as fh:
        fh.write(json.dumps({"text": "no label here", "labels": {"insult": 1.0}}) + "\n")
    argv, outs = _train(tmp, train, write_train_split(tmp / "in" / "held.jsonl", 4), "--attributes", "toxicity")
    return argv, outs, [str(train), "line 7", "toxicity"]


def c_train_missing_file(tmp):
    p = tmp / "in" / "nope.jsonl"
    argv, outs = _train(tmp, p, write_train_split(tmp / "in" / "held.jsonl", 4))
    return argv, outs, [str(p)]


def c_train_negative_steps(tmp):
    argv, outs = _train(tmp, write_train_split(tmp / "in" / "t.jsonl", 6), write_train_split(tmp / "in" / "h.jsonl", 4))
    argv[argv.index("--steps") + 1] = "-5"
    return argv, outs, ["steps", "-5"]


def c_train_negative_lr(tmp):
    argv, outs = _train(
        tmp, write_train_split(tmp / "in" / "t.jsonl", 6), write_train_split(tmp / "in" / "h.jsonl", 4), "--lr", "-0.1"
    )
    return argv, outs, ["lr", "-0.1"]


def c_distill_teacher_wrong_parametrization(tmp):
    teacher = make_reward_folder(tmp / "in" / "arm_teacher", parametrization="arm")
    argv, outs = _train(
        tmp,
        write_train_split(tmp / "in" / "t.jsonl", 6),
        write_train_split(tmp / "in" / "h.jsonl", 4),
        "--teacher",
        str(teacher),
    )
    argv[argv.index("--parametrization") + 1] = "arm-distill"
    return argv, outs, [str(teacher), "rad"]


def c_train_corrupt_resume_state(tmp):
    """`<out>.ckpt/` left by a killed run, whose optimizer-state file was truncated (disk trouble)."""
    argv, outs = _train(tmp, write_train_split(tmp / "in" / "t.jsonl", 6), write_train_split(tmp / "in" / "h.jsonl", 4))
    ckpt = Path(str(outs[0]) + ".ckpt")
    ckpt.mkdir(parents=True)
    (ckpt / "latest.json").write_text(
        json.dumps({"step": 1, "weights": "step-00000001.safetensors", "state": "step-00000001.pt"})
    )
    (ckpt / "step-00000001.pt").write_bytes(b"PK\x03\x04 truncated")
    (ckpt / "step-00000001.safetensors").write_bytes(b"\x08\x00\x00")
    return argv, [outs[0]], [str(ckpt / "step-00000001.pt")]


# ------------------------------------------------------------------------------------ prepare (data)
def c_prepare_missing_file(tmp):
    src, out = tmp / "in" / "nope.csv", tmp / "out" / "train.jsonl"
    return (
        [
            "prepare",
            "train",
            "--dataset",
            "jigsaw",
            "--source",
            str(src),
            "--n-train",
            "4",
            "--n-heldout",
            "2",
            "--out-train",
            str(out),
            "--out-heldout",
            str(tmp / "out" / "held.jsonl"),
        ],
        [out, tmp / "out" / "held.jsonl"],
        [str(src)],
    )


def c_prepare_csv_wrong_columns(tmp):
    src = _write(tmp / "in" / "bad.csv", "id,body,score\n1,hello there,0.3\n2,you fool,0.9\n")
    out = tmp / "out" / "train.jsonl"
    return (
        [
            "prepare",
            "train",
            "--dataset",
            "kaggle-jigsaw",
            "--source",
            str(src),
            "--n-train",
            "1",
            "--n-heldout",
            "1",
            "--out-train",
            str(out),
            "--out-heldout",
            str(tmp / "out" / "held.jsonl"),
        ],
        [out, tmp / "out" / "held.jsonl"],
        [str(src), "comment_text"],
    )


def c_prepare_empty_prompt_file(tmp):
    src = _write(tmp / "in" / "rtp.jsonl", "")
    out = tmp / "out" / "prompts.jsonl"
    return (
        ["prepare", "prompts", "--dataset", "rtp", "--source", str(src), "--n", "2", "--out", str(out)],
        [out],
        [str(src)],
    )


def c_prepare_non_utf8_tsv(tmp):
    src = _write(tmp / "in" / "train.tsv", b"label\tsentence\n1\tgood film\n0\tmauvais \xe9t\xe9 film\n")
    out = tmp / "out" / "train.jsonl"
    return (
        [
            "prepare",
            "train",
            "--dataset",
            "sst2",
            "--source",
            str(src),
            "--n-train",
            "1",
            "--n-heldout",
            "1",
            "--out-train",
            str(out),
            "--out-heldout",
            str(tmp / "out" / "held.jsonl"),
        ],
        [out, tmp / "out" / "held.jsonl"],
        [str(src), "UTF-8"],
    )


# ------------------------------------------------------------------------------------ score
def _gens(tmp: Path, meta: bool = True) -> Path:
    g = _write(
        tmp / "in" / "gen.jsonl", json.dumps({"id": "a", "prompt": "Hi", "continuations": [" there", " you"]}) + "\n"
    )
    if meta:
        _write(
            Path(f"{g}.meta.json"),
            json.dumps({"method": "plain", "beta": 0, "top_k": 5, "task": "detox", "base": TINY_GPT2}),
        )
    return g


def _score(tmp, gens, *extra, scorer="profanity-check"):
    s, m = tmp / "out" / "s.jsonl", tmp / "out" / "s.csv"
    return (
        [
            "score",
            "--generations",
            str(gens),
            "--metrics",
            "toxicity,diversity",
            "--toxicity-scorer",
            scorer,
            "--out-scores",
            str(s),
            "--out-summary",
            str(m),
            "--device",
            "cpu",
            *extra,
        ],
        [s, m],
    )


def c_perspective_without_key(tmp):
    argv, outs = _score(tmp, _gens(tmp), scorer="perspective")
    return argv, outs, ["PERSPECTIVE_API_KEY"]


def c_score_missing_meta(tmp):
    g = _gens(tmp, meta=False)
    argv, outs = _score(tmp, g)
    return argv, outs, [f"{g}.meta.json"]


def c_score_unknown_metric(tmp):
    argv, outs = _score(tmp, _gens(tmp))
    argv[argv.index("--metrics") + 1] = "toxicity,fluffiness"
    return argv, outs, ["fluffiness", "--metrics"]


def c_score_unknown_scorer(tmp):
    argv, outs = _score(tmp, _gens(tmp), scorer="perspektive")
    return argv, outs, ["perspektive", "expected one of"]


# ------------------------------------------------------------------------------------ pipeline config
def _snake(tmp, mutate, *targets):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    mutate(cfg)
    path = _write(tmp / "in" / "config.yaml", yaml.safe_dump(cfg))
    return [
        "snakemake",
        "-n",
        *targets,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp),
        "--configfile",
        str(path),
        "--cores",
        "1",
    ], [tmp / "runs"]


def c_config_unknown_key(tmp):
    argv, outs = _snake(tmp, lambda c: c["generation"].update(num_sampels=3))
    return argv, outs, ["num_sampels"]


def c_config_wrong_type(tmp):
    argv, outs = _snake(tmp, lambda c: c["generation"].update(max_new_tokens="twenty"))
    return argv, outs, ["generation.max_new_tokens", "twenty"]


def c_config_negative_beta(tmp):
    argv, outs = _snake(tmp, lambda c: c["tasks"]["toxicity"].update(betas=[5, -2]))
    return argv, outs, ["tasks.toxicity.betas", "-2"]


def c_config_missing_data_file(tmp):
    argv, outs = _snake(tmp, lambda c: c["tasks"]["toxicity"]["prompts"].update(source=str(tmp / "nope.jsonl")))
    return argv, outs, [str(tmp / "nope.jsonl")]


def c_snakemake_unknown_target(tmp):
    argv, outs = _snake(tmp, lambda c: None, "nonexistent")
    return argv, outs, ["nonexistent"]


CASES = [
    Case("missing-prompt-file", "generate", c_missing_prompts),
    Case("malformed-jsonl-line", "generate", c_malformed_jsonl),
    Case("jsonl-line-not-an-object", "generate", c_jsonl_not_object),
    Case("empty-prompt-file", "generate", c_empty_prompt_file),
    Case("empty-prompt-string", "generate", c_empty_prompt_string),
    Case("prompt-record-missing-key", "generate", c_prompt_missing_key),
    Case("duplicate-prompt-ids", "generate", c_duplicate_ids),
    Case("non-utf8-prompts", "generate", c_non_utf8_prompts),
    Case("prompt-longer-than-context", "generate", c_prompt_longer_than_context),
    Case("negative-beta", "generate", c_negative_beta),
    Case("top-k-larger-than-vocab", "generate", c_top_k_larger_than_vocab),
    Case("top-k-zero", "generate", c_top_k_zero),
    Case("unknown-dtype", "generate", c_bad_dtype),
    Case("cuda-requested-but-absent", "generate", c_cuda_missing),
    Case("unknown-random-architecture", "generate", c_unknown_random_arch),
    Case("missing-model-folder", "generate", c_missing_model_folder),
    Case("base-and-reward-tokenizers-differ", "generate", c_tokenizer_mismatch),
    Case("reward-checkpoint-of-other-parametrization", "generate", c_other_parametrization),
    Case("corrupt-checkpoint", "generate", c_corrupt_checkpoint),
    Case("pickle-only-checkpoint", "generate", c_pickle_only_checkpoint),
    Case("reward-config-unknown-key", "generate", c_reward_config_unknown_key),
    Case("missing-reward-folder", "generate", c_missing_reward_folder),
    Case("output-parent-is-a-file", "generate", c_output_parent_is_a_file),
    Case("unwritable-output-folder", "generate", c_unwritable_output_folder),
    Case("disk-full-during-write", "generate", c_disk_full, run="bench", preexec=_fsize_limit, allow_resume_state=True),
    Case("train-malformed-jsonl-line", "train", c_train_malformed_line),
    Case("train-missing-label", "train", c_train_missing_label),
    Case("train-missing-file", "train", c_train_missing_file),
    Case("train-negative-steps", "train", c_train_negative_steps),
    Case("train-negative-lr", "train", c_train_negative_lr),
    Case("train-corrupt-resume-state", "train", c_train_corrupt_resume_state),
    Case("distill-teacher-not-rad", "train", c_distill_teacher_wrong_parametrization),
    Case("prepare-missing-data-file", "prepare", c_prepare_missing_file),
    Case("prepare-csv-wrong-columns", "prepare", c_prepare_csv_wrong_columns),
    Case("prepare-empty-prompt-file", "prepare", c_prepare_empty_prompt_file),
    Case("prepare-non-utf8-tsv", "prepare", c_prepare_non_utf8_tsv),
    Case("perspective-selected-without-key", "score", c_perspective_without_key, env={"PERSPECTIVE_API_KEY": ""}),
    Case("score-missing-meta", "score", c_score_missing_meta),
    Case("score-unknown-metric", "score", c_score_unknown_metric),
    Case("score-unknown-scorer", "score", c_score_unknown_scorer),
    Case("config-unknown-key", "snakemake", c_config_unknown_key, run="snakemake"),
    Case("config-wrong-type", "snakemake", c_config_wrong_type, run="snakemake"),
    Case("config-negative-beta", "snakemake", c_config_negative_beta, run="snakemake"),
    Case("config-missing-data-file", "snakemake", c_config_missing_data_file, run="snakemake"),
    Case("snakemake-nonexistent-target", "snakemake", c_snakemake_unknown_target, run="snakemake"),
]


# ====================================================================================== round 2 (issue 15)
def _nan_reward(tmp):
    """A reward folder whose weights hold NaN, saved by the suite (as a diverged training run would: the
    weights digest is right): every reward is NaN."""
    import torch

    from bench.rewards.registry import load_reward_model, save_reward_model

    rm = make_reward_folder(tmp / "in" / "rad_nan")
    model = load_reward_model(rm)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.fill_(float("nan"))
    save_reward_model(model, rm)
    return rm


def _edit_reward_config(rm: Path, **changes) -> Path:
    cfg = json.loads((rm / "reward_config.json").read_text())
    cfg.update(changes)
    (rm / "reward_config.json").write_text(json.dumps(cfg))
    return rm


def _prompts_with_id(tmp, raw_id: str) -> Path:
    return _write(tmp / "in" / "p.jsonl", '{"id": "ok", "prompt": "Hi"}\n' + '{"id": ' + raw_id + ', "prompt": "Yo"}\n')


def _prepare_train(tmp, src, dataset="jigsaw", *extra):
    out = tmp / "out" / "train.jsonl"
    held = tmp / "out" / "held.jsonl"
    return (
        [
            "prepare",
            "train",
            "--dataset",
            dataset,
            "--source",
            str(src),
            "--n-train",
            "1",
            "--n-heldout",
            "1",
            "--out-train",
            str(out),
            "--out-heldout",
            str(held),
            *extra,
        ],
        [out, held, Path(f"{out}.meta.json")],
    )


def _ro_dir(tmp) -> Path:
    """A folder nobody may write to (as root: immutable, chattr +i); undone by _make_writable."""
    d = tmp / "ro"
    d.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)]).returncode != 0:
            pytest.skip("running as root without a working chattr: cannot make a folder unwritable")
    else:
        d.chmod(0o555)
    return d


# ---- class 1: non-finite numbers
def c_nan_reward_weights(tmp):
    rm = _nan_reward(tmp)
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs + [Path(f"{outs[0]}.partial.jsonl")], [str(rm), "non-finite"]


def c_beta_inf(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(make_reward_folder(tmp / "in" / "rad")), "--beta", "inf")
    return argv, outs, ["--beta", "inf", "finite"]


def c_beta_nan(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(make_reward_folder(tmp / "in" / "rad")), "--beta", "nan")
    return argv, outs, ["--beta", "nan"]


def c_prepare_nan_label(tmp):
    src = _write(
        tmp / "in" / "prepared.jsonl",
        '{"text": "fine words", "labels": {"toxicity": 0.0}}\n{"text": "odd words", "labels": {"toxicity": NaN}}\n',
    )
    argv, outs = _prepare_train(tmp, src)
    return argv, outs, [str(src), "line 2", "finite"]


def c_prepare_inf_label_csv(tmp):
    src = _write(tmp / "in" / "civil.csv", "comment_text,toxicity\nhello there,0.1\nyou fool,inf\n")
    argv, outs = _prepare_train(tmp, src, "civil-comments")
    return argv, outs, [str(src), "line 3", "finite"]


def c_config_beta_inf(tmp):
    argv, outs = _snake(tmp, lambda c: c["tasks"]["toxicity"].update(betas=[5, float("inf")]))
    return argv, outs, ["tasks.toxicity.betas", "finite"]


def c_latency_beta_inf(tmp):
    return (["latency", "--beta", "inf", "--out-csv", str(tmp / "out" / "l.csv")], [tmp / "out"], ["--beta", "inf"])


# ---- class 3: label ranges
def c_prepare_civil_toxicity_above_one(tmp):
    src = _write(tmp / "in" / "civil.csv", "comment_text,toxicity\nhello there,0.1\nyou fool,5.0\n")
    argv, outs = _prepare_train(tmp, src, "civil-comments")
    return argv, outs, [str(src), "line 3", "toxicity", "[0, 1]"]


def c_prepare_civil_toxicity_negative(tmp):
    src = _write(tmp / "in" / "civil.csv", "comment_text,target,insult\nhello there,0.1,0\nyou fool,-2.0,0\n")
    argv, outs = _prepare_train(tmp, src, "civil-comments")
    return argv, outs, [str(src), "line 3", "target", "[0, 1]"]


def c_prepare_prepared_label_out_of_range(tmp):
    src = _write(
        tmp / "in" / "prepared.jsonl",
        '{"text": "a", "labels": {"toxicity": 0.0}}\n{"text": "b", "labels": {"toxicity": 1.5}}\n',
    )
    argv, outs = _prepare_train(tmp, src)
    return argv, outs, [str(src), "line 2", "[0, 1]"]


DAVIDSON_HEAD = ",count,hate_speech,offensive_language,neither,class,tweet\n"


def c_prepare_davidson_votes_exceed_count(tmp):
    src = _write(tmp / "in" / "labeled_data.csv", DAVIDSON_HEAD + "0,3,0,0,3,2,a nice day\n1,3,2,4,0,1,you fool\n")
    argv, outs = _prepare_train(tmp, src, "davidson", "--davidson-label", "share")
    return argv, outs, [str(src), "line 3", "count"]


def c_prepare_davidson_negative_count(tmp):
    src = _write(tmp / "in" / "labeled_data.csv", DAVIDSON_HEAD + "0,3,0,0,3,2,a nice day\n1,3,-1,2,2,1,you fool\n")
    argv, outs = _prepare_train(tmp, src, "davidson", "--davidson-label", "share")
    return argv, outs, [str(src), "line 3", "hate_speech", "integer >= 0"]


def c_prepare_rtp_score_out_of_range(tmp):
    src = _write(
        tmp / "in" / "rtp.jsonl",
        json.dumps({"prompt": {"text": "Hello", "toxicity": 0.1}})
        + "\n"
        + json.dumps({"prompt": {"text": "There", "toxicity": 3.0}})
        + "\n",
    )
    out = tmp / "out" / "prompts.jsonl"
    return (
        ["prepare", "prompts", "--dataset", "rtp", "--source", str(src), "--out", str(out)],
        [out],
        [str(src), "line 2", "toxicity", "[0, 1]"],
    )


def c_train_label_out_of_range(tmp):
    train = write_train_split(tmp / "in" / "train.jsonl", 6)
    with open(train, "a") as fh:
        fh.write(json.dumps({"text": "too toxic", "labels": {"toxicity": 5.0}}) + "\n")
    argv, outs = _train(tmp, train, write_train_split(tmp / "in" / "held.jsonl", 4), "--loss", "cumulative_bce")
    return argv, outs, [str(train), "line 7", "[0, 1]"]


# ---- class 5: argument domains
def _gen_flag(flag, value, words):
    def build(tmp):
        argv, outs = _gen(tmp, _ok_prompts(tmp), flag, value)
        return argv, outs, words

    return build


def _gen_id(raw, shown):
    def build(tmp):
        p = _prompts_with_id(tmp, raw)
        argv, outs = _gen(tmp, p)
        return argv, outs, [str(p), "line 2", "'id'", shown]

    return build


def c_train_num_layers_above_depth(tmp):
    argv, outs = _train(tmp, write_train_split(tmp / "in" / "t.jsonl", 6), write_train_split(tmp / "in" / "h.jsonl", 4))
    argv[argv.index("--num-layers") + 1] = "5"
    return argv, outs, ["num_layers=5", "2 layers"]


def c_train_num_layers_zero(tmp):
    argv, outs = _train(tmp, write_train_split(tmp / "in" / "t.jsonl", 6), write_train_split(tmp / "in" / "h.jsonl", 4))
    argv[argv.index("--num-layers") + 1] = "0"
    return argv, outs, ["--num-layers", "'0'"]


def c_train_checkpoint_every_negative(tmp):
    argv, outs = _train(
        tmp,
        write_train_split(tmp / "in" / "t.jsonl", 6),
        write_train_split(tmp / "in" / "h.jsonl", 4),
        "--checkpoint-every",
        "-1",
    )
    return argv, outs, ["checkpoint", "-1"]


def c_prepare_n_zero(tmp):
    src = _write(tmp / "in" / "rtp.jsonl", json.dumps({"prompt": {"text": "Hello", "toxicity": 0.1}}) + "\n")
    out = tmp / "out" / "prompts.jsonl"
    return (
        ["prepare", "prompts", "--dataset", "rtp", "--source", str(src), "--n", "0", "--out", str(out)],
        [out],
        ["--n", "'0'", ">= 1"],
    )


def c_prepare_n_train_minus_one(tmp):
    src = _write(tmp / "in" / "b.csv", "hello there,0\nyou fool,1\nnice one,0\n")
    argv, outs = _prepare_train(tmp, src)
    argv[argv.index("--n-train") + 1] = "-1"
    return argv, outs, ["--n-train", "'-1'"]


def c_prepare_n_heldout_negative(tmp):
    src = _write(tmp / "in" / "b.csv", "hello there,0\nyou fool,1\nnice one,0\n")
    argv, outs = _prepare_train(tmp, src)
    argv[argv.index("--n-heldout") + 1] = "-3"
    return argv, outs, ["--n-heldout", "'-3'"]


def c_score_n_boot_zero(tmp):
    argv, outs = _score(tmp, _gens(tmp), "--n-boot", "0")
    return argv, outs, ["--n-boot", "'0'"]


# ---- class 6: one-line errors, not tracebacks
def c_reward_weights_shape_mismatch(tmp):
    """The config now says two attributes; the head saved with one output no longer fits."""
    rm = _edit_reward_config(make_reward_folder(tmp / "in" / "rad"), attributes=["toxicity", "insult"])
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "model.safetensors"), "shape"]


def c_reward_backbone_changed(tmp):
    rm = _edit_reward_config(
        make_reward_folder(tmp / "in" / "rad"), backbone="random:tiny-gpt2?n_layer=2&n_embd=32&n_head=2&seed=0"
    )
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "model.safetensors"), "shape"]


def c_reward_config_wrong_type(tmp):
    rm = _edit_reward_config(make_reward_folder(tmp / "in" / "rad"), num_layers="six")
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "reward_config.json"), "num_layers", "six", "integer"]


def c_reward_config_attributes_not_list(tmp):
    rm = _edit_reward_config(make_reward_folder(tmp / "in" / "rad"), attributes="toxicity")
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--reward", str(rm), "--beta", "1")
    return argv, outs, [str(rm / "reward_config.json"), "attributes", "list"]


def c_random_spec_malformed(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), base="random:tiny-gpt2?n_layer")
    return argv, outs, ["random:tiny-gpt2?n_layer", "key=value"]


def c_random_spec_unknown_key(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), base="random:tiny-gpt2?n_lyer=2")
    return argv, outs, ["n_lyer", "expected keys"]


def c_random_spec_not_a_number(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), base="random:tiny-gpt2?n_layer=two")
    return argv, outs, ["n_layer", "two", "integer"]


def c_score_meta_is_a_list(tmp):
    g = _gens(tmp, meta=False)
    _write(Path(f"{g}.meta.json"), "[1, 2, 3]\n")
    argv, outs = _score(tmp, g)
    return argv, outs, [f"{g}.meta.json", "object", "list"]


def c_score_cache_not_sqlite(tmp):
    cache = _write(tmp / "in" / "cache.sqlite", "this is a text file, not a database\n" * 50)
    argv, outs = _score(tmp, _gens(tmp), "--cache", str(cache))
    return argv, outs, [str(cache), "SQLite"]


# ---- class 7: fail early, leave no debris
def c_score_one_output_unwritable(tmp):
    """Scores may be written, the summary may not: refused before scoring, and neither file appears."""
    d = _ro_dir(tmp)
    argv, outs = _score(tmp, _gens(tmp))
    argv[argv.index("--out-summary") + 1] = str(d / "s.csv")
    return argv, outs + [Path(f"{outs[0]}.meta.json"), tmp / "out"], [str(d)]


def c_score_output_is_a_folder(tmp):
    argv, outs = _score(tmp, _gens(tmp))
    outs[1].mkdir(parents=True)
    return argv, [outs[0], Path(f"{outs[0]}.meta.json")], [str(outs[1]), "folder"]


def c_train_unwritable_output(tmp):
    d = _ro_dir(tmp)
    argv, outs = _train(tmp, write_train_split(tmp / "in" / "t.jsonl", 6), write_train_split(tmp / "in" / "h.jsonl", 4))
    argv[argv.index("--out") + 1] = str(d / "rm")
    return argv, [d / "rm", d / "rm.ckpt"], [str(d)]


def c_generate_refused_leaves_no_folder(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp), "--top-k", "60000", out="new/deeper/gen.jsonl")
    return argv, outs + [tmp / "new"], ["top_k", "60000"]


def c_generate_output_is_a_folder(tmp):
    argv, outs = _gen(tmp, _ok_prompts(tmp))
    outs[0].mkdir(parents=True)
    return argv, [outs[1], Path(f"{outs[0]}.partial.jsonl")], [str(outs[0]), "folder"]


def c_prepare_output_is_a_folder(tmp):
    src = _write(tmp / "in" / "b.csv", "hello there,0\nyou fool,1\nnice one,0\n")
    argv, outs = _prepare_train(tmp, src)
    outs[1].mkdir(parents=True)
    return argv, [outs[0], Path(f"{outs[0]}.meta.json")], [str(outs[1]), "folder"]


def c_prepare_one_output_unwritable(tmp):
    d = _ro_dir(tmp)
    src = _write(tmp / "in" / "b.csv", "hello there,0\nyou fool,1\nnice one,0\n")
    argv, outs = _prepare_train(tmp, src)
    argv[argv.index("--out-heldout") + 1] = str(d / "held.jsonl")
    return argv, [outs[0], Path(f"{outs[0]}.meta.json"), tmp / "out"], [str(d)]


# YAML syntax errors: Snakemake parses a --configfile before the workflow runs (its message names no file or
# line); `bench check-config` names the file, line and column.
def _check_config(text: str, words_of: Callable[[Path], list[str]]):
    def build(tmp):
        p = _write(tmp / "in" / "config.yaml", text)
        return ["check-config", str(p)], [], words_of(p)

    return build


def c_config_betas_by_unknown_method(tmp):
    argv, outs = _snake(tmp, lambda c: c["tasks"]["toxicity"].update(betas_by_method={"radd": [5]}))
    return argv, outs, ["tasks.toxicity.betas_by_method", "radd"]


def c_config_betas_by_method_empty(tmp):
    argv, outs = _snake(tmp, lambda c: c["tasks"]["toxicity"].update(betas_by_method={"rad": []}))
    return argv, outs, ["tasks.toxicity.betas_by_method.rad"]


ROUND2 = [
    # class 1
    Case("nan-reward-weights", "generate", c_nan_reward_weights),
    Case("beta-inf", "generate", c_beta_inf),
    Case("beta-nan", "generate", c_beta_nan),
    Case("prepare-nan-label", "prepare", c_prepare_nan_label),
    Case("prepare-inf-label-csv", "prepare", c_prepare_inf_label_csv),
    Case("config-beta-inf", "snakemake", c_config_beta_inf, run="snakemake"),
    Case("latency-beta-inf", "latency", c_latency_beta_inf),
    # class 3
    Case("prepare-civil-toxicity-above-one", "prepare", c_prepare_civil_toxicity_above_one),
    Case("prepare-civil-toxicity-negative", "prepare", c_prepare_civil_toxicity_negative),
    Case("prepare-prepared-label-out-of-range", "prepare", c_prepare_prepared_label_out_of_range),
    Case("prepare-davidson-votes-exceed-count", "prepare", c_prepare_davidson_votes_exceed_count),
    Case("prepare-davidson-negative-count", "prepare", c_prepare_davidson_negative_count),
    Case("prepare-rtp-score-out-of-range", "prepare", c_prepare_rtp_score_out_of_range),
    Case("train-label-out-of-range", "train", c_train_label_out_of_range),
    # class 5
    Case("max-prompts-zero", "generate", _gen_flag("--max-prompts", "0", ["--max-prompts", "'0'", ">= 1"])),
    Case("max-prompts-minus-one", "generate", _gen_flag("--max-prompts", "-1", ["--max-prompts", "'-1'", ">= 1"])),
    Case("num-samples-zero", "generate", _gen_flag("--num-samples", "0", ["--num-samples", "'0'"])),
    Case("max-new-tokens-zero", "generate", _gen_flag("--max-new-tokens", "0", ["--max-new-tokens", "'0'"])),
    Case("batch-size-zero", "generate", _gen_flag("--batch-size", "0", ["--batch-size", "'0'"])),
    Case("prompt-id-null", "generate", _gen_id("null", "null")),
    Case("prompt-id-object", "generate", _gen_id('{"a": 1}', '{"a": 1}')),
    Case("prompt-id-float", "generate", _gen_id("1.5", "1.5")),
    Case("prompt-id-bool", "generate", _gen_id("true", "true")),
    Case("train-num-layers-above-depth", "train", c_train_num_layers_above_depth),
    Case("train-num-layers-zero", "train", c_train_num_layers_zero),
    Case("train-checkpoint-every-negative", "train", c_train_checkpoint_every_negative),
    Case("prepare-n-zero", "prepare", c_prepare_n_zero),
    Case("prepare-n-train-minus-one", "prepare", c_prepare_n_train_minus_one),
    Case("prepare-n-heldout-negative", "prepare", c_prepare_n_heldout_negative),
    Case("score-n-boot-zero", "score", c_score_n_boot_zero),
    # class 6
    Case("reward-weights-shape-mismatch", "generate", c_reward_weights_shape_mismatch),
    Case("reward-backbone-changed", "generate", c_reward_backbone_changed),
    Case("reward-config-wrong-type", "generate", c_reward_config_wrong_type),
    Case("reward-config-attributes-not-list", "generate", c_reward_config_attributes_not_list),
    Case("random-spec-malformed", "generate", c_random_spec_malformed),
    Case("random-spec-unknown-key", "generate", c_random_spec_unknown_key),
    Case("random-spec-not-a-number", "generate", c_random_spec_not_a_number),
    Case("score-meta-is-a-list", "score", c_score_meta_is_a_list),
    Case("score-cache-not-sqlite", "score", c_score_cache_not_sqlite),
    # class 7
    Case("score-one-output-unwritable", "score", c_score_one_output_unwritable, absent=("scored ",)),
    Case("score-output-is-a-folder", "score", c_score_output_is_a_folder),
    Case("train-unwritable-output", "train", c_train_unwritable_output, absent=("train_loss",)),
    Case("generate-refused-leaves-no-folder", "generate", c_generate_refused_leaves_no_folder),
    Case("generate-output-is-a-folder", "generate", c_generate_output_is_a_folder),
    Case("prepare-output-is-a-folder", "prepare", c_prepare_output_is_a_folder),
    Case("prepare-one-output-unwritable", "prepare", c_prepare_one_output_unwritable),
    # class 6: config files (YAML syntax through `bench check-config`; betas_by_method through Snakemake)
    Case(
        "config-yaml-unclosed-list",
        "check-config",
        _check_config("name: x\ntasks:\n  toxicity: [a, b\n  foo: 1\n", lambda p: [str(p), "line 4", "column 6"]),
    ),
    Case(
        "config-yaml-tab-indent",
        "check-config",
        _check_config("name: x\n\tseed: 1\n", lambda p: [str(p), "line 2", "column 1", "'\\t'"]),
    ),
    Case(
        "config-yaml-top-level-list",
        "check-config",
        _check_config("- name: x\n", lambda p: [str(p), "mapping", "list"]),
    ),
    Case("config-yaml-not-utf8", "check-config", _check_config(b"name: \xff\xfe\n", lambda p: [str(p), "UTF-8"])),
    Case(
        "config-unknown-key-check",
        "check-config",
        _check_config(
            (REPO / "config" / "test.yaml").read_text() + "\nbogus_key: 1\n", lambda p: [str(p), "bogus_key"]
        ),
    ),
    Case("config-betas-by-unknown-method", "snakemake", c_config_betas_by_unknown_method, run="snakemake"),
    Case("config-betas-by-method-empty", "snakemake", c_config_betas_by_method_empty, run="snakemake"),
]
CASES += ROUND2


def _run_inproc(argv, caplog, capsys, monkeypatch, env) -> tuple[int, str]:
    for k, v in env.items():
        if v:
            monkeypatch.setenv(k, v)
        else:
            monkeypatch.delenv(k, raising=False)
    caplog.set_level(logging.INFO)
    try:
        rc = bench_main(argv)
    except SystemExit as exc:  # argparse rejects a flag
        rc = exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:  # noqa: BLE001 - the point: a user error must not end in a traceback
        pytest.fail(f"uncaught {type(exc).__name__} (the user would see a traceback): {exc}")
    captured = capsys.readouterr()
    return rc, caplog.text + captured.out + captured.err


def _run_subprocess(case, argv) -> tuple[int, str]:
    if case.run == "snakemake":
        cmd, env = argv, bench_env(case.env)
    else:
        cmd, env = bench_cmd(*argv), bench_env(case.env)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, preexec_fn=case.preexec)
    text = res.stdout + res.stderr
    if case.run != "snakemake":
        assert "Traceback" not in text, f"a traceback instead of a clear error:\n{text[-3000:]}"
    return res.returncode, text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, caplog, capsys, monkeypatch):
    assert case.command == "snakemake" or command_available(case.command), f"no `bench {case.command}` command"
    try:
        argv, outputs, words = case.build(tmp_path)
        inputs_before = {p for p in tmp_path.rglob("*")}
        if case.run == "inproc":
            rc, text = _run_inproc(argv, caplog, capsys, monkeypatch, case.env)
        else:
            rc, text = _run_subprocess(case, argv)
    finally:
        _make_writable(tmp_path)
    assert rc != 0, f"exit code 0 for a bad input; output:\n{text[-2000:]}"
    low = text.lower()
    missing = [w for w in words if w.lower() not in low]
    assert not missing, f"the message does not name {missing}:\n{text[-2000:]}"
    done_work = [w for w in case.absent if w.lower() in low]
    assert not done_work, f"the command did work ({done_work}) before refusing its outputs:\n{text[-2000:]}"
    for out in outputs:
        assert not out.exists(), f"{out} was left behind by a failed run"
    leftovers = [
        p
        for p in temp_leftovers(tmp_path)
        if p not in inputs_before
        and not (case.allow_resume_state and ".partial." in p.name and not p.name.endswith(".tmp"))
    ]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_catalogue_size():
    assert len(CASES) >= 25 + 30
    assert len({c.id for c in CASES}) == len(CASES)


def test_perspective_failures_are_nan_and_counted_never_zero(monkeypatch):
    """Some requests fail for good (HTTP 500 after retries, a malformed answer): NaN + counted, others scored."""
    from bench.metrics.perspective import PerspectiveScorer

    monkeypatch.setenv("PERSPECTIVE_API_KEY", "fake-key-123")

    class Resp:
        def __init__(self, status, body):
            self.status_code, self._body = status, body

        def json(self):
            return self._body

    class Session:
        def __init__(self):
            self.calls = 0

        def post(self, url, params=None, json=None, timeout=None):
            self.calls += 1
            text = json["comment"]["text"]
            if text == "server down":
                return Resp(503, {})
            if text == "garbled":
                return Resp(200, {"unexpected": True})
            return Resp(200, {"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0.25}}}})

    session = Session()
    scorer = PerspectiveScorer(qps=0, max_retries=2, backoff_s=0, session=session, sleep=lambda s: None)
    import math

    scores = scorer.score(["fine", "server down", "garbled", "fine again"])
    assert scores[0] == 0.25 and scores[3] == 0.25
    assert math.isnan(scores[1]) and math.isnan(scores[2])
    assert scorer.n_failed == 2
    assert session.calls == 1 + 3 + 1 + 1  # 503 retried max_retries times, a malformed answer is not


def test_perspective_nan_reaches_summary_as_nan_count_not_zero(tmp_path, monkeypatch):
    """Through `score_generations`: a failed text is NaN in the rows (null in JSON) and counted in n_nan."""
    import math

    from bench.commands.score import score_generations
    from bench.metrics.base import Scorer

    class HalfFailing(Scorer):
        name, version, attribute = "fake-perspective", "1", "toxicity"

        def _score(self, texts):
            return [float("nan") if "fail" in t else 0.9 for t in texts]

    recs = [
        {"id": "a", "prompt": "p", "continuations": [" fail", " fail"]},
        {"id": "b", "prompt": "p", "continuations": [" ok", " fail"]},
    ]
    rows, summary = score_generations(
        recs, {"task": "detox", "method": "plain"}, ["toxicity"], toxicity=HalfFailing(), n_boot=10
    )
    assert [r["toxicity"] for r in rows] == [None, None, 0.9, None]
    assert summary["n_nan"] == 3
    # prompt a has no valid score: it must not count as max toxicity 0 (which would lower the average)
    assert summary["avg_max_toxicity"] == pytest.approx(0.9) or math.isnan(summary["avg_max_toxicity"])
