"""The shell part of the official scripts: environment variables -> batch arithmetic, and the launch command lines.

The official scripts read ``GPUS``, ``BATCH_SIZE`` and ``PER_DEVICE_BATCH_SIZE`` (with per-script defaults),
compute ``GRADIENT_ACC=$((BATCH_SIZE / PER_DEVICE_BATCH_SIZE / GPUS))`` and start ``torchrun`` (single node) or,
for the 40B/76B full fine-tunes, ``srun`` (docs/official-behaviour.md §6.1, §6.3). Here:

- :func:`batch_settings` does that arithmetic, but refuses what the shell silently accepts: an accumulation of 0
  or a ``BATCH_SIZE`` that is not a multiple of ``PER_DEVICE_BATCH_SIZE x GPUS`` (the message says what the
  effective batch would have been). Precedence: flags (``key=value``, the YAML file) > environment > preset.
- :func:`plan_launch` decides who starts the processes: nobody (one process, or already inside torchrun, srun
  or the ``deepspeed`` launcher), ``torchrun`` (single node, or multi-node with ``NNODES``/``NODE_RANK``/
  ``MASTER_ADDR``) or ``srun`` (``PARTITION`` set, ``--launcher slurm``, or a preset whose script used srun),
  and builds the exact command line.
- :func:`adopt_slurm_env` turns an srun task's ``SLURM_*`` variables into the ``RANK``/``WORLD_SIZE``/
  ``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` that torch.distributed reads (what the official ``init_dist``
  does for ``LAUNCHER=slurm``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from internvl_train.errors import IvlTrainError
from internvl_train.presets import PresetLaunch

if TYPE_CHECKING:
    from internvl_train.config import TrainConfig

MASTER_PORT = 34229  # exported by every official script
DEFAULT_PARTITION = "INTERN2"  # the srun scripts' PARTITION default
CPUS_PER_TASK = 10
LAUNCHED_VAR = "IVL_TRAIN_LAUNCHER"  # set in the processes that ivl-train itself launched
LAUNCHERS = ("auto", "torchrun", "slurm", "none")

INT_VARS = ("GPUS", "BATCH_SIZE", "PER_DEVICE_BATCH_SIZE", "GPUS_PER_NODE", "NNODES", "MASTER_PORT", "CPUS_PER_TASK")


class LaunchError(IvlTrainError, ValueError):
    """Launch settings that cannot work (exit 2); the message is one line naming the variable and the fix."""

    exit_code = 2


def _int_env(env: Mapping[str, str], name: str, *, minimum: int = 1) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a positive whole number" if minimum >= 1 else "a whole number"
        raise LaunchError(f"{name}={raw!r} is not {kind}; unset it or set e.g. {name}={max(minimum, 1)}")
    return value


# -- the batch arithmetic ------------------------------------------------------------------------------------------


def gradient_accumulation(batch_size: int, per_device: int, gpus: int) -> int:
    """``BATCH_SIZE / PER_DEVICE_BATCH_SIZE / GPUS`` as the shell computes it, or a LaunchError where that
    would give 0 or drop a remainder (the message says the effective batch the official script would run)."""
    acc = batch_size // per_device // gpus  # $((a / b / c)): integer division, left to right
    step = per_device * gpus
    what = f"BATCH_SIZE={batch_size} / PER_DEVICE_BATCH_SIZE={per_device} / GPUS={gpus}"
    if acc == 0:
        raise LaunchError(
            f"{what} gives gradient accumulation 0 in the official shell arithmetic (an effective batch of 0): "
            f"PER_DEVICE_BATCH_SIZE x GPUS = {step} is above BATCH_SIZE; set BATCH_SIZE to a multiple of {step} "
            f"or lower PER_DEVICE_BATCH_SIZE"
        )
    if acc * step != batch_size:
        lower, upper = acc * step, (acc + 1) * step
        raise LaunchError(
            f"{what} leaves a remainder: the official shell arithmetic gives gradient accumulation {acc}, an "
            f"effective batch of {lower}, not {batch_size}; set BATCH_SIZE={lower} or {upper}, or change "
            f"PER_DEVICE_BATCH_SIZE or GPUS"
        )
    return acc


@dataclass(frozen=True)
class BatchSettings:
    """What the environment and the preset decide, as config values, and where each came from."""

    world_size: int  # GPUS: processes in all
    per_device: int | None  # per_device_train_batch_size to put in the base layer (None: leave the config's)
    accumulation: int | None  # gradient_accumulation_steps for the base layer (None: leave the config's)
    batch_size: int | None  # BATCH_SIZE the accumulation was computed from
    sources: dict[str, str] = field(default_factory=dict)  # key -> "env GPUS", "preset", "--nproc-per-node", ...

    def base_values(self) -> dict[str, int]:
        out = {}
        if self.per_device is not None:
            out["per_device_train_batch_size"] = self.per_device
        if self.accumulation is not None:
            out["gradient_accumulation_steps"] = self.accumulation
        return out


def world_size_of(
    env: Mapping[str, str],
    preset: PresetLaunch | None = None,
    *,
    nproc_per_node: int | None = None,
    nnodes: int | None = None,
) -> tuple[int, str]:
    """Processes in all and where that number came from: inside a launcher its ``WORLD_SIZE``; else the
    ``--nproc-per-node`` flag (x ``--nnodes``/``NNODES``), else ``GPUS``, else the preset's GPUS, else 1."""
    inside = existing_launcher(env)
    gpus = _int_env(env, "GPUS")
    if inside is not None:
        world = _int_env(env, "WORLD_SIZE") or _int_env(env, "SLURM_NTASKS") or 1
        if gpus is not None and gpus != world and env.get(LAUNCHED_VAR) is None:
            raise LaunchError(
                f"GPUS={gpus} but the {inside} launcher started {world} processes; unset GPUS or make it {world}"
            )
        return world, f"{inside} WORLD_SIZE"
    if nproc_per_node is not None:
        nodes = nnodes or _int_env(env, "NNODES") or 1
        return nproc_per_node * nodes, "--nproc-per-node" + (f" x {nodes} nodes" if nodes > 1 else "")
    if gpus is not None:
        return gpus, "env GPUS"
    if preset is not None:
        return preset.gpus, "preset"
    return 1, "default"


def batch_settings(
    env: Mapping[str, str],
    preset: PresetLaunch | None,
    *,
    preset_values: Mapping[str, object] | None = None,
    explicit: Mapping[str, object] | None = None,
    world_size: int,
    world_source: str = "",
) -> BatchSettings:
    """The per-device batch and accumulation for the base layer of ``load_config``.

    ``explicit`` holds the keys the user set in the YAML file or as ``key=value`` (they win over everything).
    The accumulation is recomputed from ``BATCH_SIZE`` (env, else the preset's) whenever a global batch is known
    and the user did not set ``gradient_accumulation_steps`` himself; the per-device batch it divides by is the
    explicit one, else ``PER_DEVICE_BATCH_SIZE``, else the preset's.
    """
    explicit = explicit or {}
    preset_values = preset_values or {}
    sources = {"world_size": world_source}
    per_device: int | None = None
    env_per_device = _int_env(env, "PER_DEVICE_BATCH_SIZE")
    if "per_device_train_batch_size" in explicit:
        effective_per_device = explicit["per_device_train_batch_size"]
        sources["per_device_train_batch_size"] = "config file or key=value"
    elif env_per_device is not None:
        per_device = effective_per_device = env_per_device
        sources["per_device_train_batch_size"] = "env PER_DEVICE_BATCH_SIZE"
    else:
        effective_per_device = preset_values.get("per_device_train_batch_size")
        sources["per_device_train_batch_size"] = "preset" if effective_per_device is not None else "default"
    batch_size = _int_env(env, "BATCH_SIZE")
    batch_source = "env BATCH_SIZE"
    if batch_size is None and preset is not None and preset.batch_size is not None:
        batch_size, batch_source = preset.batch_size, "preset BATCH_SIZE"
    accumulation = None
    if "gradient_accumulation_steps" in explicit:
        sources["gradient_accumulation_steps"] = "config file or key=value"
    elif batch_size is not None:
        if effective_per_device is None:
            effective_per_device = 4  # TrainConfig's default per-device batch
        if not isinstance(effective_per_device, int) or isinstance(effective_per_device, bool):
            effective_per_device = None  # the config reports the bad value itself
        if effective_per_device is not None and effective_per_device >= 1:
            accumulation = gradient_accumulation(batch_size, effective_per_device, world_size)
            sources["gradient_accumulation_steps"] = f"{batch_source} / per-device / GPUS"
    return BatchSettings(world_size, per_device, accumulation, batch_size, sources)


# -- who launches ---------------------------------------------------------------------------------------------------


def existing_launcher(env: Mapping[str, str]) -> str | None:
    """'torchrun', 'deepspeed', 'srun' when this process was started by one, else None."""
    mine = env.get(LAUNCHED_VAR)
    if mine in ("torchrun", "srun") and ("RANK" in env or "SLURM_PROCID" in env):
        return mine
    if "TORCHELASTIC_RUN_ID" in env and "RANK" in env:
        return "torchrun"
    if all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return "deepspeed" if "CROSS_RANK" in env or "DS_ACCELERATOR" in env else "torchrun"
    if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env and "SLURM_NTASKS" in env:
        return "srun"  # a task of an srun job step (not the batch script itself)
    return None


@dataclass(frozen=True)
class LaunchPlan:
    """How ``ivl-train run`` gets its processes: ``mode`` is 'here' (one process), 'inside' (an existing
    launcher started us), 'torchrun' or 'srun' (we start them with ``command``, adding ``env``)."""

    mode: str
    world_size: int
    nnodes: int = 1
    nproc_per_node: int = 1
    launcher: str | None = None  # the existing launcher's name for mode 'inside'
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def shell_line(self) -> str:
        """The command as one copy-pasteable shell line, exported variables first."""
        prefix = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*prefix, shlex.join(self.command)])


def torchrun_prefix() -> list[str]:
    """``torchrun`` of this interpreter's environment (``python -m torch.distributed.run`` without the script)."""
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if os.path.isfile(exe) and os.access(exe, os.X_OK):
        return [exe]
    found = shutil.which("torchrun")
    return [found] if found else [sys.executable, "-m", "torch.distributed.run"]


def plan_launch(
    env: Mapping[str, str],
    child_args: Sequence[str],
    *,
    world_size: int,
    preset: PresetLaunch | None = None,
    launcher: str = "auto",
    nnodes: int | None = None,
) -> LaunchPlan:
    """The launch for ``world_size`` processes running ``ivl-train run CHILD_ARGS`` (see the module docstring)."""
    if launcher not in LAUNCHERS:
        raise LaunchError(f"--launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")
    inside = existing_launcher(env)
    if inside is not None:
        return LaunchPlan("inside", world_size, launcher=inside)
    if launcher == "none":
        if world_size != 1:
            raise LaunchError(
                f"--launcher none runs one process, but GPUS/--nproc-per-node ask for {world_size}; "
                f"set GPUS=1 or choose --launcher torchrun"
            )
        return LaunchPlan("here", 1)
    wants_slurm = launcher == "slurm" or (
        launcher == "auto" and (bool(env.get("PARTITION")) or (preset is not None and preset.launcher == "srun"))
    )
    port = _int_env(env, "MASTER_PORT") or MASTER_PORT
    if wants_slurm:
        return _srun_plan(env, child_args, world_size, preset, port)
    nodes = nnodes or _int_env(env, "NNODES") or 1
    if world_size == 1 and nodes == 1 and launcher == "auto":
        return LaunchPlan("here", 1)
    if world_size % nodes:
        raise LaunchError(
            f"GPUS={world_size} processes do not split evenly over NNODES={nodes} nodes; "
            f"set GPUS to a multiple of {nodes}"
        )
    per_node = world_size // nodes
    node_rank = _int_env(env, "NODE_RANK", minimum=0) or 0
    if node_rank >= nodes:
        raise LaunchError(f"NODE_RANK={node_rank} is not below NNODES={nodes}; number the nodes 0..{nodes - 1}")
    addr = env.get("MASTER_ADDR") or ""
    if nodes > 1 and not addr:
        raise LaunchError(f"NNODES={nodes} needs MASTER_ADDR (the address of the node with NODE_RANK=0)")
    command = [
        *torchrun_prefix(),
        f"--nnodes={nodes}",
        f"--node_rank={node_rank}",
        f"--master_addr={addr or '127.0.0.1'}",
        f"--nproc_per_node={per_node}",
        f"--master_port={port}",
        "-m",
        "internvl_train",
        "run",
        *child_args,
    ]
    return LaunchPlan("torchrun", world_size, nodes, per_node, command=command, env={LAUNCHED_VAR: "torchrun"})


def _srun_plan(
    env: Mapping[str, str], child_args: Sequence[str], world_size: int, preset: PresetLaunch | None, port: int
) -> LaunchPlan:
    per_node = _int_env(env, "GPUS_PER_NODE") or (preset.gpus_per_node if preset is not None else 8)
    nodes = world_size // per_node  # NODES=$((GPUS / GPUS_PER_NODE))
    if nodes == 0 or nodes * per_node != world_size:
        raise LaunchError(
            f"GPUS={world_size} is not a multiple of GPUS_PER_NODE={per_node} (the srun scripts compute "
            f"NODES=GPUS/GPUS_PER_NODE = {nodes}); set GPUS to a multiple of {per_node} or set GPUS_PER_NODE"
        )
    partition = env.get("PARTITION") or DEFAULT_PARTITION
    cpus = _int_env(env, "CPUS_PER_TASK") or CPUS_PER_TASK
    command = [
        "srun",
        "-p",
        partition,
        f"--gres=gpu:{per_node}",
        f"--nodes={nodes}",
        f"--ntasks={world_size}",
        f"--ntasks-per-node={per_node}",
        f"--cpus-per-task={cpus}",
        "--kill-on-bad-exit=1",
    ]
    if env.get("QUOTA_TYPE"):  # an option of the Shanghai AI Lab's srun only: standard Slurm rejects it
        command.append(f"--quotatype={env['QUOTA_TYPE']}")
    try:
        command += shlex.split(env.get("SRUN_ARGS", ""))
    except ValueError as exc:
        raise LaunchError(f"SRUN_ARGS={env.get('SRUN_ARGS')!r} cannot be split into arguments ({exc})") from None
    command += [sys.executable, "-u", "-m", "internvl_train", "run", *child_args]
    return LaunchPlan(
        "srun", world_size, nodes, per_node, command=command, env={"MASTER_PORT": str(port), LAUNCHED_VAR: "srun"}
    )


def execute(plan: LaunchPlan) -> int:
    """Run the plan's command with its variables exported; its exit code (every rank's stderr passes through)."""
    try:
        return subprocess.call(plan.command, env={**os.environ, **plan.env}, preexec_fn=_die_with_parent)
    except FileNotFoundError:
        if plan.mode == "srun":
            raise LaunchError(
                "srun: not found; PARTITION, --launcher slurm and the 40B/76B full presets launch through SLURM: "
                "run on a SLURM login node, or pass --launcher torchrun"
            ) from None
        raise LaunchError(f"{plan.command[0]}: not found; is {plan.mode} installed and on PATH?") from None
    except KeyboardInterrupt:
        return 130


def _die_with_parent() -> None:
    """In the launcher's child (Linux): SIGTERM when ivl-train dies, even by SIGKILL, so no run is orphaned."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -- inside an srun task ----------------------------------------------------------------------------------------------


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``node[03-05,9],gpu1`` -> ``node03``."""
    head = re.match(r"([^,\[]*)(\[([^\]]*)\])?", nodelist.strip())
    if head is None or not (head.group(1) or head.group(3)):
        return nodelist.split(",")[0]
    prefix, ranges = head.group(1), head.group(3)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def adopt_slurm_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """In an srun task without torch's variables, set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` (first host of ``SLURM_NODELIST``) and ``MASTER_PORT``
    (``MASTER_PORT`` or 34229) from ``SLURM_*``. Returns whether it changed anything."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if "SLURM_PROCID" not in env or "RANK" in env:
        return False
    ntasks = env.get("SLURM_NTASKS") or env.get("SLURM_STEP_NUM_TASKS") or "1"
    nodes = int(env.get("SLURM_NNODES") or env.get("SLURM_STEP_NUM_NODES") or "1")
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = ntasks
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env["LOCAL_WORLD_SIZE"] = str(max(1, int(ntasks) // max(1, nodes)))
    env.setdefault(
        "MASTER_ADDR", first_host(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_NODELIST", "")) or "127.0.0.1"
    )
    env.setdefault("MASTER_PORT", str(MASTER_PORT))
    return True


# -- everything together: what `ivl-train run` (and `check`) resolve before anything loads ----------------------------


@dataclass(frozen=True)
class Resolved:
    """The run's config, the launch and the batch arithmetic behind them."""

    config: TrainConfig
    plan: LaunchPlan
    batch: BatchSettings
    preset: str | None

    @property
    def global_batch(self) -> int:
        cfg = self.config
        return cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * self.plan.world_size

    def summary(self) -> list[str]:
        """Human lines: the launch, the batch arithmetic with where each number came from."""
        cfg, b = self.config, self.batch
        lines = [
            f"processes: {self.plan.world_size} ({b.sources.get('world_size', 'default')})"
            + (f", {self.plan.nnodes} nodes x {self.plan.nproc_per_node}" if self.plan.nnodes > 1 else ""),
            f"per-device batch: {cfg.per_device_train_batch_size} ({b.sources.get('per_device_train_batch_size')})",
            "gradient accumulation: {} ({})".format(
                cfg.gradient_accumulation_steps, b.sources.get("gradient_accumulation_steps", "config")
            ),
            f"global batch: {self.global_batch}",
        ]
        if self.preset:
            lines.insert(0, f"preset: {self.preset}")
        return lines


def _file_values(path: str | os.PathLike | None) -> dict:
    """The YAML file's top-level mapping, or {} when it cannot be read (load_config reports why)."""
    if path is None:
        return {}
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve(
    config_path: str | os.PathLike | None,
    overrides: Sequence[str] = (),
    *,
    preset: str | None = None,
    env: Mapping[str, str] | None = None,
    nproc_per_node: int | None = None,
    nnodes: int | None = None,
    launcher: str = "auto",
    child_args: Sequence[str] = (),
    check_paths: bool = True,
) -> Resolved:
    """preset < environment (GPUS, BATCH_SIZE, PER_DEVICE_BATCH_SIZE) < YAML file < ``key=value`` -> config + launch.

    The preset is ``--preset`` (``preset``), else a ``preset=NAME`` override, else the file's ``preset:`` key.
    Raises ConfigError (config problems), PresetError or LaunchError, each meant for exit 2.
    """
    from internvl_train.config import load_config, parse_override
    from internvl_train.presets import PresetError, preset_launch, preset_values

    env = os.environ if env is None else env
    if nproc_per_node is not None and nproc_per_node < 1:
        raise LaunchError(f"--nproc-per-node {nproc_per_node}: give a positive number of processes")
    file_values = _file_values(config_path)
    explicit: dict[str, object] = {k: v for k, v in file_values.items() if k != "preset"}
    rest: list[str] = []
    override_preset = None
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ValueError:
            rest.append(text)  # load_config reports it
            continue
        if key == "preset":
            override_preset = str(value)
            continue
        explicit[key] = value
        rest.append(text)
    name = preset or override_preset or file_values.get("preset")
    if name is not None and not isinstance(name, str):
        raise PresetError(f"{config_path}: preset: expected a preset name, got {name!r}")
    p_launch = preset_launch(name) if name else None
    p_values = preset_values(name) if name else {}
    world, world_source = world_size_of(env, p_launch, nproc_per_node=nproc_per_node, nnodes=nnodes)
    batch = batch_settings(
        env, p_launch, preset_values=p_values, explicit=explicit, world_size=world, world_source=world_source
    )
    base = {**p_values, **batch.base_values()}
    cfg = load_config(config_path, rest, base=base or None, check_paths=check_paths)
    plan = plan_launch(env, child_args, world_size=world, preset=p_launch, launcher=launcher, nnodes=nnodes)
    return Resolved(cfg, plan, batch, name)


# -- the `ivl-train run` side: flags, the child command, dry-run ----------------------------------------------------


def add_arguments(parser: Any) -> None:
    """The preset, launch and resume flags of ``ivl-train run``."""
    import argparse

    parser.add_argument("--preset", metavar="NAME", help="start from an official script's values (`ivl-train presets`)")
    parser.add_argument("--meta", metavar="META", help="the meta JSON file (same as meta_path=META)")
    parser.add_argument(
        "--nproc-per-node", type=int, metavar="N", help="processes per node (default: GPUS, else the preset's)"
    )
    parser.add_argument("--nnodes", type=int, metavar="N", help="nodes for torchrun (default: NNODES or 1)")
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="auto",
        help="auto: srun when PARTITION is set or the preset's script used srun, else torchrun for >1 process",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the command line(s) and the resolved config, then exit 0"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue from the newest complete checkpoint in output_dir (or this checkpoint-N folder)",
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)  # the deepspeed launcher's


def split_config(config: str | None, overrides: Sequence[str]) -> tuple[str | None, list[str]]:
    """``ivl-train run key=value ...`` without a config file: the first 'config' is an override then."""
    if config is not None and "=" in config and not os.path.exists(config):
        return None, [config, *overrides]
    return config, list(overrides)


def child_args(args: Any, config: str | None, overrides: Sequence[str]) -> list[str]:
    """The ``ivl-train run`` arguments each launched process gets: the same run, without the launch flags."""
    out = [os.path.abspath(config)] if config else []
    out += list(overrides)
    if getattr(args, "meta", None):
        out.append(f"meta_path={args.meta}")
    if getattr(args, "preset", None):
        out += ["--preset", args.preset]
    resume = getattr(args, "resume", None)
    if resume is True:
        out.append("--resume")
    elif isinstance(resume, str):
        out += ["--resume", resume]
    return out


def begin(args: Any, config: str | None, overrides: Sequence[str], *, env: Mapping[str, str] | None = None):
    """Resolve the run, then: ``--dry-run`` prints and returns ``(resolved, 0)``; a launch runs the processes and
    returns ``(resolved, their exit code)``; otherwise ``(resolved, None)``: train in this process."""
    env = os.environ if env is None else env
    config, user_overrides = split_config(config, overrides)
    meta = [f"meta_path={args.meta}"] if getattr(args, "meta", None) else []
    res = resolve(
        config,
        [*user_overrides, *meta],
        preset=getattr(args, "preset", None),
        env=env,
        nproc_per_node=getattr(args, "nproc_per_node", None),
        nnodes=getattr(args, "nnodes", None),
        launcher=getattr(args, "launcher", "auto") or "auto",
        child_args=child_args(args, config, user_overrides),
        check_paths=not getattr(args, "dry_run", False),
    )
    if getattr(args, "dry_run", False):
        print_dry_run(res)
        return res, 0
    if res.plan.mode in ("torchrun", "srun"):
        if res.plan.mode == "torchrun":  # srun runs elsewhere: its nodes check for themselves
            from internvl_train.guards import check_guards

            check_guards(res.config, world_size=res.plan.world_size)  # once here, not once per process
        print(f"ivl-train run: launching {res.plan.world_size} processes: {res.plan.shell_line()}", file=sys.stderr)
        return res, execute(res.plan)
    if res.plan.mode == "inside" and res.plan.launcher == "srun" and isinstance(env, os._Environ):
        adopt_slurm_env()
    return res, None


def print_dry_run(res: Resolved) -> None:
    """The exact command line (or 'this process'), the batch arithmetic and the resolved config as YAML."""
    import yaml

    if res.plan.mode in ("torchrun", "srun"):
        print(f"# {res.plan.mode}: {res.plan.world_size} processes")
        print(res.plan.shell_line())
    elif res.plan.mode == "inside":
        print(f"# inside {res.plan.launcher}: this process is one of {res.plan.world_size}")
    else:
        print("# one process, no launcher")
    for line in res.summary():
        print(f"# {line}")
    print("# resolved config (paths not checked in a dry run):")
    sys.stdout.write(yaml.safe_dump(res.config.resolved_dict(), sort_keys=False))
