"""Jobs 1-6 (and with --agents the fan-out jobs 7-8) as data: render the `jenkins/` config.xml templates for one
server (or a dry run).

The job definitions live in `jenkins/jobs/*.xml`, `jenkins/fanout/*.xml` and `jenkins/views/*.xml`: Jenkins' own
config.xml format with `{{name}}` placeholders. We chose plain config.xml templates over Jenkins Job Builder YAML because what is in the
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
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from mlops_cli.errors import ConfigError, JenkinsError, UsageError
from mlops_cli.jenkins.params import COORDINATION_DB_VAR, TRACKING_URI_VAR, ChainParams
from mlops_cli.workspace import atomic_write_text

DEFINITIONS_ENV = "JENKINS_DEFINITIONS"
PIPELINE_VIEW_PLUGIN = "build-pipeline-plugin"
GIT_PLUGIN = "git"
GITHUB_PLUGIN = "github"
JUNIT_PLUGIN = "junit"
CREDENTIALS_BINDING_PLUGIN = "credentials-binding"
PIPELINE_PLUGINS = ("workflow-job", "workflow-cps", "pipeline-model-definition")
#: --agents: job 8 starts K builds of job 7 with distinct parameters (core's BuildTrigger passes none, so Jenkins'
#: queue would fold K requests for the same job into one item)
FANOUT_PLUGIN = "parameterized-trigger"
#: plugins our definitions can use; the ones a dry run assumes unless told otherwise
KNOWN_PLUGINS = (GIT_PLUGIN, GITHUB_PLUGIN, JUNIT_PLUGIN, CREDENTIALS_BINDING_PLUGIN, PIPELINE_VIEW_PLUGIN)
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*(?:\|\s*([a-z]+)\s*)?\}\}")


class DefinitionError(ConfigError):
    """A job definition under jenkins/ is broken (unknown placeholder, not XML, missing file): exit 2."""



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


def job_files(folder: Path) -> dict[str, Path]:
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


def fanout_files(folder: Path) -> dict[str, Path]:
    """fanout/N-name.xml: the agent job (7) and the job that starts K builds of it (8), installed with --agents."""
    files = {path.stem.split("-", 1)[0]: path for path in sorted((folder / "fanout").glob("*.xml"))}
    if sorted(files) != ["7", "8"]:
        raise DefinitionError(f"{folder / 'fanout'} must hold 7-NAME.xml (the agent job) and 8-NAME.xml (the fan-out)")
    return files


def chain_files(folder: Path, params: ChainParams) -> dict[str, Path]:
    """Job number -> template of every job install writes: the six, and 7-8 when --agents asks for them."""
    return {**job_files(folder), **(fanout_files(folder) if params.agents else {})}


def job_names(params: ChainParams, definitions: Path) -> dict[str, str]:
    """Job number -> Jenkins job name (prefix + file stem), e.g. "3" -> "mlops-3-evaluate"; 7 and 8 with --agents."""
    return {number: params.prefix + path.stem for number, path in chain_files(definitions, params).items()}


def goal_env(params: ChainParams) -> dict[str, str]:
    """The goal settings install was given, as the environment every job exports; one not given is not exported,
    so that the jobs read it from mlops.yaml, else its default, as `mlops run` does."""
    given = {"MLOPS_THRESHOLD": None if params.threshold is None else repr(float(params.threshold)),
             "MLOPS_MAX_ATTEMPTS": None if params.max_attempts is None else str(params.max_attempts),
             "MLOPS_METRIC": params.metric}
    return {name: value for name, value in given.items() if value is not None}


def _preamble(params: ChainParams, workspace: str | None = None) -> str:
    """The shell lines every job starts with: where the workspace is and the goal settings given to install
    (`workspace`: a shell word used as is, for the agent job's own one)."""
    q = shlex.quote
    lines = ["# mlops chain settings, rendered by `mlops jenkins install` (secrets come from Jenkins credentials)"]
    if params.mlops_path:
        lines.append(f'export PATH={q(params.mlops_path)}:"$PATH"')
    lines.append(f"export MLOPS_WORKSPACE={workspace or q(params.agent_workspace())}")
    for name, value in goal_env(params).items():
        lines.append(f"export {name}={q(value)}")
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


def render(params: ChainParams, plugins: Iterable[str] | None = None,
           definitions: str | os.PathLike[str] | None = None) -> Rendering:
    """Render jobs and view for a server that has `plugins` (default: `assumed_plugins`); warnings say what a
    missing plugin costs."""
    params.validate()
    folder = find_definitions(definitions)
    have = set(assumed_plugins(params) if plugins is None else plugins)
    names = job_names(params, folder)
    warnings: list[str] = list(params.schedule_warnings())
    missing_required = []
    if params.agents:
        for plugin, why in ((CREDENTIALS_BINDING_PLUGIN, "binds --coordination-credentials"),
                            (FANOUT_PLUGIN, "job 8 starts the agent builds with distinct parameters")):
            if plugin not in have:
                missing_required.append(f"{plugin} ({why})")
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

    def wrapper(*bindings: str) -> str:
        """One SecretBuildWrapper around the given bindings (a freestyle job has one), or none at all."""
        inner = "".join(f"\n        {b}" for b in bindings if b)
        return fill(_read(folder / "fragments" / "secret-wrapper.xml"), values, {"bindings": inner},
                    "secret-wrapper.xml").strip() if inner else ""

    git_binding = (fragment("git-binding-ssh" if _is_ssh(params.repo_url) else "git-binding-userpass")
                   if params.git_credentials else "")
    fragments["smtp_binding"] = wrapper(fragment("smtp-binding") if params.smtp_credentials else "")
    fragments["git_binding"] = wrapper(git_binding)
    if params.agents:
        fragments["agent_bindings"] = wrapper(
            fragment("string-binding", {"binding_credentials_id": params.coordination_credentials or "",
                                        "binding_variable": COORDINATION_DB_VAR}),
            fragment("string-binding", {"binding_credentials_id": params.tracking_credentials,
                                        "binding_variable": TRACKING_URI_VAR}) if params.tracking_credentials else "",
            git_binding)
        fragments["agent_triggers"] = "".join(
            "\n        " + fragment("trigger-agent", {"agent_index": str(index)})
            for index in range(1, params.agents + 1))
    fragments["view_job_names"] = "".join(f"\n    <string>{escape(n)}</string>" for n in sorted(names.values()))
    discarders = {
        "chain": fragment("discarder", {"keep_builds": str(params.keep_builds)}),
        "monitor": fragment("discarder", {"keep_builds": str(params.monitor_keep_builds)}),
    }

    jobs = []
    for number, path in chain_files(folder, params).items():
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
        "runner": params.runner,
        "poll_schedule": params.poll_schedule, "monitor_schedule": params.monitor_schedule,
        "train_timeout": str(params.train_timeout), "prefix": params.prefix,
        "agent_label": params.agent_label, "smtp_credentials_id": params.smtp_credentials or "",
        "git_credentials_id": params.git_credentials or "",
        "keep_days": str(params.keep_days), "keep_builds": str(params.keep_builds),
        "without_smtp": "env -u MLOPS_SMTP_USER -u MLOPS_SMTP_PASSWORD " if params.smtp_credentials else "",
        "notify_args": "".join(f" --to {shlex.quote(a)}" for a in params.notify_to),
        "preamble": _preamble(params), "view_name": f"{params.prefix}chain",
        "agents": str(params.agents or 0), "agent_preamble": _preamble(params, '"$WORKSPACE/mlops-agent"'),
        "agent_exports": _agent_exports(params),
        **{f"job{number}": name for number, name in names.items()},
    }


def _agent_exports(params: ChainParams) -> str:
    """What the agent job exports beside the preamble: one experiment name on every node, the runner."""
    q = shlex.quote
    lines = [f"export MLOPS_AGENT_RUNNER={q(params.runner)}"]
    if "MLOPS_TRACKING_EXPERIMENT" not in dict(params.env):
        lines.insert(0, f"export MLOPS_TRACKING_EXPERIMENT={q(params.experiment())}")
    return "".join(f"\n{line}" for line in lines)


def assumed_plugins(params: ChainParams, pipeline: bool = False) -> tuple[str, ...]:
    """The plugins a dry run (or an install that may not list them) takes the server to have."""
    return (*KNOWN_PLUGINS, *(PIPELINE_PLUGINS if pipeline else ()), *((FANOUT_PLUGIN,) if params.agents else ()))


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
    if params.smtp_credentials or params.git_credentials or params.agents:
        missing += [CREDENTIALS_BINDING_PLUGIN] if CREDENTIALS_BINDING_PLUGIN not in have else []
    if missing:
        raise JenkinsError(f"Jenkins lacks the plugin(s) {', '.join(missing)} that --pipeline needs",
                           "install them (Pipeline, Git), or install the freestyle jobs without --pipeline")
    # the pipeline runs its agents in a `parallel` stage: no freestyle jobs 7 and 8 beside it
    chain = render(dataclasses.replace(params, agents=None, coordination_credentials=None, tracking_credentials=None),
                   plugins, definitions)
    monitor = next(item for item in chain.jobs if item.template.stem.startswith("6-"))
    script = _read(folder / "Jenkinsfile")
    goal = goal_env(params)
    defaults = {"REPO_URL": params.repo_url, "BRANCH": params.branch, "THRESHOLD": goal.get("MLOPS_THRESHOLD", ""),
                "METRIC": goal.get("MLOPS_METRIC", ""), "MAX_ATTEMPTS": goal.get("MLOPS_MAX_ATTEMPTS", ""),
                "NOTIFY_TO": " ".join(params.notify_to), "AGENT_LABEL": params.agent_label,
                "RUNNER": params.runner, "WORKSPACE_DIR": params.agent_workspace(),
                "GIT_CREDENTIALS": params.git_credentials or "", "SMTP_CREDENTIALS": params.smtp_credentials or "",
                "POLL": params.poll_schedule, "KEEP_DAYS": str(params.keep_days),
                "KEEP_BUILDS": str(params.keep_builds), "AGENTS": str(params.agents or ""),
                "COORDINATION_CREDENTIALS": params.coordination_credentials or "",
                "TRACKING_CREDENTIALS": params.tracking_credentials or "", "EXPERIMENT": params.experiment()}
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
