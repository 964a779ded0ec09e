"""Data-flow findings: what the data handed to `fit` says about the script, for Keras and scikit-learn alike.

The harness records (diagnostics `data_flow`, harness/data.flow_facts) how many rows `fit` received against the
rows of the array they were sliced from, the classes of the training labels against the held-out ones, labels
that are one value or a row index, and held-out rows that are also training rows. A debug slice left in
(`fit(x_train[:60], ...)`) and validation data that is the training data are code faults a rewrite of the `fit`
call fixes; the rest are reported as findings, since no change tweak can make fixes a data set.
"""
from __future__ import annotations

import difflib

import libcst as cst

from mlops_cli.errors import RewriteError
from mlops_cli.records import RunMetrics
from mlops_cli.safe_source import parse_cst
from mlops_cli.steps.tweak.diagnoses import Finding, strength

SLICE_SHARE_BELOW = 0.5     # fit got under half the rows it was sliced from
OVERLAP_ABOVE = 0.5         # over half the held-out rows are training rows
FIT_DATA_KEYWORDS = ("x", "y", "X", "Y")
FIXABLE = {"debug_slice": "unslice", "holdout_overlap": "drop_validation"}


def flow_findings(metrics: RunMetrics, framework: str) -> list[Finding]:
    """The data-flow faults one run recorded, strongest first; `facts["fix"]` names the script fix, if any."""
    flow = metrics.diagnostics.get("data_flow")
    if not isinstance(flow, dict):
        return []
    found: list[Finding] = []
    given, loaded = flow.get("rows_given"), flow.get("rows_loaded")
    if isinstance(given, int) and isinstance(loaded, int) and 0 < given < SLICE_SHARE_BELOW * loaded:
        found.append(Finding("debug_slice", f"fit received {given} rows of an array of {loaded} "
                             f"({given / loaded:.1%}): a slice such as x_train[:{given}] left in",
                             strength("debug_slice"), {"fix": "unslice", "given": given, "loaded": loaded}))
    overlap = flow.get("holdout_overlap")
    if isinstance(overlap, (int, float)) and overlap > OVERLAP_ABOVE:
        fix = "drop_validation" if framework == "keras" else None
        found.append(Finding("holdout_overlap", f"{overlap:.0%} of the held-out rows are also training rows: the "
                             "held-out score measures memory, not generalisation", strength("holdout_overlap"),
                             {"fix": fix, "overlap": overlap}))
    missing = flow.get("missing_classes")
    if isinstance(missing, list) and missing:
        total = flow.get("n_classes_holdout")
        found.append(Finding("missing_class", f"the held-out labels have {len(missing)} class(es) the training labels "
                             f"lack ({', '.join(map(str, missing[:5]))}" + (f" of {total}" if total else "") +
                             "): data sorted by class and cut, or filtered; shuffle before splitting",
                             strength("missing_class"), {"fix": None}))
    if flow.get("constant_labels"):
        found.append(Finding("constant_labels", "every training label is the same value: there is nothing to "
                             "learn (the wrong column taken as the target?)", strength("constant_labels"),
                             {"fix": None}))
    elif flow.get("index_labels"):
        found.append(Finding("index_labels", f"the training labels are {flow.get('distinct_labels')} distinct "
                             "consecutive integers, one per row: a row index or id taken as the target",
                             strength("index_labels"), {"fix": None}))
    return sorted(found, key=lambda f: -f.strength)


def notes(findings: list[Finding]) -> list[str]:
    """The findings no change tweak makes can fix, as sentences for the person who reads the result."""
    return [f"{f.name.replace('_', ' ')}: {f.evidence}" for f in findings if not f.facts.get("fix")]


# ---- the script fixes -----------------------------------------------------------------------------------------

def _is_fit(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value in ("fit", "fit_transform")


def _data_args(call: cst.Call) -> list[int]:
    """Indexes of the arguments of `fit` that carry the training data: the first two positional ones, or x=/y=."""
    out = []
    positional = 0
    for index, arg in enumerate(call.args):
        if arg.keyword is None and arg.star == "":
            if positional < 2:
                out.append(index)
            positional += 1
        elif arg.keyword is not None and arg.keyword.value in FIT_DATA_KEYWORDS:
            out.append(index)
    return out


def _sliced_name(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """`x_train` for `x_train[:60]` / `x_train[0:60]` (a slice of a name or attribute, not an index)."""
    if not isinstance(node, cst.Subscript) or len(node.slice) != 1:
        return None
    if not isinstance(node.slice[0].slice, cst.Slice):
        return None
    return node.value if isinstance(node.value, (cst.Name, cst.Attribute)) else None


class _FitFixer(cst.CSTTransformer):
    def __init__(self, fix: str) -> None:
        self.fix = fix
        self.changed = 0

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if not _is_fit(updated):
            return updated
        args = list(updated.args)
        if self.fix == "unslice":
            for index in _data_args(updated):
                whole = _sliced_name(args[index].value)
                if whole is not None:
                    args[index] = args[index].with_changes(value=whole)
                    self.changed += 1
        elif self.fix == "drop_validation":
            kept = [arg for arg in args if not (arg.keyword is not None and arg.keyword.value == "validation_data")]
            self.changed += len(args) - len(kept)
            if kept and len(kept) < len(args):
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            args = kept
        return updated.with_changes(args=args)


def fix_script(text: str, fix: str, filename: str = "train.py") -> tuple[str, str]:
    """The script with `fix` made in its `fit` calls ("unslice": `fit(x_train[:60], y_train[:60])` ->
    `fit(x_train, y_train)`; "drop_validation": no `validation_data=`, so the harness holds out a shuffled,
    stratified split), and the changed lines as a diff for the reason. RewriteError when no fit call has it."""
    module = parse_cst(text, filename)
    fixer = _FitFixer(fix)
    new = module.visit(fixer).code
    if not fixer.changed:
        raise RewriteError(f"{filename}: no fit(...) call with {'a sliced argument' if fix == 'unslice' else 'validation_data='}",
                           "fix the data flow by hand")
    diff = [line for line in difflib.unified_diff(text.splitlines(), new.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return new, " / ".join(f"{line[0]} {line[1:].strip()}" for line in diff)


def script_moves(findings: list[Finding], text: str | None, filename: str) -> list[tuple[Finding, str, str]]:
    """(finding, fixed script, diff) for each finding a fit-call rewrite fixes in `text`."""
    out = []
    for finding in findings:
        fix = finding.facts.get("fix")
        if not fix or text is None:
            continue
        try:
            new, diff = fix_script(text, fix, filename)
        except RewriteError:
            continue
        out.append((finding, new, diff))
    return out


def reason(finding: Finding, diff: str) -> str:
    what = "the whole training arrays to fit" if finding.facts.get("fix") == "unslice" else \
        "validation_data removed from fit, so the harness holds out a shuffled, stratified split"
    return f"{what} ({diff}): {finding.evidence}"

