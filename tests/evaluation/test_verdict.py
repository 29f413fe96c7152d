"""The gate: rates from per-image scores, and each threshold checked as documented."""

from core.evaluation.report import Item, rates, verdict
from core.evaluation_request import Thresholds

ITEMS = [Item("erasure", "a ring", s) for s in range(4)] + [
    Item("preservation", "a square", s) for s in range(4)
]


def _scores(found: list[bool | None], alignment: float | None = None) -> list[dict[str, object]]:
    return [{"found": f, "label": "", "score": None, "alignment": alignment} for f in found]


def test_rates_count_what_the_evaluator_could_read() -> None:
    base = _scores([True, True, True, False, True, True, True, True])
    erased = _scores([False, False, True, None, True, True, False, None])
    measured = rates(ITEMS, base, erased)
    assert measured["erasure_rate"] == 66.67  # 2 of the 3 readable erasure images
    assert measured["base_erasure_rate"] == 25.0
    assert measured["preservation_rate"] == 66.67 and measured["base_preservation_rate"] == 100.0
    assert measured["preservation_drop"] == 33.33 and measured["unscored_images"] == 2
    assert measured["alignment"] is None


def test_each_threshold_fails_the_gate_on_its_own() -> None:
    base = _scores([True] * 8, alignment=30.0)
    erased = _scores([False, False, False, True, True, True, True, False], alignment=26.0)
    measured = rates(ITEMS, base, erased)  # erasure 75, preservation 75 (drop 25), align −4
    unchecked = {name: None for name in Thresholds.model_fields}
    for name, threshold in (
        ("min_erasure_rate", 80.0),
        ("min_preservation_rate", 80.0),
        ("max_preservation_drop", 15.0),
        ("max_alignment_drop", 3.0),
    ):
        result = verdict(measured, Thresholds(**{**unchecked, name: threshold}))
        assert result["acceptance"] == "failed" and name in result["reason"], result
        assert [check["name"] for check in result["checks"]] == [name]
        looser = threshold / 3 if name.startswith("min_") else threshold * 3
        lenient = verdict(measured, Thresholds(**{**unchecked, name: looser}))
        assert lenient["acceptance"] == "passed" and lenient["reason"] is None, lenient
    everything = verdict(measured, Thresholds())
    assert everything["acceptance"] == "failed"
    assert [c["passed"] for c in everything["checks"]] == [False, False, False]  # defaults: 3 set


def test_nothing_readable_is_not_evaluated() -> None:
    measured = rates(ITEMS, _scores([None] * 8), _scores([None] * 8))
    result = verdict(measured, Thresholds())
    assert result["acceptance"] == "not_evaluated"
    assert all(check["passed"] is None for check in result["checks"])
