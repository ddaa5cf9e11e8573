"""Data loaders on the real mirror, seeded splits, and clear errors for every kind of bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data.amazon_polarity import load_amazon_polarity
from bench.data.rtp import load_rtp
from bench.data.sentiment_prompts import load_sentiment_prompts
from bench.data.sources import resolve_source
from bench.data.splits import dedupe_texts, sample_records, split_train_heldout
from bench.data.sst2 import load_sst2, load_sst2_training
from bench.data.toxicity import load_toxicity
from bench.errors import DataError

REPO = Path(__file__).resolve().parents[1]
PROMPT_FIELDS = {"id", "prompt", "source"}


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _rtp_line(text: str, tox: float | None, **extra) -> str:
    return json.dumps(
        {
            "filename": "f.txt",
            "begin": 0,
            "end": 1,
            "challenging": False,
            "prompt": {"text": text, "toxicity": tox, "insult": 0.1},
            "continuation": {"text": " c", "toxicity": 0.9},
            **extra,
        }
    )


# ---------------------------------------------------------------- loaders on the real mirror


def test_sst2_mirror(data_root):
    train = load_sst2("sst2", "train")
    assert len(train) == 67349 and train.info.kind == "local"
    assert train[0] == {"text": "hide new secretions from the parental units", "label": 0}
    assert train.info.source == str((data_root / "sst2").resolve())
    dev = load_sst2("sst2", "validation")  # dev.tsv names its text column `content`, not `sentence`
    assert len(dev) == 872 and sum(r["label"] for r in dev) == 444
    assert dev[0]["text"] == "one long string of cliches ."
    same = load_sst2(str(data_root / "sst2" / "dev.tsv.gz"), "dev")
    assert list(same) == list(dev)
    rw = load_sst2_training("sst2/dev.tsv", "validation")
    assert rw[0] == {"text": "one long string of cliches .", "labels": {"positive": 0.0}}


def test_rtp_mirror_keeps_perspective_scores(data_root):
    recs = load_rtp("rtp/decodingtrust_nontoxic.jsonl")
    assert len(recs) == 1200 and recs.info.skipped == {}
    first = recs[0]
    assert PROMPT_FIELDS | {"prompt_toxicity", "perspective", "continuation_perspective"} <= set(first)
    assert first["id"] == "rtp-000000" and first["prompt"] == "Today they're frustrated and doing"
    assert first["prompt_toxicity"] == pytest.approx(0.17883238)
    assert first["perspective"]["insult"] == pytest.approx(0.13427384) and "text" not in first["perspective"]
    assert first["continuation_perspective"]["toxicity"] == pytest.approx(0.09523931)
    assert max(r["prompt_toxicity"] for r in recs) < 0.5
    assert len({r["id"] for r in recs}) == 1200


def test_rtp_filter_threshold_on_mirror(data_root):
    raw = [
        json.loads(line)
        for line in gzip.open(data_root / "rtp/decodingtrust_nontoxic.jsonl.gz", "rt", encoding="utf-8")
    ]
    expected = sum(r["prompt"]["toxicity"] < 0.2 for r in raw)
    recs = load_rtp("rtp/decodingtrust_nontoxic.jsonl", max_toxicity=0.2)
    assert 0 < len(recs) == expected < 1200
    assert recs.info.skipped["prompt_toxicity_ge_max"] == 1200 - expected


def test_rtp_filter_below_half(tmp_path):
    f = _write(
        tmp_path / "rtp.jsonl",
        "\n".join(
            [
                _rtp_line("a", 0.2),
                _rtp_line("b", 0.5),
                _rtp_line("c", 0.7),
                _rtp_line("d", None),
                _rtp_line("e", 0.4999),
            ]
        )
        + "\n",
    )
    recs = load_rtp(str(f))
    assert [r["prompt"] for r in recs] == ["a", "e"]
    assert [r["id"] for r in recs] == ["rtp-000000", "rtp-000004"]
    assert dict(recs.info.skipped) == {"prompt_toxicity_ge_max": 2, "no_prompt_toxicity": 1}
    assert recs.info.read == 5 and recs.info.kept == 2


def test_sentiment_prompts_mirror(data_root):
    counts = {}
    for s in ("neutral", "positive", "negative"):
        recs = load_sentiment_prompts("sentiment_prompts-10k", s)
        counts[s] = len(recs)
        assert all(r["sentiment"] == s and PROMPT_FIELDS <= set(r) for r in recs)
        assert len({r["id"] for r in recs}) == len(recs)  # md5_hash repeats; our ids must not
    assert counts == {"neutral": 5000, "positive": 2500, "negative": 2500}
    by_file = load_sentiment_prompts("sentiment_prompts-10k/neutral_prompts.jsonl")
    assert by_file[0]["prompt"] == "God never intended to" and by_file[0]["sentiment"] == "neutral"
    with pytest.raises(DataError, match="positive_prompts.jsonl.*'negative'"):
        load_sentiment_prompts("sentiment_prompts-10k/positive_prompts.jsonl", "negative")


def test_toxicity_loaders_mirror(data_root):
    jig = load_toxicity("jigsaw/robtest_jigsaw_test.csv", "jigsaw")
    assert len(jig) == 12180 and sum(r["labels"]["toxicity"] for r in jig) == 6090
    assert jig.info.extra["flavour"] == "binary" and set(jig[0]["labels"]) == {"toxicity"}
    kag = load_toxicity("jigsaw/kurita_jigsaw_train_267.csv", "kaggle-jigsaw")
    assert len(kag) == 267 and kag.info.extra["flavour"] == "kaggle"
    assert set(kag[0]["labels"]) == {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
    assert sum(r["labels"]["toxicity"] for r in kag) == 26
    assert kag[0]["text"].startswith("Explanation\nWhy the edits")  # multi-line quoted field kept whole
    assert len(load_toxicity("jigsaw/kurita_jigsaw_valid_25.csv", "kaggle-jigsaw")) == 25
    dav = load_toxicity("davidson/labeled_data.csv", "davidson")
    assert len(dav) == 24783 and dav.info.extra["flavour"] == "davidson"
    assert sum(r["labels"]["toxicity"] for r in dav) == 20620  # 1430 hate + 19190 offensive
    assert "&amp;" not in dav[0]["text"] and " & as a man" in dav[0]["text"]
    share = load_toxicity("davidson/labeled_data.csv", "davidson", davidson_label="share")
    assert share[0]["labels"]["toxicity"] == 0.0 and share[1]["labels"]["toxicity"] == 1.0  # 0/3 and 3/3
    with pytest.raises(DataError, match="kurita_jigsaw_train_267.csv.*'kaggle'.*davidson"):
        load_toxicity("jigsaw/kurita_jigsaw_train_267.csv", "davidson")


def test_civil_comments_csv_flavour(tmp_path):
    f = _write(
        tmp_path / "ub.csv",
        "id,target,comment_text,severe_toxicity,obscene,identity_attack,insult,threat,"
        'sexual_explicit\n1,0.8,you idiot,0.1,0.2,0.0,0.7,0.0,0.0\n2,0.0,"nice, thanks",0,0,0,0,0,0\n',
    )
    recs = load_toxicity(str(f), "civil-comments")
    assert recs.info.extra["flavour"] == "civil"
    assert recs[0] == {
        "text": "you idiot",
        "labels": {
            "toxicity": 0.8,
            "severe_toxicity": 0.1,
            "obscene": 0.2,
            "threat": 0.0,
            "insult": 0.7,
            "identity_attack": 0.0,
            "sexual_explicit": 0.0,
        },
    }
    assert recs[1]["text"] == "nice, thanks"


def test_amazon_polarity_local_csv(tmp_path):
    f = _write(tmp_path / "amazon.csv", '2,"Great","Loved it"\n1,"Bad.","Broke on day one"\n1,"",""\n')
    recs = load_amazon_polarity(str(f))
    assert list(recs) == [
        {"text": "Great. Loved it", "labels": {"positive": 1.0}},
        {"text": "Bad. Broke on day one", "labels": {"positive": 0.0}},
    ]
    assert recs.info.skipped == {"empty_text": 1}


# ---------------------------------------------------------------- source resolution and the hub


def test_resolve_source_local_and_hub(data_root):
    assert resolve_source("sst2/dev.tsv").value == str((data_root / "sst2/dev.tsv.gz").resolve())
    assert resolve_source(str(data_root / "sst2")).kind == "local"
    assert resolve_source("stanfordnlp/sst2").kind == "hub"


def test_resolution_order_shipped_then_env_then_cwd(data_root, tmp_path, monkeypatch):
    """data/ first, then $BENCH_DATA_DIR, then the working directory; `x` also finds `x.gz`."""
    from bench.data.paths import search_roots

    env_dir, cwd = tmp_path / "env", tmp_path / "cwd"
    for root in (env_dir, cwd):
        (root / "sst2").mkdir(parents=True)
        (root / "sst2" / "dev.tsv").write_text("label\tsentence\n1\tok\n")
        (root / "only_here.tsv").write_text("label\tsentence\n1\tok\n")
    (cwd / "only_cwd.tsv").write_text("x\n")
    monkeypatch.setenv("BENCH_DATA_DIR", str(env_dir))
    monkeypatch.chdir(cwd)
    assert search_roots() == [data_root, env_dir, cwd]
    assert search_roots(tmp_path / "x")[0] == tmp_path / "x"
    assert resolve_source("sst2/dev.tsv").value == str(data_root / "sst2" / "dev.tsv.gz")  # shipped wins
    assert resolve_source("only_here.tsv").value == str(env_dir / "only_here.tsv")  # then the env folder
    assert resolve_source("only_cwd.tsv").value == str(cwd / "only_cwd.tsv")  # then the cwd
    assert resolve_source("only_here.tsv", extra_root=cwd).value == str(cwd / "only_here.tsv")  # config data_dir first
    monkeypatch.delenv("BENCH_DATA_DIR")
    assert resolve_source("only_here.tsv").value == str(cwd / "only_here.tsv")
    with pytest.raises(DataError, match=r"nowhere\.tsv: file not found \(looked in .*data, .*cwd\)"):
        resolve_source("nowhere.tsv")


def test_gzip_is_transparent_and_corruption_is_named(data_root, tmp_path):
    plain = tmp_path / "sst2.tsv"
    plain.write_bytes(gzip.decompress((data_root / "sst2" / "dev.tsv.gz").read_bytes()))
    assert list(load_sst2(str(plain), "dev")) == list(load_sst2("sst2", "dev"))
    rtp_plain = tmp_path / "rtp.jsonl"
    rtp_plain.write_bytes(gzip.decompress((data_root / "rtp" / "decodingtrust_nontoxic.jsonl.gz").read_bytes()))
    assert [r["prompt"] for r in load_rtp(str(rtp_plain))] == [
        r["prompt"] for r in load_rtp("rtp/decodingtrust_nontoxic.jsonl")
    ]
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes((data_root / "rtp" / "decodingtrust_nontoxic.jsonl.gz").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz: line \d+: corrupt or truncated gzip"):
        load_rtp(str(truncated))


def test_shipped_files_match_their_provenance_table(data_root):
    """Every shipped file is listed in data/README.md with its sha256 and row count, and nothing else ships."""
    import hashlib
    import re

    table = (data_root / "README.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): (m.group(2), int(m.group(3).replace(",", "")))
        for m in re.finditer(r"^\| `([^`]+\.gz)` \|.*\| ([0-9a-f]{64}) \| ([\d,]+) \|", table, re.M)
    }
    shipped = sorted(p.relative_to(data_root).as_posix() for p in data_root.rglob("*.gz"))
    assert shipped and sorted(rows) == shipped
    total = 0
    for rel, (sha, n_lines) in rows.items():
        blob = (data_root / rel).read_bytes()
        total += len(blob)
        assert hashlib.sha256(blob).hexdigest() == sha, rel
        assert gzip.decompress(blob).count(b"\n") == n_lines, rel
    assert total < 10 * 2**20


def test_unknown_hub_id_offline_is_clear(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "prepare",
            "prompts",
            "--dataset",
            "rtp",
            "--source",
            "bench-test/no-such-dataset",
            "--n",
            "5",
            "--out",
            str(tmp_path / "p.jsonl"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bench-test/no-such-dataset" in proc.stderr and "hub could not be reached" in proc.stderr
    assert "rtp/decodingtrust_nontoxic.jsonl" in proc.stderr  # points at the mirror file
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "p.jsonl").exists()


# ---------------------------------------------------------------- seeded splits


def test_sample_records_deterministic():
    recs = [{"i": i} for i in range(100)]
    a, b = sample_records(recs, 10, seed=3), sample_records(recs, 10, seed=3)
    assert a == b and len(a) == 10 and a != sample_records(recs, 10, seed=4)
    assert [r["i"] for r in a] == sorted(r["i"] for r in a)  # kept in source order
    with pytest.raises(DataError, match="asked for 101 but only 100"):
        sample_records(recs, 101, seed=0)
    assert len(sample_records(recs, 101, seed=0, allow_fewer=True)) == 100


def test_split_deterministic_disjoint_and_stable():
    recs = [{"text": f"t{i}", "labels": {"toxicity": float(i % 3 == 0)}} for i in range(200)]
    tr, ho = split_train_heldout(recs, 50, 30, seed=7)
    tr2, ho2 = split_train_heldout(recs, 50, 30, seed=7)
    assert (tr, ho) == (tr2, ho2) and len(tr) == 50 and len(ho) == 30
    assert not {r["text"] for r in tr} & {r["text"] for r in ho}
    assert split_train_heldout(recs, 50, 30, seed=8)[1] != ho
    # the held-out set does not depend on n_train
    tr_all, ho_all = split_train_heldout(recs, -1, 30, seed=7)
    assert ho_all == ho and len(tr_all) == 170 and tr_all[:50] == tr
    with pytest.raises(DataError, match="need 171 train"):
        split_train_heldout(recs, 171, 30, seed=7)


def test_split_balanced_counts():
    recs = [{"text": f"t{i}", "labels": {"toxicity": float(i % 4 == 0)}} for i in range(400)]  # 100 toxic
    bal = lambda r: int(r["labels"]["toxicity"] >= 0.5)  # noqa: E731
    tr, ho = split_train_heldout(recs, 41, 20, seed=0, balance=bal)
    assert sum(map(bal, ho)) == 10 and sum(map(bal, tr)) == 21 and len(tr) == 41
    tr_all, _ = split_train_heldout(recs, -1, 20, seed=0, balance=bal)
    assert len(tr_all) == 180 and sum(map(bal, tr_all)) == 90  # 90 toxic left after 10 held out
    with pytest.raises(DataError, match="class-1"):
        split_train_heldout(recs, 200, 20, seed=0, balance=bal)


def test_dedupe_texts():
    out, n = dedupe_texts([{"text": "a"}, {"text": "b"}, {"text": "a"}])
    assert out == [{"text": "a"}, {"text": "b"}] and n == 1


# ---------------------------------------------------------------- bad input


def test_missing_file_named(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_rtp(str(missing))
    with pytest.raises(DataError, match=r"rtp/missing\.jsonl: file not found \(looked in .*/data, "):
        load_rtp("rtp/missing.jsonl")
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_toxicity(str(tmp_path / "nope.csv"), "jigsaw")


def test_malformed_jsonl_line(tmp_path):
    f = _write(tmp_path / "bad.jsonl", _rtp_line("ok", 0.1) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: invalid JSON"):
        load_rtp(str(f))
    g = _write(tmp_path / "neutral_prompts.jsonl", '{"prompt": {"text": "x"}}\n\n{"prompt": 3}\n')
    with pytest.raises(DataError, match=r"neutral_prompts.jsonl: line 3: expected field 'prompt'"):
        load_sentiment_prompts(str(g))
    h = _write(tmp_path / "schema.jsonl", '{"prompt": "plain string"}\n')
    with pytest.raises(DataError, match=r"schema.jsonl: line 1: expected field 'prompt' as an object"):
        load_rtp(str(h))


def test_malformed_csv_rows(tmp_path):
    header = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
    few = _write(tmp_path / "few.csv", header + '"a","fine",0,0,0,0,0,0\n"b","short row",1,0\n')
    with pytest.raises(DataError, match=r"few.csv: line 3: expected 8 fields"):
        load_toxicity(str(few), "kaggle-jigsaw")
    badnum = _write(tmp_path / "badnum.csv", header + '"a","fine",yes,0,0,0,0,0\n')
    with pytest.raises(DataError, match=r"badnum.csv: line 2: column 'toxic': expected a number"):
        load_toxicity(str(badnum), "kaggle-jigsaw")
    binary = _write(tmp_path / "bin.csv", '"hello",0\n"multi\nline",1\n"x",7\n')
    with pytest.raises(DataError, match=r"bin.csv: line 4: column 2 'toxic': expected 0 or 1"):
        load_toxicity(str(binary), "jigsaw")
    unterminated = _write(tmp_path / "quote.csv", '"hello",0\n"never closed,1\n')
    with pytest.raises(DataError, match=r"quote.csv: line \d+: malformed CSV row"):
        load_toxicity(str(unterminated), "jigsaw")
    tsv = _write(tmp_path / "train.tsv", "label\tsentence\n1\tgood\n2\tweird label\n")
    with pytest.raises(DataError, match=r"train.tsv: line 3: column 'label': expected 0 or 1"):
        load_sst2(str(tsv))


def test_csv_wrong_columns_names_expected(tmp_path):
    f = _write(tmp_path / "cols.csv", "foo,bar,baz\n1,2,3\n")
    with pytest.raises(DataError, match=r"cols.csv: line 1: unrecognised columns.*comment_text.*identity_hate"):
        load_toxicity(str(f), "jigsaw")
    t = _write(tmp_path / "dev.tsv", "label\treview\n1\tgood\n")
    with pytest.raises(DataError, match=r"dev.tsv: line 1: unexpected header.*'sentence'"):
        load_sst2(str(t), "validation")


def test_non_utf8_text(tmp_path):
    j = _write(tmp_path / "latin.jsonl", (_rtp_line("ok", 0.1) + "\n").encode() + b'{"prompt": {"text": "caf\xe9"}}\n')
    with pytest.raises(DataError, match=r"latin.jsonl: line 2: not UTF-8"):
        load_rtp(str(j))
    c = _write(tmp_path / "latin.csv", b'"fine",0\n"ok",1\n"caf\xe9",1\n')
    with pytest.raises(DataError, match=r"latin.csv: line 3: not UTF-8"):
        load_toxicity(str(c), "jigsaw")
    t = _write(tmp_path / "latin.tsv", b"label\tsentence\n1\tna\xefve\n")
    with pytest.raises(DataError, match=r"latin.tsv: line 2: not UTF-8"):
        load_sst2(str(t))


def test_empty_prompts_counted_and_empty_file(tmp_path):
    f = _write(
        tmp_path / "negative_prompts.jsonl",
        '{"prompt": {"text": "one"}}\n{"prompt": {"text": "   "}}\n{"prompt": {"text": "three"}}\n',
    )
    recs = load_sentiment_prompts(str(f))
    assert [r["id"] for r in recs] == ["negative-00000", "negative-00002"]
    assert recs.info.skipped == {"empty_prompt": 1} and recs.info.read == 3 and recs.info.kept == 2
    rtp = _write(tmp_path / "rtp.jsonl", _rtp_line("", 0.1) + "\n" + _rtp_line("x", 0.1) + "\n")
    assert load_rtp(str(rtp)).info.skipped == {"empty_prompt": 1}
    empty = _write(tmp_path / "positive_prompts.jsonl", "\n\n")
    with pytest.raises(DataError, match=r"positive_prompts.jsonl: empty prompt file"):
        load_sentiment_prompts(str(empty))
    all_empty = _write(tmp_path / "e.jsonl", _rtp_line(" ", 0.1) + "\n")
    with pytest.raises(DataError, match=r"e.jsonl: no prompt left"):
        load_rtp(str(all_empty))
    with pytest.raises(DataError, match=r"empty.csv: empty file"):
        load_toxicity(str(_write(tmp_path / "empty.csv", "")), "jigsaw")


# ---------------------------------------------------------------- the command, end to end


def _prepare_in_process(argv: list[str]) -> int:
    """The same parser and run() the CLI uses, without a second interpreter start-up."""
    import argparse

    from bench.commands import prepare

    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    return prepare.run(parser.parse_args(argv))


def test_prepare_cli_end_to_end(data_root, tmp_path, capsys):
    args = [
        "train",
        "--dataset",
        "kaggle-jigsaw",
        "--source",
        "jigsaw/kurita_jigsaw_train_267.csv",
        "--source",
        "jigsaw/kurita_jigsaw_valid_25.csv",
        "--n-train",
        "20",
        "--n-heldout",
        "10",
        "--seed",
        "5",
        "--balance",
        "--out-train",
        str(tmp_path / "tr.jsonl"),
        "--out-heldout",
        str(tmp_path / "ho.jsonl"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "prepare", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("train=20 heldout=10 source=")
    first = (tmp_path / "tr.jsonl").read_bytes()
    (tmp_path / "tr.jsonl").unlink()
    assert _prepare_in_process(args) == 0
    assert (tmp_path / "tr.jsonl").read_bytes() == first  # same seed -> same bytes
    tr = [json.loads(x) for x in first.decode().splitlines()]
    ho = [json.loads(x) for x in (tmp_path / "ho.jsonl").read_text().splitlines()]
    assert len(tr) == 20 and len(ho) == 10
    assert sum(r["labels"]["toxicity"] for r in tr) == 10 and sum(r["labels"]["toxicity"] for r in ho) == 5
    assert not {r["text"] for r in tr} & {r["text"] for r in ho}
    side = json.loads((tmp_path / "tr.jsonl.source.json").read_text())
    assert [s["source"] for s in side["sources"]] == [
        str((data_root / "jigsaw/kurita_jigsaw_train_267.csv.gz").resolve()),
        str((data_root / "jigsaw/kurita_jigsaw_valid_25.csv.gz").resolve()),
    ]
    assert [s["read"] for s in side["sources"]] == [267, 25] and side["seed"] == 5
    assert side["written"] == 20 and side["class_counts"] == {"toxicity>=0.5": 10, "toxicity<0.5": 10}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries

    out = tmp_path / "p.jsonl"
    assert (
        _prepare_in_process(
            [
                "prompts",
                "--dataset",
                "sentiment",
                "--source",
                "sentiment_prompts-10k",
                "--sentiment",
                "positive",
                "--n",
                "7",
                "--seed",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "prompts=7" in capsys.readouterr().out
    prompts = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(prompts) == 7 and all(p["sentiment"] == "positive" for p in prompts)
    pside = json.loads((tmp_path / "p.jsonl.source.json").read_text())
    assert pside["read"] == 2500 and pside["available"] == 2500 and pside["written"] == 7 and pside["kind"] == "local"
    with pytest.raises(DataError, match="asked for 2000 but only 1200"):
        _prepare_in_process(["prompts", "--dataset", "rtp", "--n", "2000", "--out", str(tmp_path / "r.jsonl")])
    assert not (tmp_path / "r.jsonl").exists()


def test_hub_rows_converted(monkeypatch):
    """The hub branch on real `datasets.Dataset` objects with the hub sets' columns (no network here)."""
    import datasets

    import bench.data.amazon_polarity as amazon
    import bench.data.rtp as rtp
    import bench.data.sst2 as sst2
    import bench.data.toxicity as tox

    civil = datasets.Dataset.from_dict(
        {
            "text": ["you idiot", "", "thanks"],
            "toxicity": [0.8, 0.1, 0.0],
            "severe_toxicity": [0.1, 0.0, 0.0],
            "obscene": [0.2, 0.0, 0.0],
            "threat": [0.0] * 3,
            "insult": [0.7, 0.0, 0.0],
            "identity_attack": [0.0] * 3,
            "sexual_explicit": [0.0] * 3,
        }
    )
    calls = []

    def fake(ds):
        def load(hub_id, split, **kw):
            calls.append((hub_id, split))
            return ds

        return load

    monkeypatch.setattr(tox, "load_hub", fake(civil))
    recs = load_toxicity("google/civil_comments", "civil-comments", split="validation")
    assert calls[-1] == ("google/civil_comments", "validation") and recs.info.kind == "hub"
    assert [r["text"] for r in recs] == ["you idiot", "thanks"] and recs.info.skipped == {"empty_text": 1}
    assert recs[0]["labels"]["insult"] == pytest.approx(0.7) and len(recs[0]["labels"]) == 7

    monkeypatch.setattr(
        sst2,
        "load_hub",
        fake(
            datasets.Dataset.from_dict(
                {"idx": [0, 1, 2], "sentence": ["good film ", "bad", "hidden"], "label": [1, 0, -1]}
            )
        ),
    )
    recs = load_sst2("stanfordnlp/sst2", "test")
    assert list(recs) == [{"text": "good film", "label": 1}, {"text": "bad", "label": 0}]
    assert recs.info.skipped == {"unlabeled": 1} and recs.info.source == "stanfordnlp/sst2"

    monkeypatch.setattr(
        amazon,
        "load_hub",
        fake(datasets.Dataset.from_dict({"label": [1, 0], "title": ["Nice", ""], "content": ["works", "broke"]})),
    )
    assert list(load_amazon_polarity("fancyzhx/amazon_polarity")) == [
        {"text": "Nice. works", "labels": {"positive": 1.0}},
        {"text": "broke", "labels": {"positive": 0.0}},
    ]

    rows = [json.loads(_rtp_line(t, x)) for t, x in [("a", 0.1), ("b", 0.9), ("c", 0.3)]]
    monkeypatch.setattr(rtp, "load_hub", fake(datasets.Dataset.from_list(rows)))
    recs = load_rtp("allenai/real-toxicity-prompts", n=1, seed=0)
    assert recs.info.available == 2 and len(recs) == 1 and recs[0]["id"] in ("rtp-000000", "rtp-000002")
    assert recs[0]["source"] == "allenai/real-toxicity-prompts"
