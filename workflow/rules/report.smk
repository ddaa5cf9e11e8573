# Stages 5-6: tables (CSV / Markdown / LaTeX) and trade-off figures from all summaries, paired differences and
# matched fluency from the per-continuation scores, and the reward models' training table / curves; each
# registered with report(...) so `snakemake --report results/report.html` shows them with their captions.

TABLE_FORMATS = ("csv", "md", "tex")
CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")


def table_outputs(name):
    return [f"{RESULTS}/tables/{name}.{ext}" for ext in TABLE_FORMATS]


def report_targets():
    out = []
    for task in TASKS:
        out += table_outputs(task)
        out.append(f"{FIGURES}/{task}_tradeoff.png")
    out += [f"{RESULTS}/tables/matched_fluency.{ext}" for ext in ("csv", "md")]
    out += [f"{RESULTS}/tables/reward_models.{ext}" for ext in ("csv", "md")]
    out += [f"{FIGURES}/matched_fluency.png", f"{FIGURES}/reward_models_heldout.png"]
    return out


def score_files():
    """Per-continuation scores, in the order of summary_files() (bench tables pairs them by position)."""
    return [s[: -len(".csv")] + ".jsonl" for s in summary_files()]


def reward_folders():
    return [reward_dir(task, p) for task in TASKS for p in PARAMS]


def stats_args():
    st = config["statistics"]
    return f"--n-boot {st['n_boot']} --seed {SEED} --ppl-levels {','.join(f'{x:g}' for x in st['ppl_levels'])}"


def _report(path, caption, category, label):
    return report(path, caption=os.path.join(CAPTIONS, caption), category=category, labels=label)


def agreement_targets():
    return [f"{RESULTS}/tables/scorer_agreement.csv"] if config["agreement"]["enabled"] else []


def _report_table(task):
    return report(
        f"{RESULTS}/tables/{task}.csv",
        caption=os.path.join(CAPTIONS, f"{task}_table.rst"),
        category="Tables",
        labels={"table": task},
    )


def _report_figure(task):
    return report(
        f"{FIGURES}/{task}_tradeoff.png",
        caption=os.path.join(CAPTIONS, f"{task}_tradeoff.rst"),
        category="Figures",
        labels={"figure": f"{task} trade-off"},
    )


rule tables:
    input:
        summaries=summary_files(),
        scores=score_files(),
        run=RUN_STAMP,
    output:
        [_report_table(t) if ext == "csv" else f"{RESULTS}/tables/{t}.{ext}" for t in TASKS for ext in TABLE_FORMATS],
        _report(f"{RESULTS}/tables/matched_fluency.csv", "matched_fluency_table.rst", "Tables",
                {"table": "matched fluency"}),
        f"{RESULTS}/tables/matched_fluency.md",
    params:
        out=f"{RESULTS}/tables",
        stats=stats_args(),
        code=code_version("commands/tables.py", "reporting/", "metrics/aggregate.py", "metrics/comparisons.py"),
    log:
        f"{W}/logs/tables.log",
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "{BENCH} tables --summaries {input.summaries:q} --scores {input.scores:q} {params.stats}"
        " --out-dir {params.out:q} > {log:q} 2>&1"


rule figures:
    input:
        summaries=summary_files(),
        scores=score_files(),
        run=RUN_STAMP,
    output:
        [_report_figure(t) for t in TASKS],
        _report(f"{FIGURES}/matched_fluency.png", "matched_fluency.rst", "Figures", {"figure": "matched fluency"}),
    params:
        out=FIGURES,
        stats=stats_args(),
        code=code_version("commands/figures.py", "commands/tables.py", "reporting/", "metrics/aggregate.py",
                          "metrics/comparisons.py"),
    log:
        f"{W}/logs/figures.log",
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "MPLBACKEND=Agg {BENCH} figures --summaries {input.summaries:q} --scores {input.scores:q} {params.stats}"
        " --out-dir {params.out:q} > {log:q} 2>&1"


rule reward_table:
    input:
        models=[f"{d}/{f}" for d in reward_folders() for f in REWARD_FILES],
        run=RUN_STAMP,
    output:
        _report(f"{RESULTS}/tables/reward_models.csv", "reward_models_table.rst", "Tables", {"table": "reward models"}),
        f"{RESULTS}/tables/reward_models.md",
    params:
        folders=reward_folders(),
        out=f"{RESULTS}/tables",
        code=code_version("commands/tables.py", "reporting/"),
    log:
        f"{W}/logs/reward_table.log",
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "{BENCH} tables --reward-models {params.folders:q} --formats csv,md --out-dir {params.out:q} > {log:q} 2>&1"


rule reward_figure:
    input:
        models=[f"{d}/{f}" for d in reward_folders() for f in REWARD_FILES],
        run=RUN_STAMP,
    output:
        _report(f"{FIGURES}/reward_models_heldout.png", "reward_models_heldout.rst", "Figures",
                {"figure": "reward models held-out"}),
    params:
        folders=reward_folders(),
        out=FIGURES,
        code=code_version("commands/figures.py", "commands/tables.py", "reporting/"),
    log:
        f"{W}/logs/reward_figure.log",
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "MPLBACKEND=Agg {BENCH} figures --reward-models {params.folders:q} --out-dir {params.out:q} > {log:q} 2>&1"


rule agreement:
    input:
        run=RUN_STAMP,
    output:
        report(
            f"{RESULTS}/tables/scorer_agreement.csv",
            caption=os.path.join(CAPTIONS, "scorer_agreement.rst"),
            category="Tables",
            labels={"table": "scorer agreement"},
        ),
    params:
        args=config["agreement"]["args"],
        code=code_version("commands/agreement.py", "metrics/", "data/reference_scores.py", "reporting/agreement.py"),
    log:
        f"{W}/logs/agreement.log",
    threads: res("score", "threads")
    resources:
        mem_mb=res("score", "mem_mb"),
        runtime=res("score", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} agreement {params.args} --out {output:q} > {log:q} 2>&1"
