# Stage 1: model conversion, training / held-out splits, prompt files, the offline sentiment classifier.


def train_part(wc):
    return config["tasks"][wc.task]["train"][int(wc.part)]


def prompt_set(wc):
    """`rtp` (toxicity prompts), `rtp-<name>` (the toxicity task's `prompt_sets`, e.g. challenging) or
    `sentiment-<neutral|positive|negative>`."""
    if wc.pset == "rtp":
        return config["tasks"]["toxicity"]["prompts"], None
    if wc.pset.startswith("rtp-"):
        return config["tasks"]["toxicity"]["prompt_sets"][wc.pset[len("rtp-"):]], None
    kind = wc.pset.split("-", 1)[1]
    p = config["tasks"]["sentiment"]["prompts"]
    return p, kind


rule convert:
    output:
        f"{W}/models/{{slug}}.json",
    params:
        spec=lambda wc: f"embedded:{wc.slug}",
        code=code_version("commands/convert.py"),
    log:
        f"{W}/logs/convert/{{slug}}.log",
    benchmark:
        f"{BENCHMARKS}/convert/{{slug}}.tsv",
    threads: res("convert", "threads")
    resources:
        mem_mb=res("convert", "mem_mb"),
        runtime=res("convert", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} convert --model {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule prepare_train:
    input:
        lambda wc: local_source(train_part(wc)["source"]),
    output:
        train=f"{W}/data/{{task}}/part{{part}}.train.jsonl",
        heldout=f"{W}/data/{{task}}/part{{part}}.heldout.jsonl",
    wildcard_constraints:
        part=r"\d+",
    params:
        dataset=lambda wc: train_part(wc)["dataset"],
        source=lambda wc: resolve_source(train_part(wc)["source"]),
        n_train=lambda wc: train_part(wc)["n_train"],
        n_heldout=lambda wc: train_part(wc)["n_heldout"],
        balance=lambda wc: "--balance" if train_part(wc)["balance"] else "",
        seed=SEED,
        code=code_version("commands/prepare.py", "data/"),
    log:
        f"{W}/logs/prepare/{{task}}.part{{part}}.log",
    benchmark:
        f"{BENCHMARKS}/prepare_train/{{task}}.part{{part}}.tsv",
    threads: res("prepare", "threads")
    priority: 10  # on the way to training, the longest chain (Snakemake's priority does not flow upstream)
    resources:
        mem_mb=res("prepare", "mem_mb"),
        runtime=res("prepare", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} prepare train --dataset {params.dataset} --source {params.source:q}"
        " --n-train {params.n_train} --n-heldout {params.n_heldout} {params.balance} --seed {params.seed}"
        " --out-train {output.train:q} --out-heldout {output.heldout:q} > {log:q} 2>&1"


rule merge_splits:
    """Several training sources (e.g. SST-2 + Amazon Polarity) become one split; one source is copied."""
    input:
        train=lambda wc: [f"{W}/data/{wc.task}/part{i}.train.jsonl" for i in range(len(config["tasks"][wc.task]["train"]))],
        heldout=lambda wc: [f"{W}/data/{wc.task}/part{i}.heldout.jsonl" for i in range(len(config["tasks"][wc.task]["train"]))],
    output:
        train=f"{W}/data/{{task}}/train.jsonl",
        heldout=f"{W}/data/{{task}}/heldout.jsonl",
    log:
        f"{W}/logs/prepare/{{task}}.merge.log",
    benchmark:
        f"{BENCHMARKS}/merge_splits/{{task}}.tsv",
    priority: 10  # on the way to training; else a free core goes to generation jobs with larger inputs first
    shell:
        "(cat {input.train:q} > {output.train:q} && cat {input.heldout:q} > {output.heldout:q}) 2> {log:q}"


rule prepare_prompts:
    input:
        lambda wc: local_source(prompt_set(wc)[0]["source"]),
    output:
        f"{W}/data/prompts/{{pset}}.jsonl",
    wildcard_constraints:
        pset=r"rtp(-[a-z0-9]+)?|sentiment-(neutral|positive|negative)",
    params:
        dataset=lambda wc: prompt_set(wc)[0]["dataset"],
        source=lambda wc: resolve_source(prompt_set(wc)[0]["source"]),
        sentiment=lambda wc: f"--sentiment {prompt_set(wc)[1]}" if prompt_set(wc)[1] else "",
        n=lambda wc: prompt_set(wc)[0].get("n_by_type", {}).get(prompt_set(wc)[1], prompt_set(wc)[0]["n"]),
        options=lambda wc: " ".join(
            (["--allow-fewer"] if prompt_set(wc)[0]["allow_fewer"] else [])
            + (["--challenging"] if prompt_set(wc)[0]["challenging"] else [])
            + ([f"--max-toxicity {prompt_set(wc)[0]['max_toxicity']}"] if prompt_set(wc)[0]["max_toxicity"] is not None else [])
        ),
        seed=SEED,
        code=code_version("commands/prepare.py", "data/"),
    log:
        f"{W}/logs/prepare/prompts.{{pset}}.log",
    benchmark:
        f"{BENCHMARKS}/prepare_prompts/{{pset}}.tsv",
    # seconds of work that every generation of the task (and so the rank analysis) waits on: with priority 0
    # the scheduler kept preferring generations with larger inputs, and the study's sentiment prompts waited
    priority: 10
    threads: res("prepare", "threads")
    resources:
        mem_mb=res("prepare", "mem_mb"),
        runtime=res("prepare", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} prepare prompts --dataset {params.dataset} --source {params.source:q}"
        " {params.sentiment} --n {params.n} {params.options} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule fit_sentiment:
    input:
        train=local_source(config["scoring"]["sentiment_classifier"]["train"]),
        dev=local_source(config["scoring"]["sentiment_classifier"]["dev"]),
    output:
        f"{W}/sentiment_clf.json",
    params:
        train=resolve_source(config["scoring"]["sentiment_classifier"]["train"]),
        dev=resolve_source(config["scoring"]["sentiment_classifier"]["dev"]),
        max_train=(
            f"--max-train {config['scoring']['sentiment_classifier']['max_train']}"
            if config["scoring"]["sentiment_classifier"]["max_train"]
            else ""
        ),
        code=code_version("commands/fit_sentiment.py", "metrics/"),
    log:
        f"{W}/logs/fit_sentiment.log",
    benchmark:
        f"{BENCHMARKS}/fit_sentiment.tsv",
    threads: res("fit_sentiment", "threads")
    resources:
        mem_mb=res("fit_sentiment", "mem_mb"),
        runtime=res("fit_sentiment", "runtime"),
        gpu=0,
    shell:
        THREADS_ENV + " {BENCH} fit-sentiment --train {params.train:q} --dev {params.dev:q} {params.max_train}"
        " --out {output:q} > {log:q} 2>&1"
