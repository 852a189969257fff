"""The scripts' environment variables, their batch arithmetic and the torchrun / srun command lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from internvl_train.launch import (
    LAUNCHED_VAR,
    LaunchError,
    adopt_slurm_env,
    batch_settings,
    existing_launcher,
    first_host,
    gradient_accumulation,
    plan_launch,
    torchrun_prefix,
    world_size_of,
)
from internvl_train.presets import preset_launch, preset_names, preset_values

CHILD = ["--preset", "P", "meta_path=m.json"]
PY_CHILD = ["-m", "internvl_train", "run", *CHILD]


def official(preset: str, env: dict[str, str]):
    """What `ENV sh <preset's script>` means: world size, per-device batch, accumulation, the launch plan."""
    launch = preset_launch(preset)
    world, source = world_size_of(env, launch)
    batch = batch_settings(env, launch, preset_values=preset_values(preset), world_size=world, world_source=source)
    per_device = batch.per_device or preset_values(preset)["per_device_train_batch_size"]
    plan = plan_launch(env, CHILD, world_size=world, preset=launch)
    return world, per_device, batch.accumulation, plan


def torchrun(nproc: int, *, nnodes: int = 1, rank: int = 0, addr: str = "127.0.0.1", port: int = 34229) -> list[str]:
    return [
        *torchrun_prefix(),
        f"--nnodes={nnodes}",
        f"--node_rank={rank}",
        f"--master_addr={addr}",
        f"--nproc_per_node={nproc}",
        f"--master_port={port}",
        *PY_CHILD,
    ]


def srun(partition: str, nodes: int, ntasks: int, *extra: str) -> list[str]:
    return [
        "srun",
        "-p",
        partition,
        "--gres=gpu:8",
        f"--nodes={nodes}",
        f"--ntasks={ntasks}",
        "--ntasks-per-node=8",
        "--cpus-per-task=10",
        "--kill-on-bad-exit=1",
        *extra,
        sys.executable,
        "-u",
        *PY_CHILD,
    ]


# The official guide's documented invocations (docs/official-behaviour.md §6.3) -> processes, per-device, accumulation, global batch.
GUIDE = [
    ("internvl2-1b-full", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "1"}, 8, 1, 16, 128),
    ("internvl2-2b-full", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "1"}, 8, 1, 16, 128),
    ("internvl2-4b-full", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "1"}, 8, 1, 16, 128),
    ("internvl2-1b-lora", {"GPUS": "2", "PER_DEVICE_BATCH_SIZE": "1"}, 2, 1, 8, 16),
    ("internvl2-2b-lora", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "1"}, 8, 1, 2, 16),
    ("internvl2-4b-lora", {"GPUS": "2", "PER_DEVICE_BATCH_SIZE": "1"}, 2, 1, 8, 16),
    ("internvl2-8b-full", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "2"}, 8, 2, 8, 128),
    ("internvl2-8b-lora", {"GPUS": "2", "PER_DEVICE_BATCH_SIZE": "2"}, 2, 2, 4, 16),
    ("internvl2-26b-full", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "2"}, 8, 2, 8, 128),
    ("internvl2-26b-lora", {"GPUS": "2", "PER_DEVICE_BATCH_SIZE": "2"}, 2, 2, 4, 16),
    ("internvl2-40b-lora", {"GPUS": "2", "PER_DEVICE_BATCH_SIZE": "2"}, 2, 2, 4, 16),
    ("internvl2-76b-lora", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "1"}, 8, 1, 2, 16),
    ("internvl2-2b-lora-coco", {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "4"}, 8, 4, 16, 512),
    ("internvl2-1b-full", {}, 8, 4, 4, 128),  # the script's own defaults
]


@pytest.mark.parametrize(("preset", "env", "procs", "per_device", "acc", "global_batch"), GUIDE)
def test_guide_torchrun_commands(preset, env, procs, per_device, acc, global_batch):
    world, got_per_device, got_acc, plan = official(preset, env)
    assert (world, got_per_device, got_acc, world * got_per_device * got_acc) == (procs, per_device, acc, global_batch)
    assert plan.mode == "torchrun"
    assert plan.command == torchrun(procs)
    assert plan.env == {LAUNCHED_VAR: "torchrun"}


def test_guide_40b_full_on_slurm():
    env = {"PARTITION": "your partition", "GPUS": "16", "PER_DEVICE_BATCH_SIZE": "2"}
    world, per_device, acc, plan = official("internvl2-40b-full", env)
    assert (world, per_device, acc) == (16, 2, 4)
    assert plan.mode == "srun" and (plan.nnodes, plan.nproc_per_node) == (2, 8)
    assert plan.command == srun("your partition", 2, 16)
    assert plan.env == {"MASTER_PORT": "34229", LAUNCHED_VAR: "srun"}
    assert plan.shell_line().startswith("MASTER_PORT=34229 IVL_TRAIN_LAUNCHER=srun srun -p 'your partition' --gres")


def test_guide_76b_full_on_slurm_with_quota_and_srun_args():
    env = {"GPUS": "32", "PER_DEVICE_BATCH_SIZE": "1", "QUOTA_TYPE": "spot", "SRUN_ARGS": "--jobid 7 -x 'n1'"}
    world, per_device, acc, plan = official("internvl2-76b-full", env)  # the preset's launcher is srun
    assert (world, per_device, acc) == (32, 1, 4)
    assert plan.command == srun("INTERN2", 4, 32, "--quotatype=spot", "--jobid", "7", "-x", "n1")


def test_slurm_launcher_flag_without_partition_and_gpus_per_node():
    plan = plan_launch({"GPUS_PER_NODE": "4"}, CHILD, world_size=8, launcher="slurm")
    assert plan.command[:9] == [
        "srun",
        "-p",
        "INTERN2",
        "--gres=gpu:4",
        "--nodes=2",
        "--ntasks=8",
        "--ntasks-per-node=4",
        "--cpus-per-task=10",
        "--kill-on-bad-exit=1",
    ]


def test_torchrun_preset_can_be_sent_to_torchrun_explicitly():
    plan = plan_launch({}, CHILD, world_size=16, preset=preset_launch("internvl2-40b-full"), launcher="torchrun")
    assert plan.command == torchrun(16)


def test_multi_node_torchrun():
    env = {"GPUS": "16", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29600"}
    world, _ = world_size_of(env)
    plan = plan_launch(env, CHILD, world_size=world)
    assert plan.command == torchrun(8, nnodes=2, rank=1, addr="10.0.0.5", port=29600)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"GPUS": "16", "NNODES": "2"},
            "NNODES=2 needs MASTER_ADDR (the address of the node with NODE_RANK=0)",
        ),
        (
            {"GPUS": "6", "NNODES": "4", "MASTER_ADDR": "h"},
            "GPUS=6 processes do not split evenly over NNODES=4 nodes; set GPUS to a multiple of 4",
        ),
        (
            {"GPUS": "8", "NNODES": "2", "NODE_RANK": "2", "MASTER_ADDR": "h"},
            "NODE_RANK=2 is not below NNODES=2; number the nodes 0..1",
        ),
        (
            {"GPUS": "12", "PARTITION": "p"},
            (
                "GPUS=12 is not a multiple of GPUS_PER_NODE=8 (the srun scripts compute NODES=GPUS/GPUS_PER_NODE = 1); "
                "set GPUS to a multiple of 8 or set GPUS_PER_NODE"
            ),
        ),
        (
            {"GPUS": "4", "PARTITION": "p"},
            (
                "GPUS=4 is not a multiple of GPUS_PER_NODE=8 (the srun scripts compute NODES=GPUS/GPUS_PER_NODE = 0); "
                "set GPUS to a multiple of 8 or set GPUS_PER_NODE"
            ),
        ),
        ({"GPUS": "two"}, "GPUS='two' is not a positive whole number; unset it or set e.g. GPUS=1"),
        ({"GPUS": "0"}, "GPUS='0' is not a positive whole number; unset it or set e.g. GPUS=1"),
    ],
)
def test_launch_errors(env, message):
    with pytest.raises(LaunchError) as info:
        world, _ = world_size_of(env)
        plan_launch(env, CHILD, world_size=world)
    assert str(info.value) == message


def test_one_process_runs_here_and_launcher_none():
    assert plan_launch({}, CHILD, world_size=1).mode == "here"
    assert plan_launch({}, CHILD, world_size=1, launcher="none").mode == "here"
    with pytest.raises(LaunchError, match=r"^--launcher none runs one process, but GPUS/--nproc-per-node ask for 2;"):
        plan_launch({}, CHILD, world_size=2, launcher="none")
    # an explicit torchrun with one process still goes through torchrun
    assert plan_launch({}, CHILD, world_size=1, launcher="torchrun").command == torchrun(1)


# -- the arithmetic ----------------------------------------------------------------------------------------------------


def test_accumulation_exact():
    assert gradient_accumulation(128, 1, 8) == 16
    assert gradient_accumulation(128, 2, 16) == 4
    assert gradient_accumulation(512, 4, 8) == 16


def test_accumulation_zero_says_the_effective_batch():
    with pytest.raises(LaunchError) as info:
        gradient_accumulation(16, 4, 8)
    assert str(info.value) == (
        "BATCH_SIZE=16 / PER_DEVICE_BATCH_SIZE=4 / GPUS=8 gives gradient accumulation 0 in the official shell "
        "arithmetic (an effective batch of 0): PER_DEVICE_BATCH_SIZE x GPUS = 32 is above BATCH_SIZE; set "
        "BATCH_SIZE to a multiple of 32 or lower PER_DEVICE_BATCH_SIZE"
    )


def test_accumulation_remainder_says_the_effective_batch():
    with pytest.raises(LaunchError) as info:
        gradient_accumulation(128, 3, 8)  # the shell: 128/3 = 42, 42/8 = 5 -> 5 x 3 x 8 = 120
    assert str(info.value) == (
        "BATCH_SIZE=128 / PER_DEVICE_BATCH_SIZE=3 / GPUS=8 leaves a remainder: the official shell arithmetic gives "
        "gradient accumulation 5, an effective batch of 120, not 128; set BATCH_SIZE=120 or 144, or change "
        "PER_DEVICE_BATCH_SIZE or GPUS"
    )


def test_flags_beat_env_beat_preset():
    launch, values = preset_launch("internvl2-1b-full"), preset_values("internvl2-1b-full")
    env = {"GPUS": "4", "PER_DEVICE_BATCH_SIZE": "2", "BATCH_SIZE": "64"}
    # env over preset: 64 / 2 / 4
    b = batch_settings(env, launch, preset_values=values, world_size=4)
    assert (b.per_device, b.accumulation, b.batch_size) == (2, 8, 64)
    assert b.base_values() == {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 8}
    # a per-device flag beats PER_DEVICE_BATCH_SIZE, and the accumulation follows it: 64 / 8 / 4
    b = batch_settings(env, launch, preset_values=values, explicit={"per_device_train_batch_size": 8}, world_size=4)
    assert b.base_values() == {"gradient_accumulation_steps": 2}
    assert b.sources["per_device_train_batch_size"] == "config file or key=value"
    # an accumulation flag is left alone (the config layer holds it)
    b = batch_settings(env, launch, preset_values=values, explicit={"gradient_accumulation_steps": 3}, world_size=4)
    assert b.base_values() == {"per_device_train_batch_size": 2}
    # the --nproc-per-node flag beats GPUS
    assert world_size_of(env, launch, nproc_per_node=2) == (2, "--nproc-per-node")
    assert world_size_of({}, launch) == (8, "preset")
    assert world_size_of({}, None) == (1, "default")


def test_no_preset_no_batch_size_keeps_the_config_accumulation():
    b = batch_settings({"GPUS": "2"}, None, world_size=2)
    assert b.base_values() == {}
    b = batch_settings({"GPUS": "2", "BATCH_SIZE": "16"}, None, world_size=2)  # the config's default per-device 4
    assert b.base_values() == {"gradient_accumulation_steps": 2}


# -- inside a launcher -----------------------------------------------------------------------------------------------


def test_inside_existing_launchers():
    torch_env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "x"}
    assert existing_launcher(torch_env) == "torchrun"
    assert existing_launcher({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "CROSS_RANK": "0"}) == "deepspeed"
    assert existing_launcher({"SLURM_PROCID": "3", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "16"}) == "srun"
    assert existing_launcher({"SLURM_PROCID": "0", "SLURM_NTASKS": "16"}) is None  # an sbatch script, not a task
    assert existing_launcher({}) is None
    plan = plan_launch(torch_env, CHILD, world_size=4, launcher="slurm")
    assert (plan.mode, plan.launcher, plan.command) == ("inside", "torchrun", [])
    assert world_size_of(torch_env) == (4, "torchrun WORLD_SIZE")
    with pytest.raises(LaunchError) as info:
        world_size_of({**torch_env, "GPUS": "8"})
    assert str(info.value) == "GPUS=8 but the torchrun launcher started 4 processes; unset GPUS or make it 4"
    # in the processes we launched ourselves GPUS may differ (--nproc-per-node won over it)
    assert world_size_of({**torch_env, "GPUS": "8", LAUNCHED_VAR: "torchrun"}) == (4, "torchrun WORLD_SIZE")


def test_inside_launcher_accumulation_uses_the_real_world_size():
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    launch = preset_launch("internvl2-1b-full")
    world, _ = world_size_of(env, launch)
    b = batch_settings(env, launch, preset_values=preset_values("internvl2-1b-full"), world_size=world)
    assert b.accumulation == 16  # 128 / 4 / 2: the global batch stays 128


def test_first_host():
    assert first_host("node[03-05,9],gpu1") == "node03"
    assert first_host("gpu7,gpu8") == "gpu7"
    assert first_host("SH-IDC1-10-140-0-[131,132]") == "SH-IDC1-10-140-0-131"
    assert first_host("single") == "single"


def test_adopt_slurm_env():
    env = {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_NNODES": "2", "SLURM_LOCALID": "1"}
    env["SLURM_NODELIST"] = "n[10-11]"
    assert adopt_slurm_env(env) is True
    assert {
        k: env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    } == {
        "RANK": "9",
        "WORLD_SIZE": "16",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "8",
        "MASTER_ADDR": "n10",
        "MASTER_PORT": "34229",
    }
    assert adopt_slurm_env(env) is False  # RANK is set: nothing to do


# -- `ivl-train run` flags -> begin(): dry run, children's arguments ----------------------------------------------


def run_parser():
    import argparse

    from internvl_train import launch

    p = argparse.ArgumentParser()
    p.add_argument("config", nargs="?")
    p.add_argument("overrides", nargs="*")
    launch.add_arguments(p)
    return p


def begin(argv, env, capsys):
    from internvl_train import launch

    args = run_parser().parse_args(argv)
    res, code = launch.begin(args, args.config, args.overrides, env=env)
    return res, code, capsys.readouterr().out


def test_dry_run_of_the_guides_1b_command(capsys):
    res, code, out = begin(
        ["--preset", "internvl2-1b-full", "--meta", "my/meta.json", "--dry-run"],
        {"GPUS": "8", "PER_DEVICE_BATCH_SIZE": "1"},
        capsys,
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[:8] == [
        "# torchrun: 8 processes",
        "IVL_TRAIN_LAUNCHER=torchrun "
        + " ".join(torchrun(8)[: -len(PY_CHILD)])
        + " -m internvl_train run meta_path=my/meta.json --preset internvl2-1b-full",
        "# preset: internvl2-1b-full",
        "# processes: 8 (env GPUS)",
        "# per-device batch: 1 (env PER_DEVICE_BATCH_SIZE)",
        "# gradient accumulation: 16 (preset BATCH_SIZE / per-device / GPUS)",
        "# global batch: 128",
        "# resolved config (paths not checked in a dry run):",
    ]
    assert "per_device_train_batch_size: 1\n" in out and "gradient_accumulation_steps: 16\n" in out
    assert "meta_path: my/meta.json\n" in out and "deepspeed: zero1\n" in out
    assert res.global_batch == 128


def test_dry_run_file_with_preset_key_and_flags(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: internvl2-40b-full\nmeta_path: m.json\nlearning_rate: 1.0e-5\n")
    res, code, out = begin(
        [str(cfg), "per_device_train_batch_size=4", "--dry-run", "--resume"],
        {"PARTITION": "gpu", "GPUS": "16"},
        capsys,
    )
    # the flag's per-device batch 4: accumulation 128 / 4 / 16 = 2
    assert (res.config.per_device_train_batch_size, res.config.gradient_accumulation_steps) == (4, 2)
    assert res.config.learning_rate == 1e-5 and res.plan.mode == "srun"
    assert res.plan.command[-8:] == [
        sys.executable,
        "-u",
        "-m",
        "internvl_train",
        "run",
        str(cfg),
        "per_device_train_batch_size=4",
        "--resume",
    ]
    assert code == 0 and "# per-device batch: 4 (config file or key=value)" in out


def test_run_without_config_file_and_inside_torchrun(capsys):
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "1"}
    res, code, out = begin(
        ["learning_rate=1e-5", "--preset", "internvl2-1b-lora", "--meta", "m.json", "--dry-run"], env, capsys
    )
    assert (code, res.plan.mode, res.plan.world_size, res.config.gradient_accumulation_steps) == (0, "inside", 2, 2)
    assert out.splitlines()[0] == "# inside torchrun: this process is one of 2"


def test_accumulation_error_reaches_the_user(capsys):
    with pytest.raises(LaunchError, match=r"^BATCH_SIZE=128 / PER_DEVICE_BATCH_SIZE=3 / GPUS=8 leaves a remainder"):
        begin(["--preset", "internvl2-8b-full", "--dry-run"], {"PER_DEVICE_BATCH_SIZE": "3"}, capsys)


def test_guards_run_once_before_launching(tmp_path, capsys, monkeypatch):
    from internvl_train import launch
    from internvl_train.guards import GuardError

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(
        '{"llm_config": {"architectures": ["Qwen2ForCausalLM"], "max_position_embeddings": 512}, "vision_config": {}}'
    )
    (tmp_path / "meta.json").write_text("{}")
    launched = []
    monkeypatch.setattr(launch, "execute", lambda plan: launched.append(plan) or 0)
    argv = [f"model_name_or_path={tmp_path / 'model'}", f"meta_path={tmp_path / 'meta.json'}"]
    argv += [f"output_dir={tmp_path / 'out'}", "max_seq_length=1024", "bf16=false", "--nproc-per-node", "2"]
    with pytest.raises(GuardError) as info:
        begin(argv, {}, capsys)
    assert info.value.problems == [
        f"max_seq_length: 1024 is above the model's 512 positions (llm_config.max_position_embeddings 512 in "
        f"{tmp_path / 'model'}/config.json); set max_seq_length=512 or less"
    ]
    assert launched == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_launched_processes_die_with_ivl_train(tmp_path):
    import os
    import signal
    import subprocess
    import time

    pidfile = tmp_path / "child.pid"
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from internvl_train.launch import LaunchPlan, execute\n"
        f"execute(LaunchPlan('torchrun', 2, command=['sh', '-c', 'echo $$ > {pidfile}; exec sleep 60']))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    for _ in range(200):
        if pidfile.is_file() and pidfile.read_text().strip():
            break
        time.sleep(0.05)
    child = int(pidfile.read_text())
    os.kill(parent.pid, signal.SIGKILL)  # ivl-train killed hard: its torchrun must not train on, orphaned
    parent.wait()
    for _ in range(100):
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except FileNotFoundError:
            state = "gone"
        if state in ("gone", "Z"):
            break
        time.sleep(0.05)
    assert state in ("gone", "Z")


def test_readme_table_of_the_official_commands_is_what_the_code_does():
    import re
    import shlex

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## From the official scripts to `ivl-train run`")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == 15
    seen = []
    for row in rows:
        official_cmd, ours, outcome = (cell.strip().strip("`") for cell in row.strip("|").split("|"))
        words = shlex.split(ours)
        env = dict(w.split("=", 1) for w in words[: words.index("ivl-train")])
        assert official_cmd.startswith(" ".join(ours.split(" ivl-train ")[0].split()))  # the same variables
        preset = words[words.index("--preset") + 1]
        assert official_cmd.endswith(preset_launch(preset).script)
        world, per_device, acc, plan = official(preset, env)
        launcher, numbers = outcome.split(", ")
        assert re.fullmatch(r"(\d+) x (\d+) x (\d+) = (\d+)", numbers).groups() == tuple(
            str(n) for n in (world, per_device, acc, world * per_device * acc)
        )
        assert launcher == plan.mode
        seen.append(preset)
    assert sorted(seen) == sorted(preset_names())


def test_srun_missing_is_one_line(monkeypatch):
    from internvl_train.launch import execute

    monkeypatch.setenv("PATH", "/nonexistent")
    plan = plan_launch({"PARTITION": "p"}, CHILD, world_size=8)
    with pytest.raises(LaunchError) as info:
        execute(plan)
    assert str(info.value) == (
        "srun: not found; PARTITION, --launcher slurm and the 40B/76B full presets launch through SLURM: run on a "
        "SLURM login node, or pass --launcher torchrun"
    )


def test_dry_run_imports_neither_torch_nor_transformers(tmp_path):
    """`run --dry-run` (and the parent that only starts torchrun) prints before the trainer's imports (~10 s)."""
    import subprocess

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model_name_or_path: {tmp_path}/m\nmeta_path: {tmp_path}/meta.json\noutput_dir: {tmp_path}/out\n")
    code = (
        "import sys\nfrom internvl_train.cli.dispatch import main\n"
        f"assert main(['run', {str(cfg)!r}, '--dry-run']) == 0\n"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "# one process, no launcher"
    assert done.stdout.splitlines()[-1] == "[]"
