# Stages 5-6: tables (CSV / Markdown / LaTeX) and trade-off figures from all summaries, paired differences and
# matched fluency from the per-continuation scores, and the reward models' training table / curves; each
# registered with report(...) so `snakemake --report results/report.html` shows them with their captions.

TABLE_FORMATS = ("csv", "md", "tex")
CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")


def table_outputs(name):
    return [f"{RESULTS}/tables/{name}.{ext}" for ext in TABLE_FORMATS]


def report_targets():
    out = []
    for task in TABLE_NAMES:
        out += table_outputs(task)
        out.append(f"{FIGURES}/{task}_tradeoff.png")
    out += [f"{RESULTS}/tables/matched_fluency.{ext}" for ext in ("csv", "md")]
    out += [f"{RESULTS}/tables/flags.{ext}" for ext in ("csv", "md")]
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
    """The judges' validation table (agreement.enabled) and, with extra toxicity judges, the judges tables."""
    out = [f"{RESULTS}/tables/scorer_agreement.csv"] if config["agreement"]["enabled"] else []
    return out + (JUDGES_OUT if judge_specs()[1:] and toxicity_runs() else [])


def agreement_args():
    return config["agreement"]["args"].replace("{sentiment_clf}", SENTIMENT_CLF)


def agreement_inputs():
    return [SENTIMENT_CLF] if "{sentiment_clf}" in config["agreement"]["args"] else []


# bench judges: every toxicity judge (primary first) on the toxicity runs' continuations
JUDGES_OUT = [f"{RESULTS}/tables/{n}.{e}" for n in ("judges", "judge_agreement") for e in ("csv", "md")]


def judge_specs():
    s = config["scoring"]
    return [s["toxicity_scorer"]] + [j for j in s["extra_toxicity_scorers"] if j != s["toxicity_scorer"]]


def toxicity_runs():
    """(summary, scores) of the runs whose task is toxicity-family (they carry toxicity scores)."""
    return [(f"{W}/scores/{g}/{run}.csv", f"{W}/scores/{g}/{run}.jsonl") for g in GEN_TASKS
            if GEN_TASKS[g]["task"].split("-", 1)[0] == "toxicity" for run in gen_runs(g)]


def judges_args():
    cal = config["scoring"]["calibration"]
    out = " ".join(f"--scorer {shlex.quote(j)}" for j in judge_specs())
    out += f" --calibration {shlex.quote(cal)}" if cal else ""
    return out + f" --cache {shlex.quote(SCORE_CACHE)} --n-boot {config['statistics']['n_boot']} --seed {SEED}"


def _caption(name, kind):
    """`<name>_<kind>.rst`; a prompt set without its own caption (toxicity-<name>) uses its task's."""
    own = os.path.join(CAPTIONS, f"{name}_{kind}.rst")
    return own if os.path.exists(own) else os.path.join(CAPTIONS, f"{name.split('-', 1)[0]}_{kind}.rst")


def _report_table(task):
    return report(
        f"{RESULTS}/tables/{task}.csv",
        caption=_caption(task, "table"),
        category="Tables",
        labels={"table": task},
    )


def _report_figure(task):
    return report(
        f"{FIGURES}/{task}_tradeoff.png",
        caption=_caption(task, "tradeoff"),
        category="Figures",
        labels={"figure": f"{task} trade-off"},
    )


rule tables:
    input:
        summaries=summary_files(),
        scores=score_files(),
        run=RUN_STAMP,
    output:
        [_report_table(t) if ext == "csv" else f"{RESULTS}/tables/{t}.{ext}" for t in TABLE_NAMES for ext in TABLE_FORMATS],
        _report(f"{RESULTS}/tables/matched_fluency.csv", "matched_fluency_table.rst", "Tables",
                {"table": "matched fluency"}),
        f"{RESULTS}/tables/matched_fluency.md",
        # backfire / non-monotone flags of every table: its own category, listed first in the report
        _report(f"{RESULTS}/tables/flags.csv", "flags_table.rst", "0 Flags", {"table": "backfire flags"}),
        f"{RESULTS}/tables/flags.md",
    params:
        out=f"{RESULTS}/tables",
        stats=stats_args(),
        code=code_version("commands/tables.py", "reporting/", "metrics/aggregate.py", "metrics/comparisons.py"),
    log:
        f"{W}/logs/tables.log",
    benchmark:
        f"{BENCHMARKS}/tables.tsv",
    threads: res("report", "threads")
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
        matched=f"{RESULTS}/tables/matched_fluency.csv",  # the tables' bootstraps, not redone here
        run=RUN_STAMP,
    output:
        [_report_figure(t) for t in TABLE_NAMES],
        _report(f"{FIGURES}/matched_fluency.png", "matched_fluency.rst", "Figures", {"figure": "matched fluency"}),
    params:
        out=FIGURES,
        code=code_version("commands/figures.py", "commands/tables.py", "reporting/"),
    log:
        f"{W}/logs/figures.log",
    benchmark:
        f"{BENCHMARKS}/figures.tsv",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "MPLBACKEND=Agg {BENCH} figures --summaries {input.summaries:q} --matched-fluency {input.matched:q}"
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
    benchmark:
        f"{BENCHMARKS}/reward_table.tsv",
    threads: res("report", "threads")
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
    benchmark:
        f"{BENCHMARKS}/reward_figure.tsv",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "MPLBACKEND=Agg {BENCH} figures --reward-models {params.folders:q} --out-dir {params.out:q} > {log:q} 2>&1"


rule agreement:
    input:
        agreement_inputs(),
        run=RUN_STAMP,
    output:
        report(
            f"{RESULTS}/tables/scorer_agreement.csv",
            caption=os.path.join(CAPTIONS, "scorer_agreement.rst"),
            category="Tables",
            labels={"table": "scorer agreement"},
        ),
    params:
        args=agreement_args(),
        code=code_version("commands/agreement.py", "metrics/", "data/reference_scores.py", "reporting/agreement.py"),
    log:
        f"{W}/logs/agreement.log",
    benchmark:
        f"{BENCHMARKS}/agreement.tsv",
    threads: res("score", "threads")
    resources:
        mem_mb=res("score", "mem_mb"),
        runtime=res("score", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} agreement {params.args} --out {output:q} > {log:q} 2>&1"


rule judges:
    input:
        summaries=[s for s, _ in toxicity_runs()],
        scores=[j for _, j in toxicity_runs()],
        run=RUN_STAMP,
    output:
        report(JUDGES_OUT[0], caption=os.path.join(CAPTIONS, "judges_table.rst"), category="Tables",
               labels={"table": "judges"}),
        JUDGES_OUT[1],
        report(JUDGES_OUT[2], caption=os.path.join(CAPTIONS, "judge_agreement_table.rst"), category="Tables",
               labels={"table": "judge agreement under steering"}),
        JUDGES_OUT[3],
    params:
        args=judges_args(),
        code=code_version("commands/judges.py", "metrics/", "reporting/agreement_judges.py"),
    log:
        f"{W}/logs/judges.log",
    benchmark:
        f"{BENCHMARKS}/judges.tsv",
    threads: res("score", "threads")
    resources:
        mem_mb=res("score", "mem_mb"),
        runtime=res("score", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} judges --summaries {input.summaries:q} --scores {input.scores:q} {params.args}"
        " --out {output[0]:q} --out-pairs {output[2]:q} > {log:q} 2>&1"


def cost_targets():
    return [f"{RESULTS}/tables/cost.{ext}" for ext in ("csv", "md")]


def requested_resources(wc):
    """Each rule's memory and runtime request as Snakemake resolved it (the config's resources, or a
    --set-resources override): what `bench cost` compares the benchmark records with."""
    def fixed(rule, key):  # an integer a rule states; None for default-resources' per-job expressions
        try:
            value = rule.resources.get(key).value
        except (AttributeError, ValueError):
            return None
        return value if isinstance(value, int) else None

    out = []
    for r in workflow.rules:
        mem, runtime = fixed(r, "mem_mb"), fixed(r, "runtime")
        if mem is not None and runtime is not None:
            out.append(f"--request {r.name}={mem},{runtime}")
    return " ".join(out)


rule cost:
    """Runs after every other target of `all` but the HTML report (which shows this table), so every other job
    of the run has left its benchmark record."""
    input:
        done=lambda wc: report_targets() + analysis_targets() + agreement_targets(),
        run=RUN_STAMP,
    output:
        _report(f"{RESULTS}/tables/cost.csv", "cost_table.rst", "Cost", {"table": "cost"}),
        f"{RESULTS}/tables/cost.md",
    params:
        benchmarks=BENCHMARKS,
        requests=requested_resources,
        code=code_version("commands/cost.py", "reporting/cost.py"),
    log:
        f"{W}/logs/cost.log",
    benchmark:
        f"{BENCHMARKS}/cost.tsv",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "{BENCH} cost --benchmarks {params.benchmarks:q} {params.requests} --out-csv {output[0]:q}"
        " --out-md {output[1]:q} > {log:q} 2>&1"


def html_report_targets():
    return [f"{RESULTS}/report.html"]


def generation_files():
    """The generations (their prompts) of each summary, in the order of summary_files()."""
    return [s.replace(f"{W}/scores/", f"{W}/gen/", 1)[: -len(".csv")] + ".jsonl" for s in summary_files()]


rule report_html:
    """The researcher's report (bench report): interactive trade-offs, sampled continuations, the compare verdict
    against the committed tables, the flags and cost tables. Also listed in `snakemake --report`."""
    input:
        summaries=summary_files(),
        scores=score_files(),
        generations=generation_files(),
        tables=[f"{RESULTS}/tables/{t}.csv" for t in TABLE_NAMES],
        extra=[f"{RESULTS}/tables/flags.csv"] + cost_targets()[:1],
        run=RUN_STAMP,
    output:
        report(f"{RESULTS}/report.html", caption=os.path.join(CAPTIONS, "report_html.rst"), category="Report",
               labels={"report": "interactive report"}),
    params:
        tables=f"{RESULTS}/tables",
        title=f"bench report: {config['name']}",
        seed=SEED,
        code=code_version("commands/report.py", "reporting/"),
    log:
        f"{W}/logs/report_html.log",
    benchmark:
        f"{BENCHMARKS}/report_html.tsv",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "{BENCH} report --summaries {input.summaries:q} --scores {input.scores:q} --generations {input.generations:q}"
        " --tables-dir {params.tables:q} --extra-tables {input.extra:q} --title {params.title:q} --seed {params.seed}"
        " --out {output:q} > {log:q} 2>&1"
