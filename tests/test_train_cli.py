"""`t2i train RECIPE`: one sub-command per recipe with its own flags, `--config RECIPE.json` reruns of recorded
runs (the shipped models' among them), and the settings that were removed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from t2i.cli.train import RECIPES
from t2i.registry import package_weights

from .cli_flags import flag_lines
from .train_cli import main, parser, usage_error

ROOT = Path(__file__).resolve().parents[1]
COMMON = {"--work", "--out", "--seed", "--threads", "--smoke", "--config"}
OWN = {
    "shapes-xl": {"--scenes", "--vae-steps", "--clip-steps", "--unet-steps", "--decoder-steps", "--batch", "--unet-lr",
                  "--text-lr-scale", "--unet-layers", "--unet-depth", "--prediction {v_prediction,epsilon}",
                  "--zero-snr,--no-zero-snr", "--uncolored", "--oversample", "--pair-weight", "--init", "--unet-init",
                  "--device", "--snapshot"},
    "paella-tiny": {"--scenes", "--size", "--vq-steps", "--vq-lr", "--vq-gate-init", "--decoder-steps", "--decoder-lr",
                    "--decoder-refine", "--decoder-oversample", "--steps", "--batch", "--lr", "--oversample",
                    "--clip-from", "--init", "--init-decoder-steps", "--device", "--snapshot", "--float16"},
    "tipo-tiny": {"--steps", "--scenes", "--init"},
    "omost-tiny": {"--steps", "--scenes", "--init", "--paraphrased"},
    "distill": {"--teacher", "--student {koala-1b,koala-700m}", "--steps", "--batch", "--lr", "--size",
                "--features {self_attention,cross_attention,block,resnet,none}", "--feature-loss {mse,relative}",
                "--w-feature", "--feature-pairs {copied,last,stage}", "--scenes", "--uncolored", "--data", "--device",
                "--gradient-checkpointing"},
}
# the shipped models and the recipe each was made by
SHIPPED = {"shapes-xl": "shapes-xl", "paella-tiny": "paella-tiny", "tipo-tiny": "tipo-tiny",
           "omost-tiny": "omost-tiny", "shapes-koala": "distill"}


def args_of(argv: list[str]):
    args = parser().parse_args(argv)
    args.registry = None
    return args


def config_of(recipe: str, *flags: str):
    """The config `t2i train RECIPE FLAGS --work w --out o` would run, built without running it."""
    return RECIPES[recipe][0].config_from_args(args_of(["train", recipe, *flags, "--work", "w", "--out", "o"]))


def test_each_recipe_is_a_sub_command_with_its_own_flags_and_the_common_ones():
    lines = flag_lines(parser())
    assert sorted(RECIPES) == sorted(OWN)
    for recipe, own in OWN.items():
        assert {line.removeprefix(f"train {recipe} ") for line in lines if line.startswith(f"train {recipe} ")} == \
            own | COMMON, recipe


@pytest.mark.parametrize("recipe, flag", [("shapes-xl", "--ground-token"), ("shapes-xl", "--ground-pixel"),
                                          ("shapes-xl", "--ground-max-t"), ("paella-tiny", "--decoder-adversarial"),
                                          ("paella-tiny", "--vae-steps"), ("distill", "--student-init"),
                                          ("tipo-tiny", "--batch"), ("distill", "--snapshot")])
def test_a_flag_a_recipe_does_not_take_is_a_usage_error(recipe, flag, capsys):
    usage_error(["train", recipe, "--work", "w", "--out", "o", flag, "1"])
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_has_help_with_examples(recipe, capsys):
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["train", recipe, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: t2i train {recipe}" in out and f"examples:\n  t2i train {recipe} " in out


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_config_reads_each_shipped_models_recipe_back_without_the_removed_settings(model):
    recipe = SHIPPED[model]
    path = package_weights(model) / "RECIPE.json"
    recorded = json.loads(path.read_text())["config"]
    cfg = json.loads(json.dumps(asdict(config_of(recipe, "--config", str(path)))))
    removed = set(recorded) - set(cfg)
    assert removed <= {"ground_token", "ground_pixel", "ground_max_t", "vae_l1", "extra", "vq_edge_weight",
                       "vq_decoder_adversarial", "vq_decoder_critic_start", "vq_decoder_critic_width",
                       "student_init"}
    assert {k: v for k, v in recorded.items() if k not in removed} == {k: cfg[k] for k in recorded if k in cfg}
    if model == "shapes-xl":
        assert removed == {"ground_token", "ground_pixel", "ground_max_t", "vae_l1", "extra"}
    if model == "shapes-koala":
        assert removed == {"student_init"} and cfg["data"] == ""  # a setting the record predates: its old value


def test_flags_beside_config_override_the_recorded_settings():
    path = str(package_weights("shapes-xl") / "RECIPE.json")
    cfg = config_of("shapes-xl", "--config", path, "--unet-steps", "10", "--seed", "3", "--oversample", "star=2")
    assert (cfg.unet_steps, cfg.seed, cfg.oversample) == (10, 3, {"star": 2.0})
    assert (cfg.pair_weight, cfg.unet_transformer_depth, cfg.uncolored_fraction) == (3.0, (1, 2, 2), 0.4)
    assert config_of("shapes-xl").unet_steps == 5_000 and config_of("shapes-xl", "--smoke").unet_steps == 4


@pytest.mark.parametrize("model, setting, value", [("shapes-xl", "ground_token", 0.1),
                                                   ("shapes-xl", "vae_l1", 0.5),
                                                   ("paella-tiny", "vq_decoder_adversarial", 0.5),
                                                   ("paella-tiny", "vq_edge_weight", 1.0),
                                                   ("shapes-koala", "student_init", "random")])
def test_a_recorded_removed_setting_that_mattered_is_refused_in_one_line(model, setting, value, tmp_path, capsys):
    record = json.loads((package_weights(model) / "RECIPE.json").read_text())
    record["config"][setting] = value
    path = tmp_path / "RECIPE.json"
    path.write_text(json.dumps(record))
    assert main(["train", SHIPPED[model], "--config", str(path), "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("t2i: error: --config ")
    assert f"{setting}={value!r}" in err[0] and "was removed" in err[0] and "removed-options.md" in err[0]
    assert not (tmp_path / "w").exists()


def test_a_removed_setting_that_only_tuned_another_goes_at_any_value(tmp_path):
    record = json.loads((package_weights("paella-tiny") / "RECIPE.json").read_text())
    record["config"].update(vq_decoder_critic_start=100, vq_decoder_critic_width=8)  # the critic stays off
    path = tmp_path / "RECIPE.json"
    path.write_text(json.dumps(record))
    assert "vq_decoder_critic_start" not in asdict(config_of("paella-tiny", "--config", str(path)))


def test_config_refuses_another_recipes_record_an_unknown_setting_and_smoke(tmp_path):
    koala = str(package_weights("shapes-koala") / "RECIPE.json")
    with pytest.raises(ValueError, match="a 'shapes-koala' run's RECIPE.json, not 'shapes-xl''s"):
        config_of("shapes-xl", "--config", koala)
    record = json.loads((package_weights("tipo-tiny") / "RECIPE.json").read_text())
    record["config"]["dropout"] = 0.1
    path = tmp_path / "RECIPE.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="dropout: not a setting of this recipe"):
        config_of("tipo-tiny", "--config", str(path))
    with pytest.raises(ValueError, match="give one of them"):
        config_of("tipo-tiny", "--config", str(path), "--smoke")
    path.write_text("{}")
    with pytest.raises(ValueError, match="no `config` block"):
        config_of("tipo-tiny", "--config", str(path))


def test_paella_decoder_steps_flags_name_their_run():
    """--decoder-steps: the decoder stage of a run from scratch; --init-decoder-steps: of a run from an export."""
    assert config_of("paella-tiny", "--decoder-steps", "5").vq_decoder_steps == 5
    shipped = str(package_weights("paella-tiny") / "RECIPE.json")  # a run from an export (init_from)
    assert config_of("paella-tiny", "--config", shipped, "--init-decoder-steps", "7").init_decoder_steps == 7
    with pytest.raises(ValueError, match="--init-decoder-steps"):
        config_of("paella-tiny", "--config", shipped, "--decoder-steps", "5")
    with pytest.raises(ValueError, match="a run from scratch takes --decoder-steps"):
        config_of("paella-tiny", "--init-decoder-steps", "5")


def test_a_recorded_run_runs_again_with_the_same_settings(tmp_path, capsys):
    assert main(["train", "tipo-tiny", "--smoke", "--steps", "2", "--seed", "4", "--work", str(tmp_path / "w1"),
                 "--out", str(tmp_path / "m1")]) == 0
    assert main(["train", "tipo-tiny", "--config", str(tmp_path / "m1" / "RECIPE.json"), "--work",
                 str(tmp_path / "w2"), "--out", str(tmp_path / "m2")]) == 0
    first, again = (json.loads((tmp_path / m / "RECIPE.json").read_text()) for m in ("m1", "m2"))
    assert again["config"] == first["config"] and first["config"]["seed"] == 4
    assert again["provenance"]["command"].startswith("t2i ")
    assert (tmp_path / "w1" / "config.json").read_text() == (tmp_path / "w2" / "config.json").read_text()
    assert str(tmp_path / "m2") in capsys.readouterr().out


def test_building_the_train_parser_imports_no_torch():
    code = "import sys; from tests.train_cli import parser; parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert out.strip() == "False"
