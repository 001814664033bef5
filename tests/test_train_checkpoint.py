"""Training-state helpers: atomic checkpoints, the save cadence, EMA, work-folder claims."""

from __future__ import annotations

import json

import pytest
import torch

from t2i.train.checkpoint import (
    EMA,
    SaveTimer,
    claim_work_folder,
    load_checkpoint,
    read_adjustments,
    save_checkpoint,
)


def test_checkpoints_round_trip_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "a" / "state.ckpt"
    assert load_checkpoint(path) is None
    save_checkpoint(path, {"w": torch.arange(3.0), "step": 7, "losses": [0.5]})
    state = load_checkpoint(path)
    assert state["step"] == 7 and torch.equal(state["w"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["state.ckpt"]


def test_save_timer_counts_steps_and_wall_time(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("t2i.train.checkpoint.time.monotonic", lambda: now[0])
    by_steps = SaveTimer(seconds=1e9, every=3)
    assert [by_steps.due(k) for k in range(1, 7)] == [False, False, True, False, False, True]
    by_time = SaveTimer(seconds=60.0)
    assert not by_time.due(1)
    now[0] += 61.0
    assert by_time.due(2)  # a minute passed
    assert not by_time.due(3)  # and the clock restarted


def test_ema_follows_the_parameters_with_a_warm_up():
    p = torch.nn.Parameter(torch.zeros(2))
    ema = EMA([p], decay=0.9)
    with torch.no_grad():
        p.fill_(1.0)
    ema.update(0)  # decay min(0.9, 1/10) = 0.1 at the first step
    assert torch.allclose(ema.shadow[0], torch.full((2,), 0.9))


def test_a_work_folder_refuses_another_run(tmp_path):
    claim_work_folder(tmp_path, {"seed": 0, "steps": 10}, extendable=("steps",))
    claim_work_folder(tmp_path, {"seed": 0, "steps": 20}, extendable=("steps",))  # a longer run goes on
    with pytest.raises(ValueError):
        claim_work_folder(tmp_path, {"seed": 1, "steps": 20}, extendable=("steps",))


def test_a_setting_added_later_counts_as_its_legacy_value_in_old_folders(tmp_path):
    claim_work_folder(tmp_path, {"seed": 0})  # a run saved before "target" existed
    with pytest.raises(ValueError, match="target"):
        claim_work_folder(tmp_path, {"seed": 0, "target": "v"}, legacy={"target": "eps"})
    claim_work_folder(tmp_path, {"seed": 0, "target": "eps"}, legacy={"target": "eps"})  # the same run goes on


def test_an_adjustable_setting_may_change_and_the_change_is_logged(tmp_path):
    claim_work_folder(tmp_path, {"seed": 0, "mix": 0.15}, adjustable=("mix",))
    assert read_adjustments(tmp_path) == []
    claim_work_folder(tmp_path, {"seed": 0, "mix": 0.4}, adjustable=("mix",), at={"step": 8000})
    claim_work_folder(tmp_path, {"seed": 0, "mix": 0.4}, adjustable=("mix",), at={"step": 9000})  # unchanged
    assert read_adjustments(tmp_path) == [{"setting": "mix", "from": 0.15, "to": 0.4, "step": 8000}]
    with pytest.raises(ValueError, match="mix"):  # not adjustable for this caller
        claim_work_folder(tmp_path, {"seed": 0, "mix": 0.5})


def test_a_removed_setting_is_dropped_at_a_value_that_changed_nothing_and_refused_at_one_that_mattered(tmp_path):
    from t2i.train.settings import Removed

    removed = {"edge": Removed("the edge loss (--edge)", (0.0,)), "edge_width": Removed("its width", None)}
    claim_work_folder(tmp_path, {"seed": 0, "edge": 0.0, "edge_width": 3})  # a run saved before the removal
    claim_work_folder(tmp_path, {"seed": 0}, removed=removed)  # goes on without them
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 0}
    (tmp_path / "config.json").write_text(json.dumps({"seed": 0, "edge": 0.5}))
    with pytest.raises(ValueError, match=r"sets edge=0.5, but the edge loss \(--edge\) was removed"):
        claim_work_folder(tmp_path, {"seed": 0}, removed=removed)
