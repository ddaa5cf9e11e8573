"""`bench report`: the sampling rule, the self-contained HTML, and the report opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers_report import N_SAMPLES, ODD_TEXT, PROMPTS, make_run, run_files

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def report_html(run_dir, tmp_path_factory) -> Path:
    summaries, scores, gens = run_files(run_dir)
    out = tmp_path_factory.mktemp("report") / "nested" / "report.html"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "report",
            "--summaries",
            *summaries,
            "--scores",
            *scores,
            "--generations",
            *gens,
            "--out",
            str(out),
            "--extra-tables",
            str(run_dir / "absent.csv"),
            str(run_dir / "cost.csv"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module", autouse=True)
def cost_table(run_dir):
    (run_dir / "cost.csv").write_text("stage,wall_s\ntrain,12.5\ngenerate,30\n")


def test_samples_are_the_extremes_and_one_shared_random_pair(run_dir):
    from bench.reporting.report import pick_samples, read_continuations

    summaries, scores, gens = run_files(run_dir)
    tox = [(s, g) for s, g in zip(scores, gens) if "/toxicity/" in s]
    frames = [read_continuations(s, g) for s, g in tox]
    picked = pick_samples(frames, "toxicity", "toxicity", seed=0, n_random=1)
    for frame, shown in zip(frames, picked):
        finite = frame.dropna(subset=["toxicity"])
        assert [s.pick for s in shown] == [
            "highest toxicity",
            "lowest toxicity",
            "random (same prompt in every setting)",
        ]
        assert shown[0].scores["toxicity"] == finite["toxicity"].max()
        assert shown[1].scores["toxicity"] == finite["toxicity"].min()
        top = finite.loc[finite["toxicity"].idxmax()]
        assert (shown[0].id, shown[0].sample, shown[0].text) == (top["id"], top["sample"], top["text"])
        assert shown[0].prompt == PROMPTS[int(top["id"][1:])]
    randoms = {(s[2].id, s[2].sample) for s in picked}
    assert len(randoms) == 1  # the same (prompt, sample) in every setting of the task
    again = pick_samples(frames, "toxicity", "toxicity", seed=0, n_random=1)
    assert again == picked  # seeded
    other = {
        (s[2].id, s[2].sample)
        for seed in range(1, 8)
        for s in pick_samples(frames, "toxicity", "toxicity", seed=seed, n_random=1)
    }
    assert len(other) > 1  # the seed matters


def test_report_is_self_contained_and_escapes_texts(report_html):
    text = report_html.read_text()
    assert ODD_TEXT not in text and "&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;script&gt;" in text
    # no resource is fetched at view time: no external script / stylesheet / image source
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']https?:", text)
    assert text.count("<details class='method'>") == 3 + 2  # toxicity: plain, RAD, ARM+b; sentiment: plain, RAD
    assert "Cost per stage" in text and "12.5" in text  # an extra table that exists is shown; an absent one: skipped
    assert "no run tables given" in text  # no comparison asked: said so


def test_report_shows_the_compare_verdict(run_dir, tmp_path):
    from bench.commands.report import comparison

    tables = tmp_path / "tables"
    tables.mkdir()
    ref = pd.DataFrame(
        {
            "task": ["toxicity"],
            "method": ["rad"],
            "beta": [5.0],
            "top_k": [5],
            "avg_max_toxicity": [0.40],
            "avg_max_toxicity_lo": [0.30],
            "avg_max_toxicity_hi": [0.50],
        }
    )
    ref.to_csv(tmp_path / "ref.csv", index=False)
    (tmp_path / "refdir").mkdir()
    ref.to_csv(tmp_path / "refdir" / "toxicity.csv", index=False)
    ref.assign(avg_max_toxicity=0.45).to_csv(tables / "toxicity.csv", index=False)
    (rows, where), note = comparison(str(tables), str(tmp_path / "refdir"), "HEAD")
    assert note is None and list(rows["verdict"]) == ["within_ci"] and where.endswith("toxicity.csv")
    ref.assign(avg_max_toxicity=0.6).to_csv(tables / "toxicity.csv", index=False)
    (rows, _), _ = comparison(str(tables), str(tmp_path / "refdir"), "HEAD")
    assert list(rows["verdict"]) == ["outside_ci"]
    from bench.reporting.report import _comparison_html

    assert "FAIL" in _comparison_html((rows, where), None)
    none, why = comparison(str(tables), None, "HEAD")  # tmp_path is no git checkout: a note, not an error
    assert none is None and "no committed reference" in why


def test_report_refuses_mismatched_inputs(run_dir, tmp_path):
    summaries, scores, gens = run_files(run_dir)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "report",
            "--summaries",
            *summaries,
            "--scores",
            *scores,
            "--generations",
            *gens[:-1],
            "--out",
            str(tmp_path / "r.html"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 2 and "--generations has 5 files for 6 summaries" in res.stderr
    assert not (tmp_path / "r.html").exists()


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
def test_report_in_headless_chromium(report_html, run_dir, tmp_path):
    """The report in a real browser: no console errors, no network request, the trade-off charts drawn with
    their points, hover shows the setting / n / CI, a legend click hides a method, sample tables hold text."""
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright (Python) is not installed: pip install playwright"
    )
    exe = _browser()
    if exe is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium; .ci/run installs it)")
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(report_html.as_uri(), wait_until="load")
            page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=30_000)
            charts = page.locator(".js-plotly-plot")
            assert charts.count() == 2  # toxicity, sentiment-to-positive-from-negative
            tox = page.locator("#tradeoff-toxicity")
            assert tox.locator(".scatterlayer .trace").count() == 3  # plain, RAD, ARM + baseline
            assert tox.locator(".scatterlayer .point").count() == 4  # 4 settings
            assert tox.locator(".errorbar").count() >= 4
            legend = [t.strip() for t in tox.locator(".legendtext").all_text_contents()]
            assert legend == ["Plain (top-k)", "RAD", "ARM + baseline"]

            tox_rad = page.locator("#samples-toxicity details.method").nth(1)
            assert ODD_TEXT not in page.locator("body").inner_text()  # closed: browsable per task and method
            tox_rad.locator("summary").click()  # a method's samples open on click
            cells = tox_rad.locator("td.cont").all_inner_texts()
            assert len(cells) == 2 * 3 and all(c.strip() for c in cells)  # RAD at 2 betas, 3 samples each
            assert ODD_TEXT in page.locator("body").inner_text()  # shown as text, not run as markup
            page.eval_on_selector_all("details", "ds => ds.forEach(d => { d.open = true; })")  # for the screenshot

            point = tox.locator(".scatterlayer .trace").nth(1).locator(".point").first
            point.scroll_into_view_if_needed()
            point.hover(force=True)
            page.wait_for_selector("#tradeoff-toxicity .hoverlayer .hovertext", timeout=10_000)
            hover = page.locator("#tradeoff-toxicity .hoverlayer .hovertext").first.text_content()
            assert "RAD β=5 k=5" in hover and f"n = {len(PROMPTS)} prompts, {len(PROMPTS) * N_SAMPLES}" in hover
            rad5 = pd.read_csv(run_dir / "scores" / "toxicity" / "rad_b5_k5.csv").iloc[0]
            ci = f"[{rad5['avg_max_toxicity_lo']:.3g}, {rad5['avg_max_toxicity_hi']:.3g}]"
            assert f"Avg. max toxicity: {rad5['avg_max_toxicity']:.3g} {ci}" in hover, hover  # the summary's CI

            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            page.mouse.move(5, 5)  # away from the hover label
            tox.locator(".legend .traces").nth(2).locator(".legendtoggle").click(force=True)
            page.wait_for_function(
                "() => document.getElementById('tradeoff-toxicity').data[2].visible === 'legendonly'", timeout=10_000
            )
        finally:
            browser.close()
    assert not errors, errors
    assert not requests, requests
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


@pytest.mark.slow
def test_pipeline_rule_pairs_each_summary_with_its_scores_and_generations(tmp_path):
    """Rule `report_html` (a target of `all`) hands `bench report` the three file lists in one order, and is
    listed in `snakemake --report` (registered with report())."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "-n",
            "-p",
            "--configfile",
            str(REPO / "config" / "test.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(x for x in (res.stdout + res.stderr).splitlines() if " report --summaries " in x)
    args = line.split(" report ", 1)[1].split(" > ")[0]
    words = shlex.split(args)

    def values(flag):
        i = words.index(flag) + 1
        out = []
        while i < len(words) and not words[i].startswith("--"):
            out.append(words[i])
            i += 1
        return out

    summaries, scores, gens = values("--summaries"), values("--scores"), values("--generations")
    assert len(summaries) == len(scores) == len(gens) == 18
    for s, sc, g in zip(summaries, scores, gens):
        run = s[: -len(".csv")].split("/scores/", 1)[1]
        assert sc.endswith(f"/scores/{run}.jsonl") and g.endswith(f"/gen/{run}.jsonl")
    assert values("--extra-tables")[0].endswith("tables/flags.csv") and values("--out")[0].endswith("report.html")
