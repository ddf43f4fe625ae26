"""The manifest's copies: grouped by partition on disk, the same list after a round trip."""
from __future__ import annotations

import json

import pytest

from inject.manifest import Copy, copies_from_json, copies_to_json


def _copies() -> list[Copy]:
    """Interleaved partitions (as the stream orders them), scattered and document copies."""
    return [Copy("b", "x2", 1, 50, 60, "scattered", "mcq", item=3, displaced=12),
            Copy("b", "x4", 0, 10, 30, "document", "mcq"),
            Copy("b", "x2", 0, 5, 15, "scattered", "mcq", item=0, displaced=12),
            Copy("c", "x4", 0, 70, 80, "document", "cloze")]


def test_grouped_copies_round_trip_in_order():
    copies = _copies()
    grouped = copies_to_json(copies)
    assert [(g["benchmark"], g["partition"]) for g in grouped] == [("b", "x2"), ("b", "x4"), ("c", "x4")]
    assert grouped[1]["item"] is None  # a column null for every copy is written once
    assert copies_from_json(json.loads(json.dumps(grouped))) == copies


def test_older_manifests_one_object_per_copy_still_read():
    copies = _copies()
    rows = [c.__dict__ for c in copies]
    assert copies_from_json(json.loads(json.dumps(rows))) == copies


def test_grouped_form_is_smaller_for_many_copies():
    copies = [Copy("synth_people", "x64", k, 1000 * k, 1000 * k + 900, "scattered", "mcq", item=k % 40)
              for k in range(2560)]
    one_each = len(json.dumps([c.__dict__ for c in copies]))
    assert len(json.dumps(copies_to_json(copies))) < one_each / 3


def test_broken_grouped_copies_are_refused():
    grouped = copies_to_json(_copies())
    grouped[0]["start"].pop()
    with pytest.raises(TypeError, match="b/x2: columns of unequal length"):
        copies_from_json(grouped)
