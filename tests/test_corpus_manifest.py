"""bench/corpus/manifest.yaml (issue 18's corpus drawn by rule) is well formed: each entry names a repository, commit,
paths and their git blob ids, the halves are disjoint and follow sha256 of the repository name, and the draw is large
enough. No network: only the committed manifest and candidate list are read."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "corpus"
SHA1 = re.compile(r"[0-9a-f]{40}")
FRAMEWORKS = {"sklearn", "keras", "xgboost", "lightgbm", "catboost", "torch"}


def entries(name: str = "manifest.yaml") -> list[dict]:
    return yaml.safe_load((CORPUS / name).read_text(encoding="utf-8"))["entries"]


DRAWS = ["manifest.yaml", "manifest-draw2.yaml", "manifest-draw3.yaml", "manifest-draw4.yaml", "manifest-draw5.yaml",
         "manifest-draw6.yaml"]


@pytest.mark.parametrize("manifest", DRAWS)
def test_each_entry_names_repository_commit_paths_and_blob_ids(manifest: str) -> None:
    for entry in entries(manifest):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry["repo"]), entry["repo"]
        assert SHA1.fullmatch(entry["commit"]), entry["repo"]
        assert entry["paths"][0] == entry["entry"] and entry["entry"].endswith((".py", ".ipynb")), entry["repo"]
        assert set(entry["blobs"]) == set(entry["paths"]), entry["repo"]
        assert all(SHA1.fullmatch(blob) for blob in entry["blobs"].values()), entry["repo"]
        assert entry["framework"] in FRAMEWORKS and entry["shape"] in {"script", "notebook", "mlproject"}
        assert (entry["shape"] == "notebook") == entry["entry"].endswith(".ipynb"), entry["repo"]


@pytest.mark.parametrize("manifest", DRAWS)
def test_halves_are_disjoint_and_follow_the_hash_of_the_repository_name(manifest: str) -> None:
    halves: dict[str, set[str]] = {"dev": set(), "heldout": set()}
    for entry in entries(manifest):
        even = int(hashlib.sha256(entry["repo"].encode()).hexdigest()[-1], 16) % 2 == 0
        assert entry["half"] == ("dev" if even else "heldout"), entry["repo"]
        halves[entry["half"]].add(entry["repo"])
    assert not halves["dev"] & halves["heldout"]
    assert len(halves["dev"]) + len(halves["heldout"]) == len(entries(manifest)), "a repository appears twice"


def test_the_draw_is_large_and_every_member_was_a_recorded_candidate() -> None:
    members = entries()
    # 80 were aimed at; the session's fetch limit stopped the walk at 79 (PROCEDURE.md, section 5).
    assert len(members) >= 79
    assert len({e["repo"].split("/")[0].lower() for e in members}) == len(members), "one member per owner"
    candidates = {c["repo"] for c in yaml.safe_load((CORPUS / "candidates.yaml").read_text())["candidates"]}
    assert {e["repo"] for e in members} <= candidates


def test_draw_2_is_new_code_from_its_own_recorded_candidates() -> None:
    """Draw 2 (PROCEDURE.md section 6) shares no repository or owner with draw 1, and each member was a recorded
    candidate: of its own listings, or of the rest of draw 1's walk."""
    first, second = entries(), entries("manifest-draw2.yaml")
    assert len(second) == 40 and all(entry.get("draw") == 2 for entry in second)
    owners = {e["repo"].split("/")[0].lower() for e in first}
    assert not {e["repo"].split("/")[0].lower() for e in second} & owners
    assert len({e["repo"].split("/")[0].lower() for e in second}) == len(second), "one member per owner"
    listed = yaml.safe_load((CORPUS / "candidates-draw2.yaml").read_text())["candidates"]
    walked = yaml.safe_load((CORPUS / "candidates.yaml").read_text())["candidates"]
    assert {e["repo"] for e in second} <= {c["repo"] for c in listed + walked}


def test_draw_3_is_new_code_from_its_own_recorded_candidates() -> None:
    """Draw 3 (PROCEDURE.md section 7) shares no repository or owner with draws 1 and 2, has one member per owner, and
    each member was a recorded candidate: of source D, or of the tails of draw 2's source C listings."""
    third = entries("manifest-draw3.yaml")
    assert len(third) == 30 and all(entry.get("draw") == 3 for entry in third)
    earlier = {e["repo"].split("/")[0].lower() for e in entries() + entries("manifest-draw2.yaml")}
    owners = [e["repo"].split("/")[0].lower() for e in third]
    assert not set(owners) & earlier
    assert len(set(owners)) == len(third), "one member per owner"
    listed = yaml.safe_load((CORPUS / "candidates-draw3.yaml").read_text())["candidates"]
    tails = yaml.safe_load((CORPUS / "candidates-draw2.yaml").read_text())["candidates"]
    recorded = {(c["listing"], c["rank"], c["repo"]) for c in listed + tails}
    assert all((e["source"], e["rank"], e["repo"]) in recorded for e in third)
    log = yaml.safe_load((CORPUS / "selection-log-draw2.yaml").read_text())["decisions"]
    decided_in_draw_2 = {d["repo"] for d in log if not d["decision"].startswith("skip")}
    assert not {e["repo"] for e in third} & decided_in_draw_2


def test_draw_4_is_new_code_from_the_tails_of_source_d() -> None:
    """Draw 4 (PROCEDURE.md section 8) shares no repository or owner with draws 1-3, has one member per owner, each
    member was a recorded candidate of source D below the rank draw 3 reached in its listing, and none was decided in
    draws 2 or 3."""
    fourth = entries("manifest-draw4.yaml")
    assert len(fourth) == 30 and all(entry.get("draw") == 4 for entry in fourth)
    earlier = entries() + entries("manifest-draw2.yaml") + entries("manifest-draw3.yaml")
    owners = [e["repo"].split("/")[0].lower() for e in fourth]
    assert not set(owners) & {e["repo"].split("/")[0].lower() for e in earlier}
    assert len(set(owners)) == len(fourth), "one member per owner"
    draw3 = yaml.safe_load((CORPUS / "selection-log-draw3.yaml").read_text())["decisions"]
    reached = {}
    for decision in draw3:
        reached[decision["listing"]] = max(reached.get(decision["listing"], 0), decision["rank"])
    listed = yaml.safe_load((CORPUS / "candidates-draw3.yaml").read_text())["candidates"]
    tails = {(c["listing"], c["rank"], c["repo"]) for c in listed if c["rank"] > reached[c["listing"]]}
    assert all((e["source"], e["rank"], e["repo"]) in tails for e in fourth)
    decided = {d["repo"] for name in ("selection-log-draw2.yaml", "selection-log-draw3.yaml")
               for d in yaml.safe_load((CORPUS / name).read_text())["decisions"] if not d["decision"].startswith("skip")}
    assert not {e["repo"] for e in fourth} & decided


def test_draw_5_is_new_code_from_source_d_tails_and_source_e() -> None:
    """Draw 5 (PROCEDURE.md section 9) shares no repository or owner with draws 1-4, has one member per owner, each
    member was a recorded candidate (source D below the rank draw 4 reached in its listing, or a row of source E), and
    none was decided in draws 2-4."""
    fifth = entries("manifest-draw5.yaml")
    assert len(fifth) == 50 and all(entry.get("draw") == 5 for entry in fifth)
    earlier = [e for name in DRAWS[:4] for e in entries(name)]
    assert not {e["repo"] for e in fifth} & {e["repo"] for e in earlier}
    owners = [e["repo"].split("/")[0].lower() for e in fifth]
    assert not set(owners) & {e["repo"].split("/")[0].lower() for e in earlier}
    assert len(set(owners)) == len(fifth), "one member per owner"
    draw4 = yaml.safe_load((CORPUS / "selection-log-draw4.yaml").read_text())["decisions"]
    reached = {}
    for decision in draw4:
        reached[decision["listing"]] = max(reached.get(decision["listing"], 0), decision["rank"])
    source_d = yaml.safe_load((CORPUS / "candidates-draw3.yaml").read_text())["candidates"]
    source_e = yaml.safe_load((CORPUS / "candidates-draw5.yaml").read_text())["candidates"]
    recorded = {(c["listing"], c["rank"], c["repo"]) for c in source_d if c["rank"] > reached[c["listing"]]}
    recorded |= {(c["listing"], c["rank"], c["repo"]) for c in source_e}
    assert all((e["source"], e["rank"], e["repo"]) in recorded for e in fifth)
    logs = ("selection-log-draw2.yaml", "selection-log-draw3.yaml", "selection-log-draw4.yaml")
    decided = {d["repo"] for name in logs for d in yaml.safe_load((CORPUS / name).read_text())["decisions"]
               if not d["decision"].startswith("skip")}
    assert not {e["repo"] for e in fifth} & decided


def test_draw_6_is_new_code_from_source_e_tails_and_source_f() -> None:
    """Draw 6 (PROCEDURE.md section 10) shares no repository or owner with draws 1-5, has one member per owner, each
    member was a recorded candidate (source E below the rank draw 5 reached in its listing, or a row of source F), and
    none was decided in draws 2-5."""
    sixth = entries("manifest-draw6.yaml")
    assert len(sixth) == 60 and all(entry.get("draw") == 6 for entry in sixth)
    earlier = [e for name in DRAWS[:5] for e in entries(name)]
    assert not {e["repo"] for e in sixth} & {e["repo"] for e in earlier}
    owners = [e["repo"].split("/")[0].lower() for e in sixth]
    assert not set(owners) & {e["repo"].split("/")[0].lower() for e in earlier}
    assert len(set(owners)) == len(sixth), "one member per owner"
    draw5 = yaml.safe_load((CORPUS / "selection-log-draw5.yaml").read_text())["decisions"]
    reached = {}
    for decision in draw5:
        reached[decision["listing"]] = max(reached.get(decision["listing"], 0), decision["rank"])
    source_e = yaml.safe_load((CORPUS / "candidates-draw5.yaml").read_text())["candidates"]
    source_f = yaml.safe_load((CORPUS / "candidates-draw6.yaml").read_text())["candidates"]
    recorded = {(c["listing"], c["rank"], c["repo"]) for c in source_e if c["rank"] > reached[c["listing"]]}
    recorded |= {(c["listing"], c["rank"], c["repo"]) for c in source_f}
    assert all((e["source"], e["rank"], e["repo"]) in recorded for e in sixth)
    logs = [f"selection-log-draw{n}.yaml" for n in range(2, 6)]
    decided = {d["repo"] for name in logs for d in yaml.safe_load((CORPUS / name).read_text())["decisions"]
               if not d["decision"].startswith("skip")}
    assert not {e["repo"] for e in sixth} & decided
