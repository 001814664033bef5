import pytest

from t2i.render.bags import bag_token_ids, pack_bags

SPEC = [25, 35, 5, 60, 15, 25]  # sub-prompts A..F of the Omost README's example


def test_the_worked_example_with_a_five_token_prefix():
    bags = pack_bags(5, SPEC)
    assert bags == [[0, 1, 2], [3], [4, 5]]
    assert [sum(SPEC[i] for i in b) for b in bags] == [65, 60, 40]


def test_the_worked_example_with_no_prefix():
    assert pack_bags(0, SPEC) == [[0, 1, 2], [3, 4], [5]]


def test_edge_cases():
    assert pack_bags(10, []) == [[]]
    assert pack_bags(0, [80, 5]) == [[0], [1]]  # too long: alone (cut when encoded)
    assert pack_bags(74, [3, 3]) == [[0], [1]]
    with pytest.raises(ValueError):
        pack_bags(-1, [1])


def test_bag_ids_are_77_long_with_the_prefix_in_every_bag():
    def tok(text):
        return [len(w) for w in text.split()]

    bags = bag_token_ids(["global words", "local"], ["a " * 40, "b " * 40, "c"], tok, bos=1, eos=2, pad=0)
    assert len(bags) == 2 and all(len(b) == 77 for b in bags)
    assert all(b[:4] == [1, 6, 5, 5] for b in bags)  # BOS + prefix
    assert bags[0].index(2) == 1 + 3 + 40 and bags[1].count(1) == 1 + 41  # BOS, 40 "b" and "c"
