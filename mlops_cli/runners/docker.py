"""The docker runner: the harness of one run in a container of its runtime's image, the workspace bind-mounted.

The image is the run's runtime's (`mlops_cli.runtimes`: record.runtime, or record.profile for runs made before
runtimes existed); a repository with its own requirements.txt / pyproject dependencies trains in a derived image
`FROM` it, built once per set of requirements and reused (`images.derived_image`).

Everything the harness writes (run.json status, metrics, train.log, checkpoints) lands in the host workspace,
because paths in run.json are relative to the workspace. The container runs:

* under an init (`init=True`), so `docker stop` delivers SIGTERM to the harness and it can save a checkpoint;
* as the uid:gid of the process that runs mlops (the Jenkins agent's user, say), not as the image's own
  `mlops` user: the container then reads and writes the workspace exactly as the local runner's process would
  (our atomic writes create 0600 files, so any other uid could not even read run.json), later steps on the
  host can rewrite what it wrote, and a bind mount owned by that user (or root, for root) is writable. The
  image keeps its non-root `mlops` user as the default for plain `docker run -v VOL:/workspace IMAGE`, where
  a fresh named volume takes the ownership of the image's /workspace;
* with labels `mlops.project` (a digest of the workspace path) and `mlops.run`, so monitor finds it even when
  run.json lost the container id.

The container options (image, limits, network, GPUs) are saved in runs/ID/container.json, so a restart by
monitor starts the same container again; options given to a later `train --resume` override them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from collections.abc import Callable
from typing import Any

from mlops_cli import runtimes
from mlops_cli.config import Settings
from mlops_cli.deps import read_requirements
from mlops_cli.docker_engine import ContainerSpec, Engine
from mlops_cli.errors import ConfigError, RunnerError
from mlops_cli.runners import Probe, ProbeState, harness_command, training_env
from mlops_cli.workspace import RunRecord, Workspace, atomic_write_json, read_json

MOUNT_POINT = "/workspace"
SPEC_FILE = "container.json"
def project_label(ws: Workspace) -> str:
    """A stable, short name of the workspace for container labels."""
    return hashlib.sha256(str(ws.root).encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class DockerOptions:
    """How to start the container: flags win over MLOPS_DOCKER_CPUS, _MEMORY, _NETWORK, _GPUS; the image
    defaults to the runtime's (MLOPS_IMAGE_<RUNTIME>, else <image>:latest from runtimes.yaml)."""

    image: str | None = None
    cpus: float | None = None
    memory: str | None = None
    network: str | None = None
    gpus: str | None = None

    @classmethod
    def from_env(cls, **flags: Any) -> DockerOptions:
        env = {
            "image": None,
            "cpus": os.environ.get("MLOPS_DOCKER_CPUS"),
            "memory": os.environ.get("MLOPS_DOCKER_MEMORY"),
            "network": os.environ.get("MLOPS_DOCKER_NETWORK"),
            "gpus": os.environ.get("MLOPS_DOCKER_GPUS"),
        }
        values = {key: flags.get(key) if flags.get(key) is not None else (env[key] or None) for key in env}
        if values["cpus"] is not None:
            try:
                values["cpus"] = float(values["cpus"])
            except ValueError:
                raise ConfigError(f"MLOPS_DOCKER_CPUS={values['cpus']!r} is not a number", "e.g. 2 or 0.5") from None
        gpus = values["gpus"]
        if gpus is not None and gpus != "all" and not (str(gpus).isdigit() and int(gpus) > 0):
            raise ConfigError(f"GPU request {gpus!r} is neither `all` nor a number of GPUs",
                              "e.g. --gpus all, or --gpus 1 (MLOPS_DOCKER_GPUS)")
        return cls(**values)


def image_for(ws: Workspace, record: RunRecord | None, options: DockerOptions) -> str:
    """The image to start: the explicit one, else the run's runtime's (the detected one when no run is given)."""
    if options.image:
        return options.image
    if record is not None:
        return runtimes.of_run(record.runtime, record.profile).default_image()
    state = ws.read_state()
    if not (state.get("runtime") or state.get("profile")):
        raise RunnerError(f"workspace {ws.root} has no detected runtime, so no image to pick",
                          "run `mlops detect` first, or pass the image")
    return runtimes.of_run(state.get("runtime"), state.get("profile")).default_image()


class DockerRunner:
    """Runs the harness in a container; see the module docstring."""

    name = "docker"

    def __init__(self, settings: Settings, detach: bool = False, *, image: str | None = None,
                 cpus: float | None = None, memory: str | None = None, network: str | None = None,
                 gpus: str | None = None, on_output: Callable[[str], None] | None = None,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.detach = detach   # containers always run apart from this process; train reads it to skip wait()
        self.options = DockerOptions.from_env(image=image, cpus=cpus, memory=memory, network=network, gpus=gpus)
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
        saved = read_json(ws.run_dir(record.id) / SPEC_FILE) or {}
        given = {key: value for key, value in dataclasses.asdict(self.options).items() if value is not None}
        known = {f.name for f in dataclasses.fields(DockerOptions)}
        return DockerOptions(**{**{k: v for k, v in saved.items() if k in known}, **given})

    def start(self, ws: Workspace, record: RunRecord) -> None:
        """Start a container for this run (fresh, or again after a crash: the harness resumes the checkpoint)."""
        options = self._options_for(ws, record)
        runtime = runtimes.of_run(record.runtime, record.profile)
        image = image_for(ws, record, options)
        requirements = read_requirements(ws.source_dir(record))
        for ignored in requirements.ignored:
            self._on_notice(f"mlops: warning: {ignored}")
        labels = {"mlops.project": project_label(ws), "mlops.workspace": str(ws.root), "mlops.run": record.id}
        saved = {**dataclasses.asdict(options), "image": image}   # a restart derives from the same image
        with Engine.connect() as engine:
            if engine.image_id(image) is None:
                raise RunnerError(f"image {image} missing: run `mlops images build`")
            if requirements:
                from mlops_cli.images import derived_image

                derived = derived_image(engine, runtime, image, requirements, on_output=self._on_notice)
                self._on_notice(derived.summary(requirements))
                image = derived.tag
                saved.update(deps_image=derived.tag, deps_built=derived.built)
            spec = ContainerSpec(
                image=image, command=harness_command(MOUNT_POINT, record.id),
                mounts={str(ws.root): MOUNT_POINT}, labels=labels, user=f"{os.getuid()}:{os.getgid()}",
                environment={**training_env(host=False), **runtime.env},
                working_dir=MOUNT_POINT, cpus=options.cpus, memory=options.memory, network=options.network,
                gpus=options.gpus)
            # containers of this project that ended (this run's crashed one, finished runs) are done with:
            # everything they produced is in the workspace
            ended = [c for c in engine.find({"mlops.project": labels["mlops.project"]}) if not c.running]
            container_id = engine.run(spec)
            for old in ended:
                engine.remove(old.id)
        atomic_write_json(ws.run_dir(record.id) / SPEC_FILE, saved)
        ws.update_run(record.id, runner=self.name, container_id=container_id, pid=None, host=engine.host)

    def _container_id(self, ws: Workspace, record: RunRecord, engine: Engine) -> str | None:
        if record.container_id:
            return record.container_id
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
