"""The docker runner: the harness of one run in a container of its runtime's image, the workspace bind-mounted.

The image is the run's runtime's (`mlops_cli.runtimes`: record.runtime, or record.profile for runs made before
runtimes existed); a repository with its own requirements.txt / pyproject dependencies trains in a derived image
`FROM` it, built once per set of requirements and reused (`images.derived_image`).

The container sees only what its run needs of the workspace (the pushed script runs in it, so it is untrusted):

    host                        container                         mode
    runs/N/                     /workspace/runs/N                 read-only: run.json, params.json, src/
    runs/N/out/                 /workspace/runs/N/out             read-write: the run's output area
    checkpoints/N/              /workspace/checkpoints/N          read-write: Keras BackupAndRestore state
    runs/N/work/                /workspace/repo (or runs/N/src)   read-write: a per-run copy of the source
    .lock, .train.lock          /workspace/.lock, .train.lock     read-write files: the two locks
    (nothing else)              /workspace                        the image's own folder, not the workspace

So the script cannot touch the checkout (repo/, its .git and any credential in it), other runs, best/,
state.json, next.json or tuning.db: the next evaluate or tweak reads only what the host wrote. The source is a
copy made by the host for this run (links that leave the checkout refused, .git left out) because scripts write
beside themselves (`model.save('model.h5')`); what they write stays in their own run. The two lock files are
bind-mounted alone (created first, and refused when they are symbolic links) so that flock() in the container
and on the host lock the same inode: the harness takes .train.lock, update_run takes .lock, exactly as with the
whole workspace mounted, without the workspace root being writable. Every host path is checked to be itself (no
symbolic link in it) before the engine sees it, since the engine would follow a link anywhere on the host.

The container runs:

* under an init (`init=True`), so `docker stop` delivers SIGTERM to the harness and it can save a checkpoint;
* as the uid:gid of the process that runs mlops (the Jenkins agent's user, say), not as the image's own
  `mlops` user: the container then reads and writes its run exactly as the local runner's process would
  (our atomic writes create 0600 files), and later steps on the host can rewrite what it wrote;
* hardened (`DockerOptions.resolved`, README "Docker"): no capability, no-new-privileges, pids, memory (no swap)
  and CPU limits, no network unless mlops.yaml says `network: true`, a read-only root filesystem with a
  size-capped tmpfs on /tmp where HOME and the Keras/matplotlib caches point;
* with the allow-listed environment of `training_env(host=False)`: run settings, no secret;
* with labels `mlops.project` (a digest of the workspace path) and `mlops.run`, so monitor finds it even when
  run.json lost the container id.

The container options (image, limits, network, GPUs) are saved in containers/ID.json (outside the run, so the
script cannot widen its own network or GPU access for the restart), so a restart by monitor starts the same
container again; options given to a later `train --resume` override them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_cli import runtimes
from mlops_cli.adapters.docker_engine import ContainerSpec, Engine
from mlops_cli.boundary import require_settled_checkout, training_env
from mlops_cli.config import Settings, parse_size
from mlops_cli.errors import ConfigError, RunnerError
from mlops_cli.runners import Probe, ProbeState, harness_command
from mlops_cli.runtimes.deps import read_requirements
from mlops_cli.workspace import (
    RunRecord,
    RunStatus,
    Workspace,
    atomic_write_json,
    copy_tree_confined,
    now_iso,
    read_json,
)

MOUNT_POINT = "/workspace"
STOP_GRACE_S = 10


def spec_path(ws: Workspace, run_id: str) -> Path:
    """Where the options a run's container was started with are kept: host-only, outside the run."""
    return ws.container_record_path(run_id)


def _exact(path: Path, root: Path) -> str:
    """`path` as the engine must get it: absolute, inside the workspace, with no symbolic link anywhere in it."""
    real = os.path.realpath(path)
    if real != str(path) or not (real == str(root) or real.startswith(str(root) + os.sep)):
        raise RunnerError(f"{path} is or passes through a symbolic link ({real})",
                          "the workspace was tampered with: delete the link and train again")
    return real


def _lock_file(path: Path) -> None:
    """Create a lock file if missing; a symbolic link in its place is refused (it would be mounted instead)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    except OSError as exc:
        raise RunnerError(f"cannot use {path} as a lock file: {exc.strerror}", "delete it and train again") from exc


def workspace_mounts(ws: Workspace, record: RunRecord) -> tuple[dict[str, str], frozenset[str]]:
    """Host path -> container path: everything the training container sees of the workspace (module docstring),
    and the container paths it may only read. Both sides are laid out by `Workspace` (the host's at its real
    path, so that no link hides in it; the container's at MOUNT_POINT)."""
    host, inside = Workspace(os.path.realpath(ws.root)), Workspace(MOUNT_POINT)
    run_dir, out = host.run_dir(record.id), host.output_dir(record.id)
    out.mkdir(exist_ok=True)
    checkpoints = host.checkpoint_dir(record.id)
    checkpoints.mkdir(parents=True, exist_ok=True)
    work = host.work_dir(record.id)
    if not work.is_dir() or work.is_symlink():
        staging = run_dir / f".{work.name}.tmp"   # in runs/N, which the container cannot write
        shutil.rmtree(staging, ignore_errors=True)
        copy_tree_confined(ws.source_dir(record), staging, skip=(".git",))
        os.replace(staging, work)
    for lock in (host.lock_path, host.train_lock_path):
        _lock_file(lock)
    pairs = {run_dir: inside.run_dir(record.id), out: inside.output_dir(record.id),
             work: inside.source_dir(record), checkpoints: inside.checkpoint_dir(record.id),
             host.lock_path: inside.lock_path, host.train_lock_path: inside.train_lock_path}
    mounts = {_exact(source, host.root): str(target) for source, target in pairs.items()}
    return mounts, frozenset({str(inside.run_dir(record.id))})


def project_label(ws: Workspace) -> str:
    """A stable, short name of the workspace for container labels."""
    return hashlib.sha256(str(ws.root).encode()).hexdigest()[:12]


#: hardened defaults (README, "Container limits"): every one can be changed by a flag or MLOPS_DOCKER_*
DEFAULT_CPUS = 4.0
DEFAULT_MEMORY = "8g"
DEFAULT_PIDS = 1024
DEFAULT_TMPFS_SIZE = "1g"
SCRATCH = "/tmp"
#: caches that Keras, matplotlib and friends write under HOME: on the tmpfs, since the root filesystem is read-only
SCRATCH_ENV = {"HOME": SCRATCH, "KERAS_HOME": f"{SCRATCH}/.keras", "MPLCONFIGDIR": f"{SCRATCH}/.matplotlib",
               "XDG_CACHE_HOME": f"{SCRATCH}/.cache", "TMPDIR": SCRATCH}
_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_ENV_NAMES = {"cpus": "MLOPS_DOCKER_CPUS", "memory": "MLOPS_DOCKER_MEMORY", "network": "MLOPS_DOCKER_NETWORK",
              "gpus": "MLOPS_DOCKER_GPUS", "pids": "MLOPS_DOCKER_PIDS", "read_only": "MLOPS_DOCKER_READ_ONLY",
              "tmpfs_size": "MLOPS_DOCKER_TMPFS_SIZE"}


def _check_option(key: str, value: Any, source: str) -> Any:
    """One option as the engine needs it, or a ConfigError (exit 2) naming where the bad value came from."""
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{source}={str(value)[:40]!r} is not {what}", f"fix {source}")

    if key == "cpus":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("a number of CPUs (e.g. 2 or 0.5)") from None
        if not math.isfinite(number) or not 0.01 <= number <= 1024:
            raise bad("a number of CPUs from 0.01 to 1024")
        return number
    if key in ("memory", "tmpfs_size"):
        text = str(value).strip()
        if (parse_size(text) or 0) < 8 * 1024 ** 2:
            raise bad("a size of at least 8m (e.g. 512m, 4g)")
        return text
    if key == "pids":
        text = str(value).strip()
        if not text.isdigit() or not 16 <= int(text) <= 4_194_304:
            raise bad("a number of processes from 16 to 4194304")
        return int(text)
    if key == "read_only":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no"):
            raise bad("a yes or no (1/0, true/false)")
        return text in ("1", "true", "yes")
    if key == "network":
        if not _NETWORK.match(str(value)):
            raise bad("a Docker network name (none, bridge, host or a network you made)")
        return str(value)
    if key == "gpus":
        gpus = str(value)
        if gpus != "all" and not (gpus.isdigit() and int(gpus) > 0):
            raise ConfigError(f"GPU request {gpus[:40]!r} is neither `all` nor a number of GPUs",
                              "e.g. --gpus all, or --gpus 1 (MLOPS_DOCKER_GPUS)")
        return gpus
    return value


@dataclasses.dataclass(frozen=True)
class DockerOptions:
    """How to start the container: flags win over MLOPS_DOCKER_CPUS, _MEMORY, _NETWORK, _GPUS, _PIDS,
    _READ_ONLY, _TMPFS_SIZE; the image defaults to the runtime's (MLOPS_IMAGE_<RUNTIME>, else <image>:latest from
    runtimes.yaml). None means "the hardened default" (`resolved`), so saved options keep what was chosen."""

    image: str | None = None
    cpus: float | None = None
    memory: str | None = None
    network: str | None = None
    gpus: str | None = None
    pids: int | None = None
    read_only: bool | None = None
    tmpfs_size: str | None = None

    @classmethod
    def from_env(cls, **flags: Any) -> DockerOptions:
        values: dict[str, Any] = {"image": flags.get("image")}
        for key, env_name in _ENV_NAMES.items():
            if flags.get(key) is not None:
                values[key] = _check_option(key, flags[key], f"--{key.replace('_', '-')}")
            elif os.environ.get(env_name, "").strip():
                values[key] = _check_option(key, os.environ[env_name].strip(), env_name)
        return cls(**values)

    @classmethod
    def from_saved(cls, saved: Any) -> DockerOptions:
        """Options read back from containers/N.json (host-only, but checked like any record)."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = saved.get(field.name) if isinstance(saved, dict) else None
            if value is None:
                continue
            if field.name == "image":
                if isinstance(value, str):
                    values["image"] = value
                continue
            try:
                values[field.name] = _check_option(field.name, value, f"containers record {field.name}")
            except ConfigError:
                continue   # a bad saved value falls back to the default rather than wedging every restart
        return cls(**values)

    def resolved(self, network_wanted: bool = False) -> DockerOptions:
        """Every limit filled in: the hardened defaults for what nobody chose. The network is cut off unless
        chosen, or asked for by the repository (mlops.yaml `network: true`: the engine's default network)."""
        return dataclasses.replace(
            self, cpus=self.cpus or min(DEFAULT_CPUS, float(os.cpu_count() or 1)), memory=self.memory or DEFAULT_MEMORY,
            network=self.network or ("bridge" if network_wanted else "none"), pids=self.pids or DEFAULT_PIDS,
            read_only=True if self.read_only is None else self.read_only,
            tmpfs_size=self.tmpfs_size or DEFAULT_TMPFS_SIZE)


def image_for(ws: Workspace, record: RunRecord | None, options: DockerOptions) -> str:
    """The image to start: the explicit one, else the run's runtime's (the detected one when no run is given)."""
    if options.image:
        return options.image
    if record is not None:
        return runtimes.of_run(record.runtime, record.profile).default_image()
    state = ws.read_state()
    if not (state.runtime or state.profile):
        raise RunnerError(f"workspace {ws.root} has no detected runtime, so no image to pick",
                          "run `mlops detect` first, or pass the image")
    return runtimes.of_run(state.runtime, state.profile).default_image()


class DockerRunner:
    """Runs the harness in a container; see the module docstring."""

    name = "docker"

    def __init__(self, settings: Settings, detach: bool = False, *, image: str | None = None,
                 cpus: float | None = None, memory: str | None = None, network: str | None = None,
                 gpus: str | None = None, pids: int | None = None, read_only: bool | None = None,
                 tmpfs_size: str | None = None, on_output: Callable[[str], None] | None = None,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.detach = detach   # containers always run apart from this process; train reads it to skip wait()
        self.options = DockerOptions.from_env(image=image, cpus=cpus, memory=memory, network=network, gpus=gpus,
                                              pids=pids, read_only=read_only, tmpfs_size=tmpfs_size)
        self._on_output = on_output or (lambda line: print(line, file=sys.stdout, flush=True))
        # what the runner itself says (derived image built or reused): stderr, so stdout stays the training's
        self._on_notice = on_notice or (lambda line: print(line, file=sys.stderr, flush=True))

    @classmethod
    def if_available(cls, settings: Settings, detach: bool = False, **options: Any) -> DockerRunner:
        """For `--runner auto`: this runner when an engine answers and has the image; else RunnerError (why)."""
        runner = cls(settings, detach, **options)
        image = image_for(settings.workspace, None, runner.options)
        with Engine.connect(timeout=5) as engine:
            if engine.image_id(image) is None:
                raise RunnerError(f"image {image} missing: run `mlops images build`")
        return runner

    def _options_for(self, ws: Workspace, record: RunRecord) -> DockerOptions:
        """The options the run was last started with (so monitor's restart keeps its limits), overridden by
        those given now (`train --resume ID --memory 8g` after an OOM kill)."""
        saved = DockerOptions.from_saved(read_json(spec_path(ws, record.id)))
        given = {key: value for key, value in dataclasses.asdict(self.options).items() if value is not None}
        return dataclasses.replace(saved, **given).resolved(self.settings.network)

    def start(self, ws: Workspace, record: RunRecord) -> None:
        """Start a container for this run (fresh, or again after a crash: the harness resumes the checkpoint)."""
        require_settled_checkout(ws.read_state(), record.source)
        ws.clear_outcome(record.id)
        options = self._options_for(ws, record)
        runtime = runtimes.of_run(record.runtime, record.profile)
        image = image_for(ws, record, options)
        requirements = read_requirements(ws.source_dir(record), record.entrypoint, runtime.provides)
        for ignored in requirements.ignored:
            self._on_notice(f"mlops: warning: {ignored}")
        labels = {"mlops.project": project_label(ws), "mlops.workspace": str(ws.root), "mlops.run": record.id}
        saved = {**dataclasses.asdict(options), "image": image}   # a restart derives from the same image
        with Engine.connect() as engine:
            if engine.image_id(image) is None:
                raise RunnerError(f"image {image} missing: run `mlops images build`")
            if requirements:
                from mlops_cli.pycode import imported_roots
                from mlops_cli.runtimes.images import derived_image

                derived = derived_image(engine, runtime, image, requirements, on_output=self._on_notice,
                                        imported=imported_roots(ws.source_dir(record), record.entrypoint))
                self._on_notice(derived.summary(requirements))
                image = derived.tag
                saved.update(deps_image=derived.tag, deps_built=derived.built)
            mounts, read_only_mounts = workspace_mounts(ws, record)
            spec = ContainerSpec(
                image=image, command=harness_command(MOUNT_POINT, record.id),
                mounts=mounts, read_only_mounts=read_only_mounts, labels=labels, user=f"{os.getuid()}:{os.getgid()}",
                environment={**training_env(host=False), **runtime.env, **SCRATCH_ENV},
                working_dir=MOUNT_POINT, cpus=options.cpus, memory=options.memory, network=options.network,
                gpus=options.gpus, pids_limit=options.pids, read_only=bool(options.read_only),
                tmpfs={SCRATCH: f"rw,nosuid,nodev,size={options.tmpfs_size},mode=1777"},
                cap_drop=("ALL",), security_opt=("no-new-privileges",))
            # containers of this project that ended (this run's crashed one, finished runs) are done with:
            # everything they produced is in the workspace
            ended = [c for c in engine.find({"mlops.project": labels["mlops.project"]}) if not c.running]
            container_id = engine.run(spec)
            for old in ended:
                engine.remove(old.id)
        atomic_write_json(spec_path(ws, record.id), {**saved, "container_id": container_id})
        ws.update_run(record.id, runner=self.name, container_id=container_id, pid=None, host=engine.host,
                      status=RunStatus.RUNNING, started=record.started or now_iso(), error=None, exit_code=None)

    def _container_id(self, ws: Workspace, record: RunRecord, engine: Engine) -> str | None:
        """The run's container as the host recorded it (containers/ID.json: run.json is writable by the script,
        which could name another container there), else found by its labels."""
        saved = read_json(spec_path(ws, record.id)) or {}
        if isinstance(saved, dict) and isinstance(saved.get("container_id"), str):
            return saved["container_id"]
        found = engine.find({"mlops.project": project_label(ws), "mlops.run": record.id})
        return found[0].id if found else None

    def wait(self, ws: Workspace, record: RunRecord) -> int:
        """Stream the container's output until it ends; its exit status."""
        record = ws.load_run(record.id)
        with Engine.connect() as engine:
            container_id = self._container_id(ws, record, engine)
            if container_id is None:
                raise RunnerError(f"run {record.id} has no container", "start it with `mlops train --runner docker`")
            try:
                for line in engine.logs(container_id):
                    self._on_output(line)
            except KeyboardInterrupt:
                engine.kill(container_id, "SIGTERM")   # through the init to the harness: it keeps the checkpoint
            code = engine.wait(container_id)
            engine.remove(container_id)   # its output is in train.log; monitor has nothing to restart
            return code

    def stop(self, ws: Workspace, record: RunRecord) -> None:
        """`docker stop`: SIGTERM through the init to the harness, SIGKILL after STOP_GRACE_S."""
        with Engine.connect() as engine:
            container_id = self._container_id(ws, record, engine)
            if container_id:
                engine.stop(container_id, STOP_GRACE_S)

    def probe(self, ws: Workspace, record: RunRecord) -> Probe:
        """alive, exited (code, OOM-killed) or vanished (the engine no longer knows the container)."""
        with Engine.connect() as engine:
            container_id = self._container_id(ws, record, engine)
            state = engine.state(container_id) if container_id else None
        if state is None:
            gone = f"container {container_id[:12]} is gone" if container_id else f"no container of run {record.id}"
            return Probe(ProbeState.VANISHED, detail=gone)
        if state.running:
            return Probe(ProbeState.ALIVE, detail=f"container {state.id[:12]} {state.status}")
        how = "OOM-killed" if state.oom_killed else f"exit code {state.exit_code}"
        return Probe(ProbeState.EXITED, exit_code=state.exit_code, oom_killed=state.oom_killed,
                     detail=f"container {state.id[:12]} exited ({how})")
