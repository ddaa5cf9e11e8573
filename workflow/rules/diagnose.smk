# Optional (not a target of `all`): `snakemake diagnose` -- why steering backfires. Every toxicity reward model
# replays the plain generations of each toxicity prompt set (non-toxic, challenging, ...) and reports the spread
# of its top-k candidate rewards per step, the clamp's share, and the reward's correlation with the judge
# (bench diagnose, docs/challenging.md).


def diagnose_gtasks():
    return [g for g, info in GEN_TASKS.items() if info["task"] == "toxicity"] if config["generation"]["plain"] else []


def _set_name(gtask):
    return GEN_TASKS[gtask].get("prompt_set") or "nontoxic"


def diagnose_args(wc):
    k = config["tasks"]["toxicity"]["top_k"][0]
    args = [f"--base {shlex.quote(config['models']['base'])} --top-k {k}",
            f"--judge {shlex.quote(config['scoring']['toxicity_scorer'])}",
            "--reward " + " ".join(shlex.quote(reward_dir("toxicity", p)) for p in PARAMS)]
    for g in diagnose_gtasks():
        args.append(f"--generations {_set_name(g)}={shlex.quote(f'{W}/gen/{g}/plain_b0_k{k}.jsonl')}")
        args.append(f"--scores {_set_name(g)}={shlex.quote(f'{W}/scores/{g}/plain_b0_k{k}.jsonl')}")
    return " ".join(args)


rule diagnose:
    input:
        rewards=[f"{W}/rewards/toxicity/{p}/{f}" for p in PARAMS for f in REWARD_FILES] if "toxicity" in TASKS else [],
        gen=[f"{W}/gen/{g}/plain_b0_k{config['tasks']['toxicity']['top_k'][0]}.jsonl" for g in diagnose_gtasks()],
        scores=[f"{W}/scores/{g}/plain_b0_k{config['tasks']['toxicity']['top_k'][0]}.jsonl" for g in diagnose_gtasks()],
        models=model_markers(config["models"]["base"], config["models"]["reward_backbone"]),
    output:
        csv=f"{RESULTS}/tables/diagnosis.csv",
        md=f"{RESULTS}/tables/diagnosis.md",
    params:
        args=diagnose_args,
        code=code_version("commands/diagnose.py", "analysis/diagnose.py", "rewards/", "decoding/"),
    log:
        f"{W}/logs/analysis/diagnose.log",
    benchmark:
        f"{BENCHMARKS}/diagnose.tsv",
    threads: res("generate", "threads")
    resources:
        mem_mb=res("generate", "mem_mb"),
        runtime=res("generate", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} diagnose {params.args} --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
