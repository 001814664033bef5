"""RECIPE.json records what made a trained folder and where it came from."""

import json
import re

from t2i.train.recipe_file import provenance, write_recipe


def test_recipe_file_records_settings_figures_and_provenance(tmp_path):
    path = write_recipe(tmp_path, "tiny", {"seed": 3, "steps": 10}, {"loss": 0.5},
                        command="t2i train tiny --steps 10", parameters=123)
    record = json.loads(path.read_text())
    assert record["model"] == "tiny" and record["seed"] == 3 and record["config"]["steps"] == 10
    assert record["figures"] == {"loss": 0.5} and record["parameters"] == 123
    prov = record["provenance"]
    assert prov["command"] == "t2i train tiny --steps 10"
    assert prov["versions"]["torch"] and prov["versions"]["python"]
    # t2i from a git checkout (as here and in CI) records its commit; installed from a wheel, None
    assert prov["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
    assert prov["git_dirty"] in (True, False, None)


def test_the_command_defaults_to_this_process(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/usr/bin/t2i", "train", "shapes-xl", "--work", "w"])
    assert provenance()["command"] == "t2i train shapes-xl --work w"
