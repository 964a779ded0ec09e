"""Jobs 1-6 as data: render the `jenkins/` config.xml templates, install them, trigger and watch builds.

The job definitions live in `jenkins/jobs/*.xml` and `jenkins/views/*.xml`: Jenkins' own config.xml format with
`{{name}}` placeholders. We chose plain config.xml templates over Jenkins Job Builder YAML because what is in the
repository is what Jenkins loads and runs, field for field: the templates hold only fields the current core and
plugins serialise (tests/jenkins_shapes.yaml, read from their sources), so what Jenkins hands back from
`get_job_config` (re-serialised from memory: its own XML declaration, plugin versions, defaults of fields we
leave out) says the same, and `install` can compare the two (`same_config`); `simulate` runs exactly the shell
steps Jenkins would, and an admin can diff a job with the server's copy. JJB would add a second language, a
renderer whose output changes with its version, and `{}` escaping in every shell line.

Placeholders: `{{name}}` is a value, XML-escaped; `{{name|sh}}` is shell-quoted (shlex) and then XML-escaped,
for values inside shell commands; `{{name|xml}}` inserts a rendered fragment from `jenkins/fragments/`
(chosen here by which plugins the server has). An unknown placeholder is an error, never left in the output.
Secrets are never values: jobs read them from variables bound by Jenkins credentials.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from mlops_cli.adapters.jenkins_client import BuildInfo, JenkinsClient, PermissionDenied
from mlops_cli.errors import ConfigError, JenkinsError, TrainingFailed, UsageError
from mlops_cli.jenkins import cron
from mlops_cli.secrets import SECRET_NAME, url_secret
from mlops_cli.workspace import RunStatus, Workspace, atomic_write_text

DEFINITIONS_ENV = "JENKINS_DEFINITIONS"
PIPELINE_VIEW_PLUGIN = "build-pipeline-plugin"
GIT_PLUGIN = "git"
GITHUB_PLUGIN = "github"
JUNIT_PLUGIN = "junit"
CREDENTIALS_BINDING_PLUGIN = "credentials-binding"
PIPELINE_PLUGINS = ("workflow-job", "workflow-cps", "pipeline-model-definition")
#: plugins our definitions can use; the ones a dry run assumes unless told otherwise
KNOWN_PLUGINS = (GIT_PLUGIN, GITHUB_PLUGIN, JUNIT_PLUGIN, CREDENTIALS_BINDING_PLUGIN, PIPELINE_VIEW_PLUGIN)
#: the label every chain job is tied to unless --agent-label says otherwise: give it to the agent that has mlops
#: and the workspaces (one node, so that job 3 finds what job 2 left)
DEFAULT_AGENT_LABEL = "mlops"
#: who may list plugins: without it, install assumes KNOWN_PLUGINS (or --plugins) and says so once
PLUGIN_LIST_PERMISSION = "Overall/SystemRead or Overall/Administer"
#: Jenkins results and the exit code `trigger --wait` maps them to
RESULT_EXIT = {"SUCCESS": 0, "UNSTABLE": 3, "FAILURE": 1, "ABORTED": 1, "NOT_BUILT": 1}
_BAD_NAME_CHARS = set('?*/\\%!@#$^&|<>[]:;"')
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*(?:\|\s*([a-z]+)\s*)?\}\}")


class DefinitionError(ConfigError):
    """A job definition under jenkins/ is broken (unknown placeholder, not XML, missing file): exit 2."""


# ---- parameters -----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ChainParams:
    """Everything the job definitions are parameterised by. No secrets: those come from credentials."""

    repo_url: str
    branch: str = "main"
    workspace: str | None = None  # MLOPS_WORKSPACE on the agent; default /var/lib/mlops/<prefix>
    threshold: float = 0.80
    max_attempts: int | None = None
    metric: str | None = None
    notify_to: tuple[str, ...] = ()
    agent_label: str = DEFAULT_AGENT_LABEL
    runner: str = "docker"
    image_keras: str | None = None
    image_sklearn: str | None = None
    prefix: str = "mlops-"
    mlops_path: str | None = None  # a directory put first on PATH, e.g. the venv's bin/
    poll_schedule: str = "H/5 * * * *"
    monitor_schedule: str = "H/5 * * * *"  # every 5 minutes at a minute Jenkins spreads per job: 288 builds a day
    keep_days: int = 30  # build discarder of every job
    keep_builds: int = 100
    monitor_keep_builds: int = 288  # job 6: about one day of checks at the default schedule
    train_timeout: int = 6 * 3600
    smtp_credentials: str | None = None  # Jenkins credentials id (username + password) for SMTP
    git_credentials: str | None = None  # Jenkins credentials id: the git plugin polls with it, job 1 binds it
    env: tuple[tuple[str, str], ...] = ()  # extra non-secret variables exported in every job

    def agent_workspace(self) -> str:
        return self.workspace or f"/var/lib/mlops/{self.prefix.strip('-_. ') or 'mlops'}"

    def validate(self) -> ChainParams:
        """Refuse values that would break a job definition or leak a secret, naming the option to fix."""
        from mlops_cli.adapters.git import check_url

        if not self.repo_url.strip():
            raise UsageError("--repo is empty", "give the git URL (or path) of the model repository")
        check_url(self.repo_url)
        if url_secret(self.repo_url, repo=True):
            raise UsageError(f"--repo carries a credential ({url_secret(self.repo_url, repo=True)}), which would be "
                             "stored in job 1 for anyone who can read it",
                             "store it as a Jenkins credential and pass --git-credentials ID")
        if not self.agent_label.strip():
            raise UsageError("--agent-label is empty", f"the chain runs on one node: give its label "
                                                        f"(default {DEFAULT_AGENT_LABEL})")
        for option, value in (("--keep-days", self.keep_days), ("--keep-builds", self.keep_builds),
                              ("--monitor-keep-builds", self.monitor_keep_builds)):
            if value < 1:
                raise UsageError(f"{option} {value} must be at least 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold {self.threshold} must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError(f"--max-attempts {self.max_attempts} must be at least 1")
        if self.runner not in ("local", "docker", "auto"):
            raise UsageError(f"--runner {self.runner!r} must be local, docker or auto")
        if self.train_timeout < 1:
            raise UsageError("--train-timeout must be at least 1 second")
        if self.prefix and (set(self.prefix) & _BAD_NAME_CHARS or self.prefix != self.prefix.strip()):
            raise UsageError(f"--prefix {self.prefix!r} cannot be part of a Jenkins job name",
                             "use letters, digits, '-', '_' or '.'")
        for option, value in self._texts():
            if any(ord(c) < 32 for c in value):
                raise UsageError(f"{option} contains a control character (newline, tab...)", "give one line")
        for address in self.notify_to:
            if "@" not in address or any(c.isspace() for c in address):
                raise UsageError(f"--notify-to {address!r} is not an email address")
        for name, _ in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise UsageError(f"--env {name!r} is not a valid variable name", "use NAME=VALUE")
            if SECRET_NAME.search(name):
                raise UsageError(f"--env {name} looks like a secret, and job definitions must hold none",
                                 "store it as a Jenkins credential and bind it (e.g. --smtp-credentials ID)")
        for name, value in self.env:
            reason = url_secret(value)
            if reason:
                raise UsageError(f"--env {name}=... is a URL with {reason}, and job definitions must hold no secret",
                                 "set it in the agent's environment or bind it from a Jenkins credential")
        self.schedule_warnings()
        return self

    def schedule_warnings(self) -> list[str]:
        """Check both schedules in Jenkins' cron dialect (UsageError naming the option); Jenkins' own warnings."""
        return [*cron.check_spec(self.poll_schedule, "--poll"),
                *cron.check_spec(self.monitor_schedule, "--monitor-schedule")]

    def _texts(self) -> Iterable[tuple[str, str]]:
        for option, value in (("--repo", self.repo_url), ("--branch", self.branch),
                              ("--workspace", self.workspace), ("--metric", self.metric),
                              ("--agent-label", self.agent_label), ("--image-keras", self.image_keras),
                              ("--image-sklearn", self.image_sklearn), ("--prefix", self.prefix),
                              ("--mlops-path", self.mlops_path),
                              ("--smtp-credentials", self.smtp_credentials),
                              ("--git-credentials", self.git_credentials)):
            if value is not None:
                yield option, value
        for address in self.notify_to:
            yield "--notify-to", address
        for name, value in self.env:
            yield f"--env {name}", value


def parse_env_pairs(pairs: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """NAME=VALUE strings from --env into pairs."""
    out = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--env {pair!r} is not NAME=VALUE")
        out.append((name, value))
    return tuple(out)


# ---- rendering --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RenderedItem:
    """One rendered config.xml: a job or the view."""

    kind: str  # "job" | "view"
    name: str
    xml: str
    template: Path


@dataclasses.dataclass(frozen=True)
class Rendering:
    """The whole chain rendered for one server (or for a dry run)."""

    jobs: list[RenderedItem]
    view: RenderedItem | None
    warnings: list[str]

    @property
    def items(self) -> list[RenderedItem]:
        return [*self.jobs, *([self.view] if self.view else [])]


def find_definitions(path: str | os.PathLike[str] | None = None) -> Path:
    """The jenkins/ folder: --definitions, else $JENKINS_DEFINITIONS, else the checkout's (beside this package),
    else the copy a wheel installs under PREFIX/share/mlops/jenkins."""
    given = [Path(p) for p in (path, os.environ.get(DEFINITIONS_ENV)) if p]
    installed = [Path(__file__).resolve().parents[2] / "jenkins", Path(sys.prefix) / "share" / "mlops" / "jenkins"]
    folder = given[0] if given else next((c for c in installed if (c / "jobs").is_dir()), installed[0])
    if not (folder / "jobs").is_dir():
        raise DefinitionError(f"no job definitions in {folder} (expected {folder / 'jobs'}/*.xml)",
                              "pass --definitions DIR: the jenkins/ folder of the mlops checkout")
    return folder


def fill(template: str, values: Mapping[str, str], fragments: Mapping[str, str], where: str) -> str:
    """Replace {{name}}, {{name|sh}} and {{name|xml}}; anything unknown is a DefinitionError."""
    def substitute(match: re.Match[str]) -> str:
        name, flt = match.group(1), match.group(2)
        if flt == "xml":
            if name not in fragments:
                raise DefinitionError(f"{where}: unknown fragment {{{{{name}|xml}}}}",
                                      f"known: {', '.join(sorted(fragments))}")
            return fragments[name]
        if flt not in (None, "sh"):
            raise DefinitionError(f"{where}: unknown filter |{flt} in {match.group(0)}", "use |sh or |xml")
        if name not in values:
            raise DefinitionError(f"{where}: unknown placeholder {match.group(0)}",
                                  f"known: {', '.join(sorted(values))}")
        value = values[name]
        return escape(shlex.quote(value) if flt == "sh" else value, {'"': "&quot;", "'": "&apos;"})

    result = _PLACEHOLDER.sub(substitute, template)
    leftover = re.search(r"\{\{[^}]*\}\}", result)
    if leftover:
        raise DefinitionError(f"{where}: malformed placeholder {leftover.group(0)}")
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"cannot read {path}: {exc.strerror}") from exc


def _job_files(folder: Path) -> dict[str, Path]:
    """jobs/N-name.xml files by their number N ("1".."6")."""
    files: dict[str, Path] = {}
    for path in sorted((folder / "jobs").glob("*.xml")):
        number = path.stem.split("-", 1)[0]
        if not number.isdigit() or number in files:
            raise DefinitionError(f"{path}: job files must be named N-name.xml with a unique number N")
        files[number] = path
    if not files:
        raise DefinitionError(f"no job definitions in {folder / 'jobs'}")
    return files


def job_names(params: ChainParams, definitions: Path) -> dict[str, str]:
    """Job number -> Jenkins job name (prefix + file stem), e.g. "3" -> "mlops-3-evaluate"."""
    return {number: params.prefix + path.stem for number, path in _job_files(definitions).items()}


def _preamble(params: ChainParams) -> str:
    """The shell lines every job starts with: where the workspace is and how to judge a model."""
    q = shlex.quote
    lines = ["# mlops chain settings, rendered by `mlops jenkins install` (secrets come from Jenkins credentials)"]
    if params.mlops_path:
        lines.append(f'export PATH={q(params.mlops_path)}:"$PATH"')
    lines.append(f"export MLOPS_WORKSPACE={q(params.agent_workspace())}")
    lines.append(f"export MLOPS_THRESHOLD={q(repr(float(params.threshold)))}")
    if params.max_attempts is not None:
        lines.append(f"export MLOPS_MAX_ATTEMPTS={q(str(params.max_attempts))}")
    if params.metric:
        lines.append(f"export MLOPS_METRIC={q(params.metric)}")
    if params.image_keras:
        lines.append(f"export MLOPS_IMAGE_KERAS={q(params.image_keras)}")
    if params.image_sklearn:
        lines.append(f"export MLOPS_IMAGE_SKLEARN={q(params.image_sklearn)}")
    for name, value in params.env:
        lines.append(f"export {name}={q(value)}")
    return "\n".join(lines)


def is_local_repo(url: str) -> bool:
    """A path or file:// URL: `mlops pull` reads it, the git plugin refuses it on the built-in node."""
    from mlops_cli.adapters.git import _SCP_LIKE

    return url.lower().startswith("file://") or ("://" not in url and not _SCP_LIKE.match(url))


def _is_ssh(url: str) -> bool:
    from mlops_cli.adapters.git import _SCP_LIKE

    return url.lower().startswith(("ssh://", "git+ssh://", "ssh+git://")) or ("://" not in url and bool(_SCP_LIKE.match(url)))


def render(params: ChainParams, plugins: Iterable[str] = KNOWN_PLUGINS,
           definitions: str | os.PathLike[str] | None = None) -> Rendering:
    """Render jobs and view for a server that has `plugins`; warnings say what a missing plugin costs."""
    params.validate()
    folder = find_definitions(definitions)
    have = set(plugins)
    names = job_names(params, folder)
    warnings: list[str] = list(params.schedule_warnings())
    missing_required = []
    if JUNIT_PLUGIN not in have:
        missing_required.append(f"{JUNIT_PLUGIN} (job 3 publishes the evaluation as JUnit)")
    for option, used in (("--smtp-credentials", params.smtp_credentials), ("--git-credentials", params.git_credentials)):
        if used and CREDENTIALS_BINDING_PLUGIN not in have:
            missing_required.append(f"{CREDENTIALS_BINDING_PLUGIN} (binds {option})")
    if missing_required:
        raise JenkinsError(f"Jenkins lacks the plugin(s) {'; '.join(missing_required)}",
                           "install them under Manage Jenkins > Plugins, then run install again")

    values = _values(params, names)

    def fragment(name: str, extra: Mapping[str, str] | None = None) -> str:
        path = folder / "fragments" / f"{name}.xml"
        return fill(_read(path), {**values, **(extra or {})}, fragments, str(path)).strip()

    fragments: dict[str, str] = {"git_credentials": ""}
    if params.git_credentials:
        fragments["git_credentials"] = "\n        " + fragment("git-credentials")
    local = is_local_repo(params.repo_url)
    if GIT_PLUGIN in have and not local:
        fragments["scm"] = fragment("scm-git")
    else:
        fragments["scm"] = fragment("scm-none")
        trigger_hint = f"runs only when started (`mlops jenkins trigger {names.get('1', '1')}`, e.g. from a post-receive hook)"
        warnings.append(f"--repo is a local path: the git plugin refuses to poll or check out local paths on the "
                        f"built-in node, so job 1 {trigger_hint}; give a URL to poll" if local else
                        f"no {GIT_PLUGIN} plugin: job 1 cannot poll the repository and {trigger_hint}; "
                        "install the git plugin")
    if GITHUB_PLUGIN in have and not local:
        fragments["push_trigger"] = fragment("github-push-trigger")
    else:
        fragments["push_trigger"] = ""
        if not local:
            warnings.append(f"no {GITHUB_PLUGIN} plugin: no push trigger for job 1, it polls on "
                            f"'{params.poll_schedule}' (or use the git plugin's /git/notifyCommit hook)")
    fragments["node"] = fragment("node-label")
    fragments["smtp_binding"] = fragment("smtp-binding") if params.smtp_credentials else ""
    fragments["git_binding"] = (fragment("git-binding-ssh" if _is_ssh(params.repo_url) else "git-binding-userpass")
                                if params.git_credentials else "")
    fragments["view_job_names"] = "".join(f"\n    <string>{escape(n)}</string>" for n in sorted(names.values()))
    discarders = {
        "chain": fragment("discarder", {"keep_builds": str(params.keep_builds)}),
        "monitor": fragment("discarder", {"keep_builds": str(params.monitor_keep_builds)}),
    }

    jobs = []
    for number, path in _job_files(folder).items():
        own = {**fragments, "discarder": discarders["monitor" if number == "6" else "chain"]}
        text = fill(_read(path), values, own, str(path))
        _check_xml(text, path, expect_root="project")
        jobs.append(RenderedItem("job", names[number], text, path))
    if PIPELINE_VIEW_PLUGIN in have:
        view_path = folder / "views" / "pipeline.xml"
    else:
        view_path = folder / "views" / "list.xml"
        warnings.append(f"no {PIPELINE_VIEW_PLUGIN}: the chain gets a list view instead of a pipeline view")
    view_text = fill(_read(view_path), values, fragments, str(view_path))
    _check_xml(view_text, view_path)
    view = RenderedItem("view", values["view_name"], view_text, view_path)
    return Rendering(jobs=jobs, view=view, warnings=warnings)


def _values(params: ChainParams, names: Mapping[str, str]) -> dict[str, str]:
    """The placeholder values of the job definitions."""
    return {
        "repo_url": params.repo_url, "branch": params.branch, "workspace": params.agent_workspace(),
        "threshold": repr(float(params.threshold)), "runner": params.runner,
        "poll_schedule": params.poll_schedule, "monitor_schedule": params.monitor_schedule,
        "train_timeout": str(params.train_timeout), "prefix": params.prefix,
        "agent_label": params.agent_label, "smtp_credentials_id": params.smtp_credentials or "",
        "git_credentials_id": params.git_credentials or "",
        "keep_days": str(params.keep_days), "keep_builds": str(params.keep_builds),
        "without_smtp": "env -u MLOPS_SMTP_USER -u MLOPS_SMTP_PASSWORD " if params.smtp_credentials else "",
        "notify_args": "".join(f" --to {shlex.quote(a)}" for a in params.notify_to),
        "preamble": _preamble(params), "view_name": f"{params.prefix}chain",
        **{f"job{number}": name for number, name in names.items()},
    }


_DEFAULTS_BLOCK = re.compile(r"(// mlops:defaults-begin[^\n]*\n)(.*?)(// mlops:defaults-end)", re.DOTALL)


def _groovy(value: str) -> str:
    """A single-quoted Groovy string literal (no interpolation)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_pipeline(params: ChainParams, plugins: Iterable[str] = (*KNOWN_PLUGINS, *PIPELINE_PLUGINS),
                    definitions: str | os.PathLike[str] | None = None) -> Rendering:
    """`install --pipeline`: jenkins/Jenkinsfile as a Pipeline job, its DEFAULTS block holding the options, next
    to job 6 (monitor), which must run while the pipeline waits for a training."""
    params.validate()
    folder = find_definitions(definitions)
    have = set(plugins)
    missing = [p for p in (*PIPELINE_PLUGINS, GIT_PLUGIN) if p not in have]
    if params.smtp_credentials or params.git_credentials:
        missing += [CREDENTIALS_BINDING_PLUGIN] if CREDENTIALS_BINDING_PLUGIN not in have else []
    if missing:
        raise JenkinsError(f"Jenkins lacks the plugin(s) {', '.join(missing)} that --pipeline needs",
                           "install them (Pipeline, Git), or install the freestyle jobs without --pipeline")
    chain = render(params, plugins, definitions)
    monitor = next(item for item in chain.jobs if item.template.stem.startswith("6-"))
    script = _read(folder / "Jenkinsfile")
    defaults = {"REPO_URL": params.repo_url, "BRANCH": params.branch, "THRESHOLD": repr(float(params.threshold)),
                "NOTIFY_TO": " ".join(params.notify_to), "AGENT_LABEL": params.agent_label,
                "RUNNER": params.runner, "WORKSPACE_DIR": params.agent_workspace(),
                "GIT_CREDENTIALS": params.git_credentials or "", "SMTP_CREDENTIALS": params.smtp_credentials or "",
                "POLL": params.poll_schedule, "KEEP_DAYS": str(params.keep_days),
                "KEEP_BUILDS": str(params.keep_builds)}
    match = _DEFAULTS_BLOCK.search(script)
    if not match or "DEFAULTS = [" not in match.group(2):
        raise DefinitionError(f"{folder / 'Jenkinsfile'} has no DEFAULTS block between "
                              "// mlops:defaults-begin and // mlops:defaults-end")
    block = "".join(f"    {name}: {_groovy(value)},\n" for name, value in defaults.items())
    head = match.group(2).split("\n", 1)[0]
    script = script[:match.start(2)] + f"{head}\n{block}]\n" + script[match.end(2):]
    path = folder / "pipeline" / "job.xml"
    names = job_names(params, folder)
    values = {**_values(params, names), "pipeline_script": script}
    discarder = fill(_read(folder / "fragments" / "discarder.xml"), values, {}, "discarder.xml").strip()
    text = fill(_read(path), values, {"discarder": discarder}, str(path))
    _check_xml(text, path, expect_root="flow-definition")
    job = RenderedItem("job", f"{params.prefix}pipeline", text, path)
    return Rendering(jobs=[job, monitor], view=None,
                     warnings=[w for w in chain.warnings if "view" not in w])


def _check_xml(text: str, path: Path, expect_root: str | None = None) -> ET.Element:
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise DefinitionError(f"{path} does not render to well-formed XML ({exc})") from None
    if expect_root and root.tag != expect_root:
        raise DefinitionError(f"{path}: the root element must be <{expect_root}>, not <{root.tag}>")
    return root


def write_rendering(rendering: Rendering, out: str | os.PathLike[str]) -> list[Path]:
    """--dry-run: one JOB.xml per job in OUT, the view in OUT/views/; each file written atomically."""
    out = Path(out)
    written = []
    for item in rendering.items:
        path = (out / "views" if item.kind == "view" else out) / f"{item.name}.xml"
        try:
            atomic_write_text(path, item.xml)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}", "choose a writable --out") from exc
        written.append(path)
    return written


# ---- comparing with what the server stores ----------------------------------------------------------------------

#: elements whose children are a list we own: the server must hold exactly these children (no more, no fewer)
_OWNED_LISTS = {"triggers", "builders", "publishers", "buildWrappers", "bindings", "jobNames", "columns",
                "userRemoteConfigs", "branches"}


def _norm_text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _norm_attrs(element: ET.Element) -> dict[str, str]:
    """Jenkins adds versions to plugin attributes (plugin="git@5.2.1"): compare the plugin name only."""
    attrs = dict(element.attrib)
    if "plugin" in attrs:
        attrs["plugin"] = attrs["plugin"].split("@", 1)[0]
    return attrs


def _covers(theirs: ET.Element, ours: ET.Element) -> bool:
    """True when the server's element holds everything ours says (Jenkins adds defaults; those are fine)."""
    if theirs.tag != ours.tag or _norm_text(theirs) != _norm_text(ours):
        return False
    their_attrs = _norm_attrs(theirs)
    if any(their_attrs.get(k) != v for k, v in _norm_attrs(ours).items()):
        return False
    our_children = list(ours)
    their_children = list(theirs)
    if ours.tag in _OWNED_LISTS and sorted(c.tag for c in their_children) != sorted(c.tag for c in our_children):
        return False
    used: set[int] = set()
    for child in our_children:
        for index, candidate in enumerate(their_children):
            if index not in used and candidate.tag == child.tag and _covers(candidate, child):
                used.add(index)
                break
        else:
            # an empty field this Jenkins version does not know (e.g. <configuredLocalRules/>) is not stored
            empty = not _norm_text(child) and not len(child) and not child.attrib
            if not (empty and ours.tag not in _OWNED_LISTS):
                return False
    return True


def same_config(ours: str, theirs: str) -> bool:
    """Whether the server's config.xml already says what ours says, after Jenkins' own rewriting."""
    try:
        return _covers(ET.fromstring(theirs.encode("utf-8")), ET.fromstring(ours.encode("utf-8")))
    except ET.ParseError:
        return False


# ---- install ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class InstallAction:
    kind: str  # job | view
    name: str
    action: str  # created | updated | unchanged | replaced | written


@dataclasses.dataclass(frozen=True)
class InstallReport:
    server: str
    version: str | None
    actions: list[InstallAction]
    warnings: list[str]


def install(client: JenkinsClient, params: ChainParams, definitions: str | os.PathLike[str] | None = None,
            plugins: Iterable[str] | None = None, pipeline: bool = False) -> InstallReport:
    """Create or update the jobs and the view; repeatable: jobs the server already holds as defined are left alone.

    Least privilege: Overall/Read, Job/Create, Job/Configure (and View/Create once, View/Configure after). Without
    Overall/SystemRead or Administer the plugin list cannot be read: `plugins` (--plugins) says which are there,
    else the known ones are assumed, with one warning."""
    params.validate()
    find_definitions(definitions)
    client.whoami()
    version = client.version()
    warnings: list[str] = []
    if plugins is None:
        try:
            plugins = client.plugins()
        except PermissionDenied as exc:
            assumed = (*KNOWN_PLUGINS, *(PIPELINE_PLUGINS if pipeline else ()))
            plugins = assumed
            warnings.append(f"cannot list plugins ({exc.permission or 'a permission'} is missing; listing needs "
                            f"{PLUGIN_LIST_PERMISSION}): assuming {', '.join(assumed)}; "
                            "pass --plugins NAME,... to say which this Jenkins has")
    nodes = client.label_nodes(params.agent_label)
    if nodes == []:
        warnings.append(f"no node has the label {params.agent_label!r}: the jobs will wait in the queue; give it to "
                        "the agent that has mlops and the workspace (Manage Jenkins > Nodes), or pass --agent-label")
    rendering = (render_pipeline if pipeline else render)(params, plugins, definitions)
    warnings += rendering.warnings
    actions = []
    for item in rendering.jobs:
        current = client.job_config(item.name)
        if current is None:
            client.create_job(item.name, item.xml)
            actions.append(InstallAction("job", item.name, "created"))
        elif same_config(item.xml, current):
            actions.append(InstallAction("job", item.name, "unchanged"))
        else:
            client.update_job(item.name, item.xml)
            actions.append(InstallAction("job", item.name, "updated"))
    if rendering.view is not None:
        try:
            actions.append(InstallAction("view", rendering.view.name, _install_view(client, rendering.view)))
        except PermissionDenied as exc:
            warnings.append(f"the view {rendering.view.name} was not installed ({exc.permission or 'View/Create'} "
                            "is missing); the jobs are: grant View/Create once, or make the view by hand")
            actions.append(InstallAction("view", rendering.view.name, "skipped"))
    return InstallReport(server=client.url, version=version, actions=actions, warnings=warnings)


def _install_view(client: JenkinsClient, view: RenderedItem) -> str:
    current = client.view_config(view.name)
    if current is None:
        client.create_view(view.name, view.xml)
        return "created"
    if same_config(view.xml, current):
        return "unchanged"
    if ET.fromstring(current.encode("utf-8")).tag != ET.fromstring(view.xml.encode("utf-8")).tag:
        # Jenkins cannot change a view's type through config.xml: delete it and create it again
        client.delete_view(view.name)
        client.create_view(view.name, view.xml)
        return "replaced"
    client.update_view(view.name, view.xml)
    return "updated"


def dry_run(params: ChainParams, out: str | os.PathLike[str], plugins: Iterable[str] = KNOWN_PLUGINS,
            definitions: str | os.PathLike[str] | None = None, pipeline: bool = False) -> InstallReport:
    """Write what install would upload, for review or for `mlops jenkins simulate --from OUT`."""
    rendering = (render_pipeline(params, (*plugins, *PIPELINE_PLUGINS), definitions) if pipeline
                 else render(params, plugins, definitions))
    written = write_rendering(rendering, out)
    actions = [InstallAction(item.kind, str(path), "written") for item, path in zip(rendering.items, written)]
    return InstallReport(server=str(out), version=None, actions=actions, warnings=rendering.warnings)


# ---- trigger and status -----------------------------------------------------------------------------------------

def resolve_job(job: str, params_prefix: str, definitions: str | os.PathLike[str] | None = None) -> str:
    """Accept a full job name, or the chain's short forms: "3", "evaluate", "3-evaluate"."""
    try:
        files = _job_files(find_definitions(definitions))
    except DefinitionError:
        return job
    for number, path in files.items():
        if job in (number, path.stem, path.stem.split("-", 1)[-1]):
            return params_prefix + path.stem
    return job


@dataclasses.dataclass(frozen=True)
class TriggerResult:
    job: str
    queue_id: int
    build: BuildInfo | None
    console: str

    @property
    def exit_code(self) -> int:
        if self.build is None:
            return 0
        return RESULT_EXIT.get(self.build.result or "", 1)


def trigger(client: JenkinsClient, job: str, wait: bool = False, timeout: float = 3600.0, poll: float = 1.0,
            on_output: Callable[[str], None] | None = None) -> TriggerResult:
    """Queue a build; with `wait`, follow queue item -> build -> result, passing new console text to on_output."""
    queue_id = client.build(job)
    if not wait:
        return TriggerResult(job=job, queue_id=queue_id, build=None, console="")
    deadline = time.monotonic() + timeout
    number = None
    while number is None:
        state = client.queue_state(queue_id)
        if state.cancelled:
            raise JenkinsError(f"the build of {job} was cancelled in the queue (item {queue_id})")
        number = state.number
        if number is None:
            _sleep_or_timeout(deadline, poll, f"{job} still waiting in the queue ({state.why or 'no reason given'})")
    shown = 0
    while True:
        info = client.build_info(job, number)
        text = client.console(job, number)
        if on_output is not None and len(text) > shown:
            on_output(text[shown:])
        shown = max(shown, len(text))
        if not info.building and info.result is not None:
            return TriggerResult(job=job, queue_id=queue_id, build=info, console=text)
        _sleep_or_timeout(deadline, poll, f"{job} #{number} still running")


def _sleep_or_timeout(deadline: float, poll: float, what: str) -> None:
    if time.monotonic() >= deadline:
        raise JenkinsError(f"gave up waiting: {what}", "raise --timeout, or look at the build in Jenkins")
    time.sleep(poll)


@dataclasses.dataclass(frozen=True)
class JobStatus:
    job: str
    installed: bool
    last: BuildInfo | None


def status(client: JenkinsClient, params_prefix: str,
           definitions: str | os.PathLike[str] | None = None) -> list[JobStatus]:
    """The last build of each chain job (or that the job is not installed)."""
    client.whoami()
    rows = []
    for number, path in _job_files(find_definitions(definitions)).items():
        name = params_prefix + path.stem
        last = client.last_build(name)
        rows.append(JobStatus(job=name, installed=last is not False, last=last or None))
    return rows


# ---- what job 2 and job 5 run after `mlops train --detach` ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WaitResult:
    run_id: str
    status: str
    restarts: int
    waited_s: float


def wait_for_run(workspace: Workspace, run_id: str | None = None, timeout: float = 6 * 3600.0,
                 stale_after: float = 600.0, poll: float = 1.0,
                 on_output: Callable[[str], None] | None = None) -> WaitResult:
    """Follow a training run to its end through restarts by job 6 (monitor), streaming its train.log.

    It follows the run's record, not a process: when the training process dies and monitor starts it again,
    the run stays `running` and the wait goes on; when the harness has said how the run ended and let go of the
    training lock, the wait records the end (`Workspace.settle`). It gives up when the run failed, when nothing
    has held the training lock for `stale_after` seconds while the run is unfinished (no monitor running?), or
    at `timeout`. The log is read through `Workspace.follow_log`, which never follows a link the run planted.
    """
    record = workspace.load_run(run_id) if run_id else workspace.latest_run()
    if record is None:
        raise UsageError(f"no training run in {workspace.root} to wait for", "start one with `mlops train --detach`")
    run_id = record.id
    start = time.monotonic()
    idle_since: float | None = None
    offset = 0

    def stream() -> None:
        nonlocal offset
        while True:
            text, offset = workspace.follow_log(run_id, offset)
            if not text:
                return
            if on_output is not None:
                on_output(text)

    while True:
        stream()
        workspace.settle()
        record = workspace.load_run(run_id)
        if record.status.finished:
            stream()
            waited = time.monotonic() - start
            if record.status is RunStatus.FAILED:
                raise TrainingFailed(f"run {run_id} failed{': ' + record.error if record.error else ''}",
                                     "see `mlops status` and the run's train.log")
            return WaitResult(run_id, record.status.value, len(record.restarts), waited)
        now = time.monotonic()
        if workspace.training_holder() is None:
            idle_since = idle_since if idle_since is not None else now
            if now - idle_since >= stale_after:
                raise TrainingFailed(f"run {run_id} is {record.status.value} but nothing has trained it for "
                                     f"{stale_after:.0f} s", "is job 6 (mlops monitor) enabled and scheduled?")
        else:
            idle_since = None
        if now - start >= timeout:
            raise TrainingFailed(f"run {run_id} still {record.status.value} after {timeout:.0f} s",
                                 "raise --timeout, or look at its train.log")
        time.sleep(poll)
