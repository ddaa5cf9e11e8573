# Analyses: the fixed-protocol decoding latency benchmark and the SVD rank of trained reward models' matrices.
# config["latency"] / config["rank"] were validated and filled with the rest of the config (Snakefile).

import shlex as _shlex

ANALYSIS_CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")
LATENCY, RANK = config["latency"], config["rank"]


def _q(x):
    return _shlex.quote(str(x))


def _ints(xs):
    return ",".join(str(int(x)) for x in xs)


def latency_reward_dirs():
    """Trained models to time (latency.trained), one folder per parametrization of latency.task."""
    if not LATENCY["trained"]:
        return {}
    params = {registry.latency_methods()[m] for m in LATENCY["methods"] if m != "plain"}
    return {p: f"{W}/rewards/{LATENCY['task']}/{p}" for p in sorted(params) if p in PARAMS}


def latency_args(wc):
    m = config["models"]
    layers = LATENCY["reward_layers"] or m.get("reward_num_layers") or "all"
    args = [
        f"--base {_q(LATENCY['base'] or m['base'])} --reward {_q(LATENCY['reward'] or m['reward_backbone'])}",
        f"--reward-layers {layers} --methods {','.join(LATENCY['methods'])}",
        f"--top-k {_ints(LATENCY['top_k'])} --batch-sizes {_ints(LATENCY['batch_sizes'])}",
        f"--new-tokens {_ints(LATENCY['new_tokens'])} --prompt-len {LATENCY['prompt_len']}",
        f"--min-run-time {LATENCY['min_run_time']} --max-run-time {LATENCY['max_run_time']}",
        f"--min-samples {LATENCY['min_samples']} --spread-max {LATENCY['spread_max']}",
        f"--drift-max {LATENCY['drift_max']} --load-max {LATENCY['load_max']} --retries {LATENCY['retries']}",
        f"--loop-max-k {LATENCY['loop_max_k']}",
        f"--mlp-rank {LATENCY['mlp_rank'] or config['training']['mlp_rank']} --dtype {LATENCY['dtype']}",
        f"--device {LATENCY['device']}" if LATENCY["device"] else "",
        f"--seed {SEED}",
    ]
    args += [f"--reward-model {_q(f'{p}={d}')}" for p, d in latency_reward_dirs().items()]
    return " ".join(a for a in args if a)


rule latency:
    input:
        rewards=[f"{d}/{f}" for d in latency_reward_dirs().values() for f in REWARD_FILES],
        models=model_markers(
            LATENCY["base"] or config["models"]["base"], LATENCY["reward"] or config["models"]["reward_backbone"]
        ),
        run=RUN_STAMP,
    output:
        csv=report(f"{RESULTS}/tables/latency.csv", caption=os.path.join(ANALYSIS_CAPTIONS, "latency_table.rst"),
                   category="Latency", labels={"table": "latency"}),
        md=f"{RESULTS}/tables/latency.md",
        fig=report(f"{FIGURES}/latency.png", caption=os.path.join(ANALYSIS_CAPTIONS, "latency.rst"),
                   category="Latency", labels={"figure": "ms/token vs k"}),
    params:
        args=latency_args,
        code=code_version("commands/latency.py", "analysis/latency.py", "reporting/latency.py", "rewards/", "decoding/"),
    log:
        f"{W}/logs/analysis/latency.log",
    benchmark:
        f"{BENCHMARKS}/latency.tsv",
    threads: res("latency", "threads")
    resources:
        mem_mb=res("latency", "mem_mb"),
        runtime=res("latency", "runtime"),
        gpu=res("latency", "gpu"),
    shell:
        THREADS_ENV + " {BENCH} latency {params.args} --threads {threads} --out-csv {output.csv:q}"
        " --out-md {output.md:q} --figure {output.fig:q} > {log:q} 2>&1"


def rank_methods():
    return [p for p in (RANK["methods"] or PARAMS) if p in PARAMS]


def rank_prefix_files(task):
    """Prefix sources: the task's plain generations (prompts + continuations; else its prompt files) and its
    held-out training texts."""
    files = []
    for gtask, info in GEN_TASKS.items():
        if info["task"] != task or info.get("prompt_set"):  # extra prompt sets (challenging) leave the pool as it was
            continue
        if config["generation"]["plain"]:
            files.append(f"{W}/gen/{gtask}/plain_b0_k{config['tasks'][task]['top_k'][0]}.jsonl")
        else:
            files.append(f"{W}/data/prompts/{info['prompts']}.jsonl")
    return files + [f"{W}/data/{task}/heldout.jsonl"]


def rank_tasks():
    return [t for t in TASKS if any(info["task"] == t for info in GEN_TASKS.values())]


def rank_args(wc):
    args = [f"--model {_q(f'{t}:{p}={W}/rewards/{t}/{p}')}" for t in rank_tasks() for p in rank_methods()]
    args += [f"--prefixes {_q(f'{t}={f}')}" for t in rank_tasks() for f in rank_prefix_files(t)]
    args += [
        f"--n-prefixes {RANK['n_prefixes']} --cuts {RANK['cuts']}",
        f"--sizes {','.join(map(str, RANK['sizes']))}" if RANK["sizes"] else "",
        f"--columns {RANK['columns']} --n-columns {RANK['n_columns']}",
        f"--max-length {RANK['max_length']} --batch-size {RANK['batch_size']} --chunk-size {RANK['chunk_size']}",
        f"--device {RANK['device']}" if RANK["device"] else "",
        f"--seed {SEED}",
    ]
    return " ".join(a for a in args if a)


rule rank:
    input:
        rewards=[f"{W}/rewards/{t}/{p}/{f}" for t in rank_tasks() for p in rank_methods() for f in REWARD_FILES],
        prefixes=[f for t in rank_tasks() for f in rank_prefix_files(t)],
        models=model_markers(config["models"]["reward_backbone"]),
        run=RUN_STAMP,
    output:
        csv=report(f"{RESULTS}/tables/rank.csv", caption=os.path.join(ANALYSIS_CAPTIONS, "rank_table.rst"),
                   category="Rank analysis", labels={"table": "rank"}),
        md=f"{RESULTS}/tables/rank.md",
        vs_n_csv=f"{RESULTS}/tables/rank_vs_n.csv",
        vs_n_md=f"{RESULTS}/tables/rank_vs_n.md",
        spectrum=f"{RESULTS}/tables/rank_spectrum.csv",
        fig_spectrum=report(f"{FIGURES}/rank_spectrum.png", caption=os.path.join(ANALYSIS_CAPTIONS, "rank_spectrum.rst"),
                            category="Rank analysis", labels={"figure": "spectrum"}),
        fig_growth=report(f"{FIGURES}/rank_vs_prefixes.png", caption=os.path.join(ANALYSIS_CAPTIONS, "rank_vs_prefixes.rst"),
                          category="Rank analysis", labels={"figure": "rank vs. prefixes"}),
    params:
        args=rank_args,
        code=code_version("commands/rank.py", "analysis/", "rewards/", "reporting/rank.py"),
    log:
        f"{W}/logs/analysis/rank.log",
    benchmark:
        f"{BENCHMARKS}/rank.tsv",
    priority: 5  # one long job on the trained models: start it before the generations it can run beside
    threads: res("rank", "threads")
    resources:
        mem_mb=res("rank", "mem_mb"),
        runtime=res("rank", "runtime"),
        gpu=res("rank", "gpu"),
    shell:
        THREADS_ENV + " {BENCH} rank {params.args} --out-csv {output.csv:q} --out-md {output.md:q}"
        " --out-vs-n-csv {output.vs_n_csv:q} --out-vs-n-md {output.vs_n_md:q}"
        " --out-spectrum {output.spectrum:q} --fig-spectrum {output.fig_spectrum:q}"
        " --fig-growth {output.fig_growth:q} > {log:q} 2>&1"


def sweep_gen_tasks():
    """The rank sweep reads each task's main prompt set (extra prompt sets such as challenging are left out)."""
    return [g for g, info in GEN_TASKS.items() if not info.get("prompt_set")]


def sweep_summaries():
    return [f"{W}/scores/{g}/{run}.csv" for g in sweep_gen_tasks() for run in gen_runs(g)]


def sweep_families():
    return list(dict.fromkeys(GEN_TASKS[g]["task"] for g in sweep_gen_tasks()))


RANK_SWEEP = RANK["sweep"] and bool(sweep_gen_tasks())


rule rank_sweep:
    input:
        summaries=sweep_summaries(),
        scores=[s[: -len(".csv")] + ".jsonl" for s in sweep_summaries()],
        reward_table=f"{RESULTS}/tables/reward_models.csv",
        rank_table=f"{RESULTS}/tables/rank.csv" if RANK["enabled"] and rank_tasks() and rank_methods() else [],
    output:
        csv=f"{RESULTS}/tables/rank_sweep.csv",
        md=f"{RESULTS}/tables/rank_sweep.md",
        figs=[f"{FIGURES}/rank_sweep_{f}.png" for f in sweep_families()],
    params:
        rank=lambda wc, input: f"--rank-table {_q(input.rank_table)}" if input.rank_table else "",
        stats=stats_args(),
        tables=f"{RESULTS}/tables",
        figures=FIGURES,
        code=code_version("commands/rank_sweep.py", "reporting/", "metrics/aggregate.py", "metrics/comparisons.py"),
    log:
        f"{W}/logs/analysis/rank_sweep.log",
    benchmark:
        f"{BENCHMARKS}/rank_sweep.tsv",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=0,
    shell:
        "MPLBACKEND=Agg {BENCH} rank-sweep --summaries {input.summaries:q} --scores {input.scores:q} {params.stats}"
        " --reward-table {input.reward_table:q} {params.rank} --out-dir {params.tables:q}"
        " --fig-dir {params.figures:q} > {log:q} 2>&1"


def analysis_targets():
    """Outputs of the enabled analyses (targets of `rule all`)."""
    out = []
    if RANK_SWEEP:
        out += [f"{RESULTS}/tables/rank_sweep.csv", f"{RESULTS}/tables/rank_sweep.md"]
        out += [f"{FIGURES}/rank_sweep_{f}.png" for f in sweep_families()]
    if LATENCY["enabled"]:
        out += [f"{RESULTS}/tables/latency.csv", f"{RESULTS}/tables/latency.md", f"{FIGURES}/latency.png"]
    if RANK["enabled"] and rank_tasks() and rank_methods():
        out += [f"{RESULTS}/tables/{name}.{ext}" for name in ("rank", "rank_vs_n") for ext in ("csv", "md")]
        out += [f"{FIGURES}/rank_spectrum.png", f"{FIGURES}/rank_vs_prefixes.png"]
    return out
