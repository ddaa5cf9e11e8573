# Stage 2: one reward model per (task, parametrization). Which rule trains a parametrization follows its
# registry entry (bench/rewards/registry.py): `train` for training on labels, `train_distill` for
# distillation from the trained model of the entry's teacher (arm-distill learns from rad).


def reward_dir(task, param):
    return f"{W}/rewards/{task}/{param}"


REWARD_FILES = ("model.safetensors", "reward_config.json", "train_summary.json", "train_log.jsonl")


def train_args(wc):
    """The flags every parametrization shares: config.training with its per-task / per-parametrization changes."""
    t = config["training"]
    o = training_settings(config, wc.task, wc.param)
    task = config["tasks"][wc.task]
    layers = config["models"]["reward_num_layers"]
    args = [
        f"--backbone {shlex.quote(config['models']['reward_backbone'])}",
        f"--num-layers {layers}" if layers else "",
        f"--attributes {','.join(task['attributes'])} --steer-attribute {task['steer_attribute']}",
        f"--max-steps {o['max_steps']} --eval-every {o['eval_every']} --patience {o['patience']}"
        f" --min-delta {o['min_delta']:g}",
        f"--batch-size {o['batch_size']} --lr {o['lr']} --max-length {t['max_length']}",
        f"--seed {SEED}",
        f"--mlp-rank {t['mlp_rank']}" if registry.get(wc.param).mlp_rank else "",
        o["extra_args"],
    ]
    return " ".join(a for a in args if a)


rule train:
    input:
        train=f"{W}/data/{{task}}/train.jsonl",
        heldout=f"{W}/data/{{task}}/heldout.jsonl",
        models=model_markers(config["models"]["reward_backbone"]),
    output:
        [f"{W}/rewards/{{task}}/{{param}}/{f}" for f in REWARD_FILES],
    wildcard_constraints:
        param=name_pattern(registry.label_trained()),
    params:
        out=lambda wc: reward_dir(wc.task, wc.param),
        args=train_args,
        code=code_version("commands/train.py", "rewards/", "training/", "data/"),
    log:
        f"{W}/logs/train/{{task}}.{{param}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{task}}.{{param}}.tsv",
    threads: res("train", "threads")
    priority: 10  # every generation waits on a trained model: start these first
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=res("train", "gpu"),
    shell:
        THREADS_ENV + " {BENCH} train --parametrization {wildcards.param} --train {input.train:q}"
        " --heldout {input.heldout:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule train_distill:
    input:
        train=f"{W}/data/{{task}}/train.jsonl",
        heldout=f"{W}/data/{{task}}/heldout.jsonl",
        teacher=lambda wc: [f"{reward_dir(wc.task, registry.get(wc.param).teacher)}/{f}" for f in REWARD_FILES],
        models=model_markers(config["models"]["reward_backbone"]),
    output:
        [f"{W}/rewards/{{task}}/{{param}}/{f}" for f in REWARD_FILES],
    wildcard_constraints:
        param=name_pattern(registry.distilled()),
    params:
        out=lambda wc: reward_dir(wc.task, wc.param),
        teacher=lambda wc: reward_dir(wc.task, registry.get(wc.param).teacher),
        args=train_args,
        code=code_version("commands/train.py", "rewards/", "training/", "data/"),
    log:
        f"{W}/logs/train/{{task}}.{{param}}.log",
    benchmark:
        f"{BENCHMARKS}/train_distill/{{task}}.{{param}}.tsv",
    threads: res("train", "threads")
    priority: 10  # every generation waits on a trained model: start these first
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=res("train", "gpu"),
    shell:
        THREADS_ENV + " {BENCH} train --parametrization {wildcards.param} --teacher {params.teacher:q}"
        " --train {input.train:q} --heldout {input.heldout:q} {params.args} --out {params.out:q} > {log:q} 2>&1"
