"""The sweep bench end to end in quick mode (real engine runs on the committed model, real judge),
and its method specs."""

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from core.hyperparameters import Hyperparameters, Method
from core.toyworld.sweep import MethodSpec, default_jobs, parse_jobs, parse_method_specs

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sweep.py"


def _sweep(*args: str) -> None:
    argv = sys.argv
    sys.argv = [str(SCRIPT), *args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = argv
    if exit_info.value.code not in (0, None):
        raise SystemExit(exit_info.value.code)


def test_quick_sweep_prints_one_row_per_job_with_intervals_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep.json"
    _sweep(
        *("--concepts", "none", "--jobs", "red+orange", "--methods", "esd,ap"),
        *("--seeds", "1", "--workers", "1", "--quick", "--out", str(out)),
    )
    report = json.loads(out.read_text())
    assert [row["concepts"] for row in report["rows"]] == [["red", "orange"]]
    for row in report["rows"]:
        compared = row["equal_erasure"]
        for method in ("esd", "ap"):
            psr = compared["psr"][method]
            assert psr["low"] <= psr["estimate"] <= psr["high"]
            worst = compared["worst_hit"][method]["concept"]
            assert worst not in row["concepts"]  # a kept concept
        assert set(compared["difference"]) == {"ap"}
        curve = row["curves"]["esd"]
        assert curve["steps"][0] == 0 and curve["steps"][-1] == 4  # base … final
        assert report["settings"]["evaluation"]["images_per_caption"] == 2
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| red+orange")]
    assert len(rows) == 1 and "[" in rows[0]


def test_jobs_and_concepts_parse_against_the_world() -> None:
    assert parse_jobs("red+orange, ring") == [("red", "orange"), ("ring",)]
    assert len(default_jobs()) == 12 + 3
    with pytest.raises(ValueError, match="not a concept of the toy world"):
        parse_jobs("red+dog")


def test_method_specs_map_to_hyperparameter_overrides() -> None:
    assert MethodSpec.parse("esd") == MethodSpec("esd", Method.ESD, {})
    assert MethodSpec.parse("ap:gumbel").overrides == {"adversary": "gumbel"}
    spec = MethodSpec.parse("AP:adversary_lr=0.5/adversary_steps=2")
    assert spec.method is Method.AP
    assert spec.hyperparameters(Hyperparameters()).adversary_steps == 2
    assert spec.hyperparameters(Hyperparameters()).adversary_lr == 0.5


def test_a_spec_naming_an_unknown_knob_is_refused_before_any_run() -> None:
    with pytest.raises(ValueError, match="ap:flavour=x"):
        parse_method_specs("esd,ap:flavour=x", Hyperparameters())
    with pytest.raises(SystemExit) as exit_info:
        _sweep("--concepts", "ring", "--methods", "esd,ap:adversary_steps=-3", "--quick")
    assert exit_info.value.code == 2


COLOUR_SWEEP = Path(__file__).resolve().parents[2] / "docs" / "img" / "sweep_colours.json"


def test_merging_two_sittings_gives_the_mean_one_sitting_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The committed colour sweep, cut in two as if run in two sittings, then merged back
    whole = json.loads(COLOUR_SWEEP.read_text())
    halves: list[Path] = []
    for rows in (whole["rows"][:3], whole["rows"][3:]):
        path = tmp_path / f"part{len(halves)}.json"
        path.write_text(json.dumps({**whole, "rows": rows}))
        halves.append(path)
    out = tmp_path / "merged.json"
    _sweep("--merge", str(halves[0]), "--merge", str(halves[1]), "--out", str(out))
    merged = json.loads(out.read_text())
    assert [r["concepts"] for r in merged["rows"]] == [r["concepts"] for r in whole["rows"]]
    assert merged["mean_over_single_concepts"] == whole["mean_over_single_concepts"]
    assert "| mean of 6 single concepts |" in capsys.readouterr().out


WHOLE_SWEEP = Path(__file__).resolve().parents[2] / "docs" / "img" / "sweep_all.json"


def _with_methods(report: dict[str, Any], methods: list[str]) -> dict[str, Any]:
    """The report as if its sitting had run only `methods`."""
    settings = {
        **report["settings"],
        "methods": {m: report["settings"]["methods"][m] for m in methods},
    }
    rows = [
        {
            **row,
            "curves": {m: row["curves"][m] for m in methods},
            "runs": {m: row["runs"][m] for m in methods},
        }
        for row in report["rows"]
    ]
    return {**report, "settings": settings, "rows": rows}


def test_a_method_measured_in_a_later_sitting_merges_into_the_table_one_sitting_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = json.loads(WHOLE_SWEEP.read_text())
    methods = list(whole["settings"]["methods"])
    paths = [tmp_path / "first.json", tmp_path / "later.json"]
    for path, part in zip(paths, (methods[:2], methods[2:]), strict=True):
        path.write_text(json.dumps(_with_methods(whole, part)))
    out = tmp_path / "merged.json"
    _sweep("--merge", str(paths[0]), "--merge", str(paths[1]), "--out", str(out))
    merged = json.loads(out.read_text())
    assert list(merged["settings"]["methods"]) == methods
    for got, want in zip(merged["rows"], whole["rows"], strict=True):
        assert got["equal_erasure"] == want["equal_erasure"]  # the compared ESR moved back too
    assert merged["mean_over_single_concepts"] == whole["mean_over_single_concepts"]
    assert methods[2] in capsys.readouterr().out


def test_keeping_some_methods_compares_them_as_a_sitting_of_only_those_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = json.loads(WHOLE_SWEEP.read_text())
    methods = list(whole["settings"]["methods"])
    kept = [methods[0], methods[1]]  # ESD and the paper's adversary, without the third method
    only_those = tmp_path / "only_those.json"
    only_those.write_text(json.dumps(_with_methods(whole, kept)))
    outs = [tmp_path / "kept.json", tmp_path / "sitting.json"]
    _sweep("--merge", str(WHOLE_SWEEP), "--keep", ",".join(kept), "--out", str(outs[0]))
    _sweep("--merge", str(only_those), "--out", str(outs[1]))
    got, want = (json.loads(path.read_text()) for path in outs)
    assert list(got["settings"]["methods"]) == kept
    assert [r["equal_erasure"] for r in got["rows"]] == [r["equal_erasure"] for r in want["rows"]]
    # The dropped method no longer holds the compared erasure level down on some job
    levels = [
        (k["equal_erasure"]["esr"]["estimate"], w["equal_erasure"]["esr"]["estimate"])
        for k, w in zip(got["rows"], whole["rows"], strict=True)
    ]
    assert all(kept_level >= whole_level for kept_level, whole_level in levels)
    assert any(kept_level > whole_level for kept_level, whole_level in levels)
    assert methods[2] not in capsys.readouterr().out


def test_keeping_a_method_the_reports_lack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _sweep("--merge", str(WHOLE_SWEEP), "--keep", "esd,ap:never_run")
    assert exit_info.value.code == 2


def test_a_job_without_runs_of_every_method_is_not_merged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = json.loads(WHOLE_SWEEP.read_text())
    methods = list(whole["settings"]["methods"])
    later = _with_methods(whole, methods[2:])
    later["rows"] = later["rows"][:1]
    paths = [tmp_path / "first.json", tmp_path / "later.json"]
    for path, report in zip(paths, (_with_methods(whole, methods[:2]), later), strict=True):
        path.write_text(json.dumps(report))
    with pytest.raises(SystemExit) as exit_info:
        _sweep("--merge", str(paths[0]), "--merge", str(paths[1]))
    assert exit_info.value.code == 2
    assert "has no runs of" in capsys.readouterr().err


def test_reports_measured_differently_are_not_merged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = json.loads(COLOUR_SWEEP.read_text())
    other = json.loads(COLOUR_SWEEP.read_text())
    other["settings"]["hyperparameters"]["iterations"] = 300
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, report in zip(paths, (whole, other), strict=True):
        path.write_text(json.dumps(report))
    with pytest.raises(SystemExit) as exit_info:
        _sweep("--merge", str(paths[0]), "--merge", str(paths[1]))
    assert exit_info.value.code == 2
    assert "hyperparameters" in capsys.readouterr().err
