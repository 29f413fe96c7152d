"""Must-show 3 (clip): `eraser evaluate` with the clip evaluator, end to end, on a tiny
random-weight CLIP built offline. Random weights make the verdict meaningless; what is checked is
the plumbing: shapes, batching across prompts, every image scored, the report's format."""

import csv
import json
from pathlib import Path

from click.testing import CliRunner
from evaluation_helpers import make_tiny_clip
from PIL import Image

from core.evaluation.cli import EXIT_FAILED, evaluate
from core.evaluation.clip import NEUTRAL_LABELS

ERASURE = ["a cat", "a photo of a cat"]
PRESERVATION = ["a dog", "a house"]


def test_the_clip_evaluator_scores_every_image_and_writes_the_report(
    tiny_sd: Path, erased: Path, tmp_path: Path
) -> None:
    clip = make_tiny_clip(tmp_path / "clip")
    prompts = tmp_path / "prompts.csv"
    with prompts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "kind"])
        writer.writerows([[p, "erasure"] for p in ERASURE])
        writer.writerows([[p, "preservation"] for p in PRESERVATION])
    out = tmp_path / "report"

    result = CliRunner().invoke(
        evaluate,
        ["--model", str(tiny_sd), "--erased", str(erased), "--prompts", str(prompts),
         "--evaluator", f"clip:{clip}", "--seeds", "3,4", "--batch-size", "3",
         "--device", "cpu", "--out", str(out)],
    )  # fmt: skip

    report = json.loads((out / "evaluation.json").read_text())
    assert result.exit_code == (EXIT_FAILED if report["verdict"]["acceptance"] == "failed" else 0)
    assert report["evaluator"] == "clip" and report["concepts"] == ["cat"]
    assert report["images"] == 2 * 2 * (len(ERASURE) + len(PRESERVATION))
    assert [p["prompt"] for p in report["prompts"]] == ERASURE + PRESERVATION
    for entry in report["prompts"]:
        assert [image["seed"] for image in entry["images"]] == [3, 4]
        for image in entry["images"]:
            for score in (image["base"], image["erased"]):
                assert isinstance(score["found"], bool)
                assert -100 <= score["alignment"] <= 100 and 0 <= score["score"] <= 1
                allowed = ["cat", *NEUTRAL_LABELS]
                if entry["kind"] == "preservation":
                    allowed.append("the prompt")
                assert score["label"] in allowed
    alignment = report["rates"]["alignment"]
    assert alignment["change"] == round(alignment["erased"] - alignment["base"], 3)
    assert "max_alignment_drop" in [check["name"] for check in report["verdict"]["checks"]]
    # the erased weights were used: the same seeds give other alignments than the base's
    pairs = [(i["base"]["alignment"], i["erased"]["alignment"])
             for p in report["prompts"] for i in p["images"]]  # fmt: skip
    assert any(before != after for before, after in pairs)
    figure = Image.open(out / "evaluation.png")
    assert figure.width >= 600 and figure.height > 4 * 96
