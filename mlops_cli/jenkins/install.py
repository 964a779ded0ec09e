"""Install the rendered chain on a server: update-or-create, compared with what the server stores."""
from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from mlops_cli.adapters.jenkins_client import JenkinsClient, PermissionDenied
from mlops_cli.jenkins.params import ChainParams
from mlops_cli.jenkins.render import (
    PIPELINE_PLUGINS,
    RenderedItem,
    assumed_plugins,
    find_definitions,
    render,
    render_pipeline,
    write_rendering,
)

#: who may list plugins: without it, install assumes KNOWN_PLUGINS (or --plugins) and says so once
PLUGIN_LIST_PERMISSION = "Overall/SystemRead or Overall/Administer"


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
            assumed = assumed_plugins(params, pipeline)
            plugins = assumed
            warnings.append(f"cannot list plugins ({exc.permission or 'a permission'} is missing; listing needs "
                            f"{PLUGIN_LIST_PERMISSION}): assuming {', '.join(assumed)}; "
                            "pass --plugins NAME,... to say which this Jenkins has")
    nodes = client.label_nodes(params.agent_label)
    if nodes == []:
        warnings.append(f"no node has the label {params.agent_label!r}: the jobs will wait in the queue; give it to "
                        "the agent that has mlops and the workspace (Manage Jenkins > Nodes), or pass --agent-label")
    elif nodes is not None and params.agents and not pipeline and len(nodes) < params.agents:
        warnings.append(f"--agents {params.agents}, but only {len(nodes)} node(s) have the label "
                        f"{params.agent_label!r}: the agent builds share their executors, and those beyond the free "
                        "ones wait in the queue; give the label to more nodes for one agent per machine")
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


def dry_run(params: ChainParams, out: str | os.PathLike[str], plugins: Iterable[str] | None = None,
            definitions: str | os.PathLike[str] | None = None, pipeline: bool = False) -> InstallReport:
    """Write what install would upload, for review or for `mlops jenkins simulate --from OUT`."""
    plugins = assumed_plugins(params) if plugins is None else plugins
    rendering = (render_pipeline(params, (*plugins, *PIPELINE_PLUGINS), definitions) if pipeline
                 else render(params, plugins, definitions))
    written = write_rendering(rendering, out)
    actions = [InstallAction(item.kind, str(path), "written") for item, path in zip(rendering.items, written)]
    return InstallReport(server=str(out), version=None, actions=actions, warnings=rendering.warnings)
