# Stage 4: score every generation file (toxicity or sentiment, fluency, diversity) -> per-sample JSONL and a
# one-row tidy summary CSV that the tables / figures read.

SENTIMENT_CLF = f"{W}/sentiment_clf.json"
# One content-addressed score cache per run, shared by every score job (WAL + busy timeout + retries make
# concurrent writers safe): a text scored once by a scorer version is never scored again, across methods,
# betas and reruns. Not an output: no job owns it, and deleting it only costs time.
SCORE_CACHE = f"{W}/cache/scores.sqlite"


def fluency_model():
    return config["scoring"]["fluency_model"] or config["models"]["base"]


def sentiment_scorer():
    return config["scoring"]["sentiment_scorer"].replace("{sentiment_clf}", SENTIMENT_CLF)


def score_inputs(wc):
    extra = model_markers(fluency_model())
    if GEN_TASKS[wc.gtask]["task"] == "sentiment" and "{sentiment_clf}" in config["scoring"]["sentiment_scorer"]:
        extra.append(SENTIMENT_CLF)
    return extra


def score_args(wc):
    s = config["scoring"]
    metrics = "toxicity,fluency,diversity" if GEN_TASKS[wc.gtask]["task"] == "toxicity" else "sentiment,fluency,diversity"
    args = [
        f"--metrics {metrics}",
        f"--toxicity-scorer {shlex.quote(s['toxicity_scorer'])}",
        f"--sentiment-scorer {shlex.quote(sentiment_scorer())}",
        f"--fluency-model {shlex.quote(fluency_model())}",
        s["extra_args"],
    ]
    return " ".join(a for a in args if a)


def summary_files():
    return [f"{W}/scores/{g}/{run}.csv" for g in GEN_TASKS for run in gen_runs(g)]


rule score:
    input:
        gen=f"{W}/gen/{{gtask}}/{{run}}.jsonl",
        meta=f"{W}/gen/{{gtask}}/{{run}}.jsonl.meta.json",
        extra=score_inputs,
    output:
        scores=f"{W}/scores/{{gtask}}/{{run}}.jsonl",
        summary=f"{W}/scores/{{gtask}}/{{run}}.csv",
    wildcard_constraints:
        gtask=r"toxicity(-[a-z0-9]+)?|sentiment-to-\w+-from-\w+",
        run=r"[\w.+-]+",
    params:
        args=score_args,
        cache=SCORE_CACHE,
        # the tables' paired / matched-fluency statistics are not scoring: editing them re-runs tables, not scores
        code=code_version("commands/score.py", "metrics/", exclude=("metrics/comparisons.py",)),
    log:
        f"{W}/logs/score/{{gtask}}/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/score/{{gtask}}/{{run}}.tsv",
    threads: res("score", "threads")
    resources:
        mem_mb=res("score", "mem_mb"),
        runtime=res("score", "runtime"),
        gpu=res("score", "gpu"),
    shell:
        THREADS_ENV + " {BENCH} score --generations {input.gen:q} {params.args} --cache {params.cache:q}"
        " --out-scores {output.scores:q} --out-summary {output.summary:q} > {log:q} 2>&1"
