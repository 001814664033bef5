import pytest

from t2i.grid import AREAS, LOCATIONS, OFFSETS, VocabularyError, omost_box


def test_reference_examples():
    # Omost's README: center + small square, center + large horizontal, top-left + small square
    assert omost_box("in the center", "no offset", "a small square area") == (20, 70, 20, 70)
    assert omost_box("in the center", "no offset", "a large horizontal area") == (15, 75, 0, 90)
    assert omost_box("on the top-left", "no offset", "a small square area") == (0, 40, 0, 40)


def test_all_729_boxes_inside_grid():
    boxes = {omost_box(loc, off, area) for loc in LOCATIONS for off in OFFSETS for area in AREAS}
    assert len(LOCATIONS) * len(OFFSETS) * len(AREAS) == 729
    for t, b, left, r in boxes:
        assert 0 <= t < b <= 90 and 0 <= left < r <= 90


def test_unknown_words_suggest():
    with pytest.raises(VocabularyError, match="did you mean 'on the left'"):
        omost_box("on the lft", "no offset", "a small square area")
    with pytest.raises(VocabularyError, match="unknown area"):
        omost_box("on the left", "no offset", "huge")
