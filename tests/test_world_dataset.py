import json

import numpy as np
import pytest

from t2i.world.dataset import iter_dataset, make_sample, write_dataset


def test_shards_round_trip_and_resume(tmp_path):
    write_dataset(tmp_path, 25, seed=1, shard_size=10)
    assert sorted(p.name for p in tmp_path.glob("shard-*.npz")) == [f"shard-{k:05d}.npz" for k in range(3)]
    items = list(iter_dataset(tmp_path))
    assert len(items) == 25
    img, rec = items[7]
    again, rec2 = make_sample(rec["seed"])
    assert np.array_equal(img, again) and rec == rec2
    assert set(rec) == {"seed", "tags", "natural", "canvas", "scene"}
    # resuming keeps finished shards and fills in a missing one
    first = (tmp_path / "shard-00000.npz").stat().st_mtime_ns
    (tmp_path / "shard-00001.npz").unlink()
    write_dataset(tmp_path, 25, seed=1, shard_size=10)
    assert (tmp_path / "shard-00000.npz").stat().st_mtime_ns == first
    assert len(list(iter_dataset(tmp_path))) == 25
    assert not list(tmp_path.glob("*.tmp"))


def test_refuses_a_different_dataset_in_the_same_folder(tmp_path):
    write_dataset(tmp_path, 5, seed=1)
    with pytest.raises(ValueError, match="different dataset"):
        write_dataset(tmp_path, 5, seed=2)
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 1
