# Stages 5-6: tables (CSV / Markdown / LaTeX) and trade-off figures from all summaries; each registered with
# report(...) so `snakemake --report results/report.html` shows them with their captions.

TABLE_FORMATS = ("csv", "md", "tex")
CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")


def table_outputs(name):
    return [f"{RESULTS}/tables/{name}.{ext}" for ext in TABLE_FORMATS]


def report_targets():
    out = []
    for task in TASKS:
        out += table_outputs(task)
        out.append(f"{FIGURES}/{task}_tradeoff.png")
    return out


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
        run=RUN_STAMP,
    output:
        [_report_table(t) if ext == "csv" else f"{RESULTS}/tables/{t}.{ext}" for t in TASKS for ext in TABLE_FORMATS],
    params:
        out=f"{RESULTS}/tables",
        code=code_version("commands/tables.py", "reporting/"),
    log:
        f"{W}/logs/tables.log",
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "{BENCH} tables --summaries {input.summaries} --out-dir {params.out} > {log} 2>&1"


rule figures:
    input:
        summaries=summary_files(),
        run=RUN_STAMP,
    output:
        [_report_figure(t) for t in TASKS],
    params:
        out=FIGURES,
        code=code_version("commands/figures.py", "reporting/"),
    log:
        f"{W}/logs/figures.log",
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "MPLBACKEND=Agg {BENCH} figures --summaries {input.summaries} --out-dir {params.out} > {log} 2>&1"


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
        THREADS_ENV + " {BENCH} agreement {params.args} --out {output} > {log} 2>&1"
