"""The image recipes' device setting: flags, errors, resuming across devices; a CUDA run when there is one."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from t2i.train.device import flushed_denormals, mixed_precision, resolve_device  # noqa: E402
from t2i.train.paella_tiny import PaellaTinyConfig, train_paella_tiny  # noqa: E402
from t2i.train.shapes_xl import ShapesXLConfig, train_shapes_xl  # noqa: E402

from .train_cli import main, usage_error  # noqa: E402


def test_the_image_recipes_take_device_batch_and_lr_flags(tmp_path, capsys):
    assert main(["train", "shapes-xl", "--smoke", "--work", str(tmp_path / "x"), "--out", str(tmp_path / "xm"),
                 "--device", "cpu", "--batch", "3"]) == 0
    saved = json.loads((tmp_path / "x" / "config.json").read_text())
    assert (saved["device"], saved["unet_batch"]) == ("cpu", 3)
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "p"), "--out", str(tmp_path / "pm"),
                 "--device", "cpu", "--batch", "3", "--lr", "5e-4"]) == 0
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert (saved["device"], saved["batch"], saved["lr"]) == ("cpu", 3, 5e-4)
    capsys.readouterr()
    usage_error(["train", "shapes-xl", "--work", str(tmp_path / "y"), "--out", str(tmp_path / "ym"),
                 "--lr", "1e-4"])
    assert "unrecognized arguments: --lr" in capsys.readouterr().err  # shapes-xl's is --unet-lr
    usage_error(["train", "tipo-tiny", "--work", str(tmp_path / "t"), "--out", str(tmp_path / "tm"),
                 "--device", "cpu"])
    assert "unrecognized arguments: --device" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_that_is_not_there_is_an_error_before_anything_is_written(tmp_path, capsys):
    for recipe in ("shapes-xl", "paella-tiny"):
        work = tmp_path / recipe
        assert main(["train", recipe, "--smoke", "--work", str(work), "--out", str(tmp_path / "m"),
                     "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
        assert not work.exists()
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def test_bad_batches_and_rates_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unet_batch"):
        train_shapes_xl(ShapesXLConfig(**{**ShapesXLConfig.smoke().__dict__, "unet_batch": 0}), tmp_path / "x",
                        tmp_path / "xm")
    for change in ({"batch": 0}, {"lr": 0.0}, {"vq_batch": 0}):
        with pytest.raises(ValueError, match="batch and vq_batch must be at least 1"):
            train_paella_tiny(PaellaTinyConfig(**{**PaellaTinyConfig.smoke().__dict__, **change}), tmp_path / "p",
                              tmp_path / "pm")


def test_the_device_is_a_machine_setting_a_run_may_change(tmp_path):
    # begun on one device setting, a work folder goes on under another (as with threads)
    xl = ShapesXLConfig.smoke()
    xl.device = "cpu"
    train_shapes_xl(xl, tmp_path / "x", tmp_path / "xm", stop=lambda step: step == 2)
    xl.device = "auto"
    assert train_shapes_xl(xl, tmp_path / "x", tmp_path / "xm") is not None
    pa = PaellaTinyConfig.smoke()
    pa.device = "cpu"
    train_paella_tiny(pa, tmp_path / "p", tmp_path / "pm")
    pa.device, pa.steps = "auto", pa.steps + 2
    assert (train_paella_tiny(pa, tmp_path / "p", tmp_path / "pm") / "RECIPE.json").exists()


def test_mixed_precision_changes_nothing_on_the_cpu():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with mixed_precision(torch.device("cpu")):
        c = a @ b
    assert c.dtype == torch.float32 and torch.equal(c, a @ b)


@pytest.mark.slow
def test_both_recipes_train_on_cuda_from_the_same_batches_as_on_the_cpu(tmp_path):
    """On a GPU machine: each smoke run on cuda exports a model, and its first loss, drawn from the same CPU
    generators as the CPU run's, agrees with the CPU run's to bfloat16 precision."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    for device in ("cpu", "cuda"):
        losses: dict[str, list[float]] = {}

        def progress(stage: str, step: int, total: int, loss: float, losses=losses) -> None:
            losses.setdefault(stage, []).append(loss)

        xl = ShapesXLConfig.smoke()
        xl.device = device
        assert train_shapes_xl(xl, tmp_path / f"x-{device}", tmp_path / f"xm-{device}", progress) is not None
        pa = PaellaTinyConfig.smoke()
        pa.device = device
        train_paella_tiny(pa, tmp_path / f"p-{device}", tmp_path / f"pm-{device}", progress)
        if device == "cpu":
            first = {stage: values[0] for stage, values in losses.items()}
        else:
            for stage, value in first.items():
                assert losses[stage][0] == pytest.approx(value, rel=0.05), stage


def test_worker_processes_make_the_same_u_net_batches_as_the_loop(tmp_path):
    from t2i.train.steps import resolve_workers

    weights = []
    for workers in (0, 2):
        cfg = ShapesXLConfig.smoke()
        cfg.loader_workers, cfg.unet_steps = workers, 6
        out = train_shapes_xl(cfg, tmp_path / f"w{workers}", tmp_path / f"m{workers}")
        weights.append(torch.load(tmp_path / f"w{workers}" / "unet.ckpt", weights_only=True))
        assert (out / "RECIPE.json").exists()
    assert weights[0]["losses"] == weights[1]["losses"]
    for key, value in weights[0]["unet"].items():
        assert torch.equal(value, weights[1]["unet"][key]), key
    paella = []
    for workers in (0, 2):
        cfg = PaellaTinyConfig.smoke()
        cfg.loader_workers, cfg.steps = workers, 5
        train_paella_tiny(cfg, tmp_path / f"p{workers}", tmp_path / f"pm{workers}")
        paella.append(torch.load(tmp_path / f"p{workers}" / "model.ckpt", weights_only=True)["model"])
    for key, value in paella[0].items():
        assert torch.equal(value, paella[1][key]), key
    assert resolve_workers(-1, torch.device("cpu")) == 0 and resolve_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="loader_workers"):
        resolve_workers(-2, torch.device("cpu"))


def test_subnormals_read_as_zero_inside_the_block_and_the_setting_comes_back():
    tiny = torch.tensor([1e-39])  # a float32 subnormal
    assert float(tiny * 1.0) > 0
    with flushed_denormals():
        if float(tiny * 1.0) != 0.0:
            pytest.skip("this CPU cannot flush subnormals")
        assert float(torch.tensor([1e-30]) * 1e-9) == 0.0
    assert float(tiny * 1.0) > 0  # off again after the block
    torch.set_flush_denormal(True)
    try:
        with flushed_denormals():
            pass
        assert float(tiny * 1.0) == 0.0  # on before: left on
    finally:
        torch.set_flush_denormal(False)
