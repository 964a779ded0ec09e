"""The one adapter around the Docker SDK: every call to the engine goes through here.

Third-party failures are translated where they enter (the DVC `map_scm_exception` way): a refused socket, a
missing image or a mount the engine cannot make becomes a one-line RunnerError that says what to do, never a
requests or docker traceback. The rest of mlops sees plain values (ContainerState, ids, log lines).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from mlops_cli.errors import RunnerError

DEFAULT_HOST = "unix:///var/run/docker.sock"
CONNECT_TIMEOUT_S = 20.0

_MOUNT_WORDS = ("mount", "bind source path", "volume", "invalid volume specification")


def engine_host() -> str:
    """Where the SDK will connect: DOCKER_HOST, else the engine's default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def unreachable(detail: str = "") -> RunnerError:
    suffix = f" ({detail})" if detail else ""
    return RunnerError(f"Docker engine unreachable at {engine_host()}: start dockerd or set DOCKER_HOST{suffix}")


def image_missing(image: str) -> RunnerError:
    return RunnerError(f"image {image} missing: run `mlops images build`")


@contextlib.contextmanager
def translate(*, image: str | None = None, mount: str | None = None) -> Iterator[None]:
    """Turn docker / requests exceptions raised inside the block into one-line RunnerErrors."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.ImageNotFound:
        raise image_missing(image or "?") from None
    except docker.errors.NotFound as exc:
        raise RunnerError(f"Docker engine: {_explanation(exc)}") from None
    except docker.errors.APIError as exc:
        text = _explanation(exc)
        if "could not select device driver" in text:
            raise RunnerError("GPUs requested but the Docker engine has no GPU runtime",
                              "install the NVIDIA Container Toolkit on the engine's host, or drop --gpus") from None
        if mount is not None and any(word in text.lower() for word in _MOUNT_WORDS):
            raise RunnerError(f"volume not mountable: {mount} ({text})",
                              "the workspace must be a path the engine can see, or a named volume") from None
        raise RunnerError(f"Docker engine refused: {text}") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            docker.errors.DockerException) as exc:
        raise unreachable(_why_unreachable(exc)) from None


def _why_unreachable(exc: BaseException) -> str:
    """A few words for the usual causes, instead of a nested requests/urllib3 message."""
    text = str(exc)
    for needle, words in (("FileNotFoundError", "no socket there"), ("Connection refused", "connection refused"),
                          ("ConnectionRefused", "connection refused"), ("Permission", "permission denied"),
                          ("timed out", "timed out"), ("Timeout", "timed out")):
        if needle in text or needle in type(exc).__name__:
            return words
    return " ".join(text.split())[:160]


def _explanation(exc: Any) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())


MAX_LINE_BYTES = 1024 * 1024


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Bytes as they come -> decoded lines without their end (see `Engine.logs`)."""
    pending = bytearray()
    for chunk in chunks:
        searched = len(pending)
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", max(start, searched))) >= 0:
            yield pending[start:end].decode("utf-8", "replace").rstrip("\r")
            start = end + 1
        del pending[:start]
        while len(pending) >= max_line:
            yield pending[:max_line].decode("utf-8", "replace")
            del pending[:max_line]
    if pending:
        yield pending.decode("utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class ContainerState:
    """What monitor needs to know about one container."""

    id: str
    status: str                      # created | running | paused | restarting | removing | exited | dead
    exit_code: int | None
    oom_killed: bool
    labels: dict[str, str]

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "paused", "created")

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ContainerState:
        state = attrs.get("State") or {}
        exit_code = state.get("ExitCode")
        return cls(id=attrs["Id"], status=state.get("Status", "unknown"),
                   exit_code=None if state.get("Status") in ("created", "running") else exit_code,
                   oom_killed=bool(state.get("OOMKilled")),
                   labels=dict((attrs.get("Config") or {}).get("Labels") or {}))


def _epoch(text: object) -> float | None:
    """An engine timestamp ("2026-12-07T11:49:33.928587442Z", nanoseconds) as epoch seconds; None when unset
    (the engine writes year 1 for "never")."""
    import datetime

    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    whole, _, fraction = text.rstrip("Z").partition(".")
    try:
        stamp = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    digits = "".join(c for c in fraction if c.isdigit())[:6]
    return stamp.timestamp() + (int(digits) / 10 ** len(digits) if digits else 0.0)


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """One tagged image as a cache of images sees it."""

    tag: str
    id: str
    size: int                 # bytes, its base image's layers included (Docker's "Size")
    last_used: float          # epoch seconds: when it was last tagged (Metadata.LastTagTime), else created
    labels: dict[str, str]


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to start one training container."""

    image: str
    command: list[str]
    mounts: dict[str, str]            # absolute host path (bind) or volume name -> path in the container
    labels: dict[str, str]
    read_only_mounts: frozenset[str] = frozenset()   # container paths of `mounts` the container may only read
    user: str | None = None
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    working_dir: str | None = None
    cpus: float | None = None
    memory: str | None = None         # "2g", "512m"
    network: str | None = None        # None: the engine's default; "none" cuts it off
    gpus: str | None = None           # "all" or a count
    pids_limit: int | None = None     # processes and threads the container may hold at once
    read_only: bool = False           # the image's filesystem read-only (writable: the mounts and the tmpfs)
    tmpfs: dict[str, str] = dataclasses.field(default_factory=dict)   # path in the container -> mount options
    cap_drop: tuple[str, ...] = ()    # ("ALL",): no Linux capability at all
    security_opt: tuple[str, ...] = ()   # ("no-new-privileges",): setuid binaries gain nothing


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, timeout: float = CONNECT_TIMEOUT_S) -> Engine:
        """Connect via DOCKER_HOST (or the default socket) and check the engine answers."""
        import docker

        with translate():
            client = docker.from_env(timeout=int(timeout))
            client.ping()
        return cls(client)

    @property
    def host(self) -> str:
        return engine_host()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- images ----------------------------------------------------------------------------------------------

    def image_id(self, name: str) -> str | None:
        """The local id of an image, or None when the engine does not have it."""
        import docker.errors

        with translate(image=name):
            try:
                return self._client.images.get(name).id
            except docker.errors.ImageNotFound:
                return None

    def image_labels(self, name: str) -> dict[str, str]:
        with translate(image=name):
            image = self._client.images.get(name)
        return dict(image.labels or {})

    def image_size(self, name: str) -> int:
        with translate(image=name):
            return int(self._client.images.get(name).attrs.get("Size", 0))

    def untag_others(self, repository: str, keep: str) -> list[str]:
        """Remove the other tags of `repository` (older content hashes); images still used are kept."""
        import docker.errors

        removed = []
        with translate():
            for image in self._client.images.list(name=repository):
                for name in image.tags:
                    if name in (keep, f"{repository}:latest") or not name.startswith(f"{repository}:"):
                        continue
                    try:
                        self._client.images.remove(name)
                    except docker.errors.APIError:
                        continue
                    removed.append(name)
        return removed

    def prune_untagged(self, label: str) -> int:
        """Delete untagged images carrying `label` (outdated builds no container uses); how many went."""
        with translate():
            result = self._client.images.prune(filters={"dangling": True, "label": label})
        return len(result.get("ImagesDeleted") or [])

    def remove_image(self, name: str) -> bool:
        """Delete the image `name`; False when it is not there or a container still uses it."""
        import docker.errors

        with translate(image=name):
            try:
                self._client.images.remove(name)
            except docker.errors.ImageNotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409:   # conflict: a container uses it
                    return False
                raise
        return True

    def tagged_images(self, labels: Mapping[str, str | None]) -> list[tuple[str, dict[str, str]]]:
        """(first tag, labels) of every tagged image carrying all these labels (None: with any value)."""
        filters = {"label": [key if value is None else f"{key}={value}" for key, value in labels.items()]}
        with translate():
            images = self._client.images.list(filters=filters)
        return [(image.tags[0], dict(image.labels or {})) for image in images if image.tags]

    def images_info(self, labels: Mapping[str, str | None]) -> list[ImageInfo]:
        """Every tagged image carrying all these labels (None: with any value), with its size and last tag time.
        One removed while this lists (another process pruning) is left out, not an error."""
        import docker.errors

        filters = {"label": [key if value is None else f"{key}={value}" for key, value in labels.items()]}
        found = []
        with translate():
            for summary in self._client.api.images(filters=filters):
                tags = [tag for tag in summary.get("RepoTags") or () if tag != "<none>:<none>"]
                if not tags:
                    continue
                try:
                    attrs = self._client.api.inspect_image(summary["Id"])
                except docker.errors.NotFound:
                    continue
                used = _epoch((attrs.get("Metadata") or {}).get("LastTagTime")) or _epoch(attrs.get("Created"))
                found.append(ImageInfo(tag=tags[0], id=attrs["Id"], size=int(attrs.get("Size") or 0),
                                       last_used=used or float(summary.get("Created") or 0),
                                       labels=dict((attrs.get("Config") or {}).get("Labels") or {})))
        return found

    def image_sizes(self, names: Iterable[str]) -> dict[str, int]:
        """Docker's "Size" of each of these images (ids or tags) the engine has; missing ones are left out."""
        import docker.errors

        sizes = {}
        with translate():
            for name in names:
                try:
                    sizes[name] = int(self._client.api.inspect_image(name).get("Size") or 0)
                except docker.errors.NotFound:
                    continue
        return sizes

    def retag(self, name: str) -> str | None:
        """Tag the image `name` again under the same name, which the engine records as its LastTagTime (a cache's
        "last used"); its id, or None when the engine does not have it."""
        import docker.errors

        repository, _, tag = name.rpartition(":")
        with translate(image=name):
            try:
                image = self._client.images.get(name)
                image.tag(repository, tag)
            except docker.errors.ImageNotFound:
                return None
        return str(image.id)

    def tag(self, image: str, repository: str, tag: str) -> None:
        with translate(image=image):
            self._client.images.get(image).tag(repository, tag)

    def build(self, context_tar: bytes, *, dockerfile: str, tag: str, buildargs: dict[str, str],
              labels: dict[str, str], on_line: Callable[[str], None]) -> str:
        """Build from an in-memory tar context; stream each output line to `on_line`; return the image id."""
        image_id: str | None = None
        errors: list[str] = []
        with translate():
            stream = self._client.api.build(fileobj=io.BytesIO(context_tar), custom_context=True,
                                            dockerfile=dockerfile, tag=tag, buildargs=buildargs, labels=labels,
                                            rm=True, forcerm=True, decode=True, timeout=3600)
            for chunk in stream:
                if "error" in chunk:
                    errors.append(" ".join(str(chunk["error"]).split()))
                if "stream" in chunk:
                    for line in str(chunk["stream"]).splitlines():
                        if line.strip():
                            on_line(line.rstrip())
                elif "status" in chunk:
                    on_line(f"{chunk['status']} {chunk.get('progress', '')}".rstrip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = aux["ID"]
        if errors:
            raise RunnerError(f"building {tag} failed: {errors[-1][:300]}",
                              "see the build output above")
        if image_id is None:
            image_id = self.image_id(tag)
        if image_id is None:
            raise RunnerError(f"building {tag} produced no image", "see the build output above")
        return image_id

    # ---- containers ------------------------------------------------------------------------------------------

    def run(self, spec: ContainerSpec) -> str:
        """Start a detached container under an init (so SIGTERM reaches the harness); return its id."""
        import docker.types

        kwargs: dict[str, Any] = {
            "command": spec.command, "init": True, "labels": spec.labels,
            "environment": spec.environment,
            # Mounts (not Binds): a host path the engine cannot see is an error, not a new empty directory
            "mounts": [docker.types.Mount(target, source, type="bind" if source.startswith("/") else "volume",
                                          read_only=target in spec.read_only_mounts)
                       for source, target in spec.mounts.items()],
        }
        if spec.user:
            kwargs["user"] = spec.user
        if spec.working_dir:
            kwargs["working_dir"] = spec.working_dir
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.memory:
            kwargs["mem_limit"] = spec.memory
            kwargs["memswap_limit"] = spec.memory   # the limit is the limit: no swap on top of it
        if spec.network:
            kwargs["network_mode"] = spec.network
        if spec.pids_limit:
            kwargs["pids_limit"] = spec.pids_limit
        if spec.read_only:
            kwargs["read_only"] = True
        if spec.tmpfs:
            kwargs["tmpfs"] = dict(spec.tmpfs)
        if spec.cap_drop:
            kwargs["cap_drop"] = list(spec.cap_drop)
        if spec.security_opt:
            kwargs["security_opt"] = list(spec.security_opt)
        if spec.gpus:
            count = -1 if spec.gpus == "all" else int(spec.gpus)
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=count, capabilities=[["gpu"]])]
        mount = ", ".join(spec.mounts) or None
        with translate(image=spec.image, mount=mount):
            container = self._client.containers.create(spec.image, **kwargs)
            try:
                container.start()
            except BaseException:
                container.remove(force=True)   # no "Created" leftovers from a start the engine refused
                raise
        return str(container.id)

    def state(self, container_id: str) -> ContainerState | None:
        """The container's state, or None when the engine no longer knows it (removed, engine reset)."""
        import docker.errors

        with translate():
            try:
                container = self._client.containers.get(container_id)
            except docker.errors.NotFound:
                return None
        return ContainerState.from_attrs(container.attrs)

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Containers (running or not) carrying all these labels, newest first."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with translate():
            containers = self._client.containers.list(all=True, filters=filters)
        return [ContainerState.from_attrs(c.attrs) for c in containers]

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[str]:
        """The container's output line by line (stdout and stderr), following it until it ends. Linear in the
        output's size: each byte is searched once for a line end, and a line longer than MAX_LINE_BYTES is passed
        on in pieces instead of gathering without end."""
        with translate():
            container = self._client.containers.get(container_id)
            yield from split_lines(container.logs(stream=True, follow=follow, stdout=True, stderr=True))

    def wait(self, container_id: str) -> int:
        """Block until the container ends; its exit status."""
        with translate():
            result = self._client.containers.get(container_id).wait(timeout=None)
        return int(result.get("StatusCode", 1))

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        import docker.errors

        with translate():
            try:
                self._client.containers.get(container_id).kill(signal=signal)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if "is not running" not in _explanation(exc):
                    raise

    def stop(self, container_id: str, grace_s: int) -> None:
        """SIGTERM, then SIGKILL after `grace_s` seconds; a container that is gone or not running is no error."""
        import docker.errors

        with translate():
            try:
                self._client.containers.get(container_id).stop(timeout=grace_s)
            except docker.errors.NotFound:
                return

    def remove(self, container_id: str) -> None:
        import docker.errors

        with translate():
            try:
                self._client.containers.get(container_id).remove(force=True)
            except docker.errors.NotFound:
                return

