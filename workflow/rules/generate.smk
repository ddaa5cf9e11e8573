# Stage 3: plain decoding and reward-guided decoding with each trained reward model over the beta / k sweep.
#
# A generation task ("gtask") is one prompt set steered one way:
#   toxicity                              RTP non-toxic prompts, steer away from the toxicity attribute
#   toxicity-<name>                       the toxicity task's `prompt_sets` (e.g. challenging), same reward models
#   sentiment-to-<target>-from-<prompts>  sentiment prompts of one type, steer toward / away from the attribute


def _gen_tasks():
    out = {}
    if "toxicity" in TASKS:
        t = TASKS["toxicity"]
        out["toxicity"] = dict(task="toxicity", prompts="rtp", direction=t["direction"], attribute=t["steer_attribute"])
        for name in t["prompt_sets"]:
            out[f"toxicity-{name}"] = dict(task="toxicity", prompts=f"rtp-{name}", direction=t["direction"],
                                           attribute=t["steer_attribute"], prompt_set=name)
    if "sentiment" in TASKS:
        t = TASKS["sentiment"]
        for target, prompt_types in t["targets"].items():
            for ptype in prompt_types:
                out[f"sentiment-to-{target}-from-{ptype}"] = dict(
                    task="sentiment",
                    prompts=f"sentiment-{ptype}",
                    direction="toward" if target == t["steer_attribute"] else "away",
                    attribute=t["steer_attribute"],
                )
    return out


GEN_TASKS = _gen_tasks()
# One table / trade-off figure per task, and one per extra prompt set (`toxicity-challenging`: bench tables
# names a table after the generation task's family, `bench.reporting.tables.parse_task`).
TABLE_NAMES = [n for t in TASKS for n in [t] + [g for g, i in GEN_TASKS.items() if i["task"] == t and i.get("prompt_set")]]


def gen_runs(gtask):
    """Run names of one gtask: plain_b0_k{k}, {param}_b{beta}_k{k} and, for the task's `reward_rules`,
    {param}+{rule}_b{beta}_k{k} (the same betas decoded with another reward rule)."""
    t = config["tasks"][GEN_TASKS[gtask]["task"]]
    runs = [f"plain_b0_k{k}" for k in t["top_k"]] if config["generation"]["plain"] else []
    methods = list(PARAMS) + [f"{p}+{rule}" for p in PARAMS for rule in t["reward_rules"].get(p, [])]
    runs += [f"{m}_b{fmt_beta(b)}_k{k}" for m in methods
             for b in t["betas_by_method"].get(m.split("+")[0], t["betas"]) for k in t["top_k"]]
    return runs


def gen_reward_inputs(wc):
    if wc.method == "plain":
        return []
    task = GEN_TASKS[wc.gtask]["task"]
    return [f"{W}/rewards/{task}/{wc.method.split('+')[0]}/{f}" for f in REWARD_FILES]


def gen_args(wc):
    g = config["generation"]
    info = GEN_TASKS[wc.gtask]
    param, _, rule = wc.method.partition("+")
    args = [
        f"--base {shlex.quote(config['models']['base'])}",
        "" if wc.method == "plain" else "--reward " + shlex.quote(reward_dir(info["task"], param)),
        f"--reward-rule {rule}" if rule else "",
        f"--beta {wc.beta} --top-k {wc.k} --direction {info['direction']} --attribute {info['attribute']}",
        f"--num-samples {g['num_samples']} --max-new-tokens {g['max_new_tokens']} --batch-size {g['batch_size']}",
        f"--seed {SEED} --task {wc.gtask}",
        g["extra_args"],
    ]
    return " ".join(a for a in args if a)


rule generate:
    input:
        prompts=lambda wc: f"{W}/data/prompts/{GEN_TASKS[wc.gtask]['prompts']}.jsonl",
        reward=gen_reward_inputs,
        models=model_markers(config["models"]["base"], config["models"]["reward_backbone"]),
    output:
        gen=f"{W}/gen/{{gtask}}/{{method}}_b{{beta}}_k{{k}}.jsonl",
        meta=f"{W}/gen/{{gtask}}/{{method}}_b{{beta}}_k{{k}}.jsonl.meta.json",
    wildcard_constraints:
        gtask=r"toxicity(-[a-z0-9]+)?|sentiment-to-\w+-from-\w+",
        method=r"plain|(" + name_pattern(registry.names()) + r")(\+(centered|sigmoid))?",
        beta=r"[0-9.e+-]+",
        k=r"\d+",
    params:
        args=gen_args,
        code=code_version("commands/generate.py", "decoding/", "rewards/"),
    log:
        f"{W}/logs/generate/{{gtask}}/{{method}}_b{{beta}}_k{{k}}.log",
    benchmark:
        f"{BENCHMARKS}/generate/{{gtask}}/{{method}}_b{{beta}}_k{{k}}.tsv",
    # plain decoding feeds the rank analysis (its prefixes), one long job: first, or that job ends the run alone
    priority: lambda wc: 5 if wc.method == "plain" else 0
    threads: res("generate", "threads")
    resources:
        mem_mb=res("generate", "mem_mb"),
        runtime=res("generate", "runtime"),
        gpu=res("generate", "gpu"),
    shell:
        THREADS_ENV + " {BENCH} generate --prompts {input.prompts:q} --out {output.gen:q} {params.args} > {log:q} 2>&1"
