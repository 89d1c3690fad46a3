"""The field dataset (validation/field/*.toml) replayed through memfit: every comparable observation
agrees or carries a reviewed explanation (validation/field/verdicts.toml); section A (the 64 GB
laptop this project is for) agrees row by row. No network: model shapes are recorded specs."""

from __future__ import annotations

import pytest

from validation.field import harness as H


ROWS = H.load_rows()
BY_ID = {r.id: r for r in ROWS}
SECTION_A = [r for r in ROWS if r.file == "section_a.toml" and "estimate" not in r.kinds]


def replay(row_id: str) -> tuple[H.Prediction, list[H.Verdict]]:
    row = BY_ID[row_id]
    pred = H.replay(row)
    return pred, H.verdicts(row, pred)


def test_the_dataset_is_sourced_and_well_formed():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    assert len([r for r in ROWS if r.file not in ("section_a.toml", "section_b.toml")]) >= 30
    for r in ROWS:
        assert r.data.get("source"), r.id
        assert r.kinds, r.id
        assert r.sec("model").get("name"), r.id
        assert r.sec("runtime").get("backend") or r.sec("runtime").get("app"), r.id
    families = {H.efficiency_class(r.sec("machine")["profile"]) if r.sec("machine").get("profile") else "other"
                for r in ROWS}
    assert {"strix-halo", "apple-max", "gb10", "rtx"} <= families


@pytest.mark.parametrize("row_id", [r.id for r in SECTION_A])
def test_section_a_row_agrees(row_id):
    pred, vs = replay(row_id)
    assert vs, f"{row_id}: nothing comparable"
    bad = [v for v in vs if not v.agree]
    assert not bad, [(v.kind, v.observed, v.predicted, v.detail) for v in bad]


def test_section_a_reasons_come_from_the_memory_model():
    a4, _ = replay("A4")
    assert not a4.fits and "GPU short" in a4.why  # the 512 MB split cannot hold 198K (A4)
    a10, _ = replay("A10")
    assert not a10.fits and "load" in a10.why  # 48/16 fails on the load path (A10)
    a9, _ = replay("A9")
    assert a9.spill  # Q6_K spills out of the 32 GB carve-out (A9)
    a1, _ = replay("A1")
    a2, _ = replay("A2")
    assert 1.8 < a2.decode_tps / a1.decode_tps < 3.2  # the shared-memory penalty (measured 2.48)


def test_every_disagreement_is_explained_and_most_rows_agree():
    agree = total = 0
    unexplained = []
    notes = H.explanations()
    for row in ROWS:
        try:
            pred = H.replay(row)
        except H.NotReplayable:
            continue
        for v in H.verdicts(row, pred):
            total += 1
            if v.agree:
                agree += 1
            elif row.id not in notes:
                unexplained.append((row.id, v.kind, v.observed, v.predicted, v.detail))
    assert total >= 150
    # the target is 90 %; prefill (76 %) keeps the whole at 83 %: docs/field-evidence.md lists
    # every disagreement with its reason. This floor catches a regression.
    assert agree / total >= 0.82, (agree, total)
    assert not unexplained, unexplained


def test_rows_that_cannot_be_replayed_say_why():
    for row in ROWS:
        try:
            H.replay(row)
        except H.NotReplayable as e:
            assert str(e), row.id
