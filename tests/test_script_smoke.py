"""Every script under bench/ and experiments/ runs end to end with `--smoke` and prints what it promises.

Each script runs in the test process as `python SCRIPT --smoke` would (tests/script_smoke.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_promises import PROMISES as BENCH
from tests.experiment_promises import PROMISES as EXPERIMENTS
from tests.script_smoke import check_promises, check_self_contained, run_smoke

ROOT = Path(__file__).resolve().parents[1]
PROMISES = {"bench": BENCH, "experiments": EXPERIMENTS}
SCRIPTS = [script for folder in PROMISES for script in sorted((ROOT / folder).glob("*.py"))]
IDS = [f"{p.parent.name}/{p.stem}" for p in SCRIPTS]


def test_every_script_is_found():
    names = {f"{p.parent.name}/{p.stem}" for p in SCRIPTS}
    assert {"bench/backend_overhead", "bench/teacher_student_speed", "experiments/quality_vs_steps",
            "experiments/world_scorer_baselines"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_smoke_run_prints_what_it_promises(script, tmp_path):
    check_promises(script, run_smoke(script, tmp_path), PROMISES[script.parent.name])


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_imports_only_the_package_and_names_its_own_path(script):
    check_self_contained(script, script.parent.name)
