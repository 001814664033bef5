"""Hostile backend options and model folders: every option of every backend schema refuses wrong types,
out-of-range values and NaN with one clear RequestError; bad values fail before any image; malformed Paella
folders and pickle-only weights are refused with one clear error, and a pickle's payload never runs."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from t2i.backends import paella, sdxl
from t2i.backends.options import (
    REMOVED_OPTIONS,
    OptionSpec,
    file_options,
    load_options,
    make_schema,
    validate_at_load,
    validate_options,
    validate_value,
)
from t2i.types import GenerationRequest, RequestError

SCHEMAS = {"SDXL": sdxl.SCHEMA, "Paella": paella.SCHEMA}

# One valid value per option, with what validate_options makes of it.  A new option needs an entry here.
VALID: dict[tuple[str, str], tuple[Any, Any]] = {
    ("SDXL", "device"): ("cuda:1", "cuda:1"),
    ("SDXL", "dtype"): ("bfloat16", "bfloat16"),
    ("SDXL", "cpu_offload"): ("true", True),
    ("SDXL", "vae_tiling"): (True, True),
    ("SDXL", "attention_slicing"): (0, False),
    ("SDXL", "config"): ("/models/sdxl-base", "/models/sdxl-base"),
    ("SDXL", "variant"): ("fp16", "fp16"),
    ("SDXL", "batch_size"): ("2", 2),
    ("SDXL", "region_mode"): ("couple", "couple"),
    ("SDXL", "region_text"): ("local", "local"),
    ("SDXL", "init_strength"): (0.8, 0.8),
    ("SDXL", "hires_scale"): (2, 2.0),
    ("SDXL", "hires_strength"): ("0.5", 0.5),
    ("SDXL", "guidance_rescale"): (0.7, 0.7),
    ("SDXL", "excite"): ("circle, square", "circle, square"),
    ("SDXL", "excite_scale"): (20, 20.0),
    ("SDXL", "excite_factor"): (2.0, 2),
    ("SDXL", "excite_refine"): (0, 0),
    ("SDXL", "empty_negative"): (0.24, 0.24),  # shapes-xl's own default
    ("Paella", "device"): ("auto", "auto"),
    ("Paella", "byt5"): ("google/byt5-xl", "google/byt5-xl"),
    ("Paella", "clip"): ("/models/clip-h", "/models/clip-h"),
    ("Paella", "renoise_steps"): (11, 11),
    ("Paella", "temperature"): ("1.5,0.3", "1.5,0.3"),  # paella-tiny's own default
    ("Paella", "cfg_steps"): (0, 0),
    ("Paella", "batch_size"): (4, 4),
    ("Paella", "variation_image"): ("in.png", "in.png"),
    ("Paella", "variation_weight"): (2, 2.0),
}
# Values outside the form of each text option (choices and numbers get theirs from the schema).
INVALID_FORMS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("SDXL", "device"): ("bogus", "meta", "cuda:x", "cuda:", "CPU", "cpu "),
    ("SDXL", "config"): ("", "a\x00b", "x" * 1001),
    ("SDXL", "variant"): ("../fp16", "fp16/x", "", "a" * 33),
    ("SDXL", "excite"): (True, 2, "x" * 1001),
    ("Paella", "device"): ("bogus", "meta", "cuda:1:2", "gpu"),
    ("Paella", "byt5"): ("", " ", "a\x00b"),
    ("Paella", "clip"): ("", "x" * 1001),
    ("Paella", "temperature"): ("1", "0.7,0.3,0.1", "0,0.3", "0.7,-1", "11,1", "a,b", "nan,0.3", "0.7,inf", "nan"),
    ("Paella", "variation_image"): ("", "a\x00b"),
}
WRONG_TYPE = {"int": ("abc", True, 1.5), "float": ("abc", False), "bool": ("maybe", 0.5, 2),
              "choice": (1.5, True), "str": (1.5,)}


def _params(keep=lambda spec: True):
    return [pytest.param(where, name, id=f"{where}-{name}")
            for where, schema in SCHEMAS.items() for name, spec in schema.items() if keep(spec)]


def _refused(where: str, name: str, value: Any) -> str:
    with pytest.raises(RequestError) as info:
        validate_options(SCHEMAS[where], {name: value}, where)
    message = str(info.value)
    shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80] + "...")
    assert re.fullmatch(rf"{where} option {name} must be .+, got {re.escape(shown)}", message), message
    return message


def test_every_option_has_examples_and_nothing_else():
    declared = {(where, name) for where, schema in SCHEMAS.items() for name in schema}
    assert set(VALID) == declared
    forms = {(where, name) for where, schema in SCHEMAS.items() for name, s in schema.items() if s.check is not None}
    assert set(INVALID_FORMS) == forms


@pytest.mark.parametrize(("where", "name"), _params())
def test_a_valid_value_is_accepted(where, name):
    value, expected = VALID[where, name]
    out = validate_options(SCHEMAS[where], {name: value}, where)
    assert out == {name: expected} and type(out[name]) is type(expected)


@pytest.mark.parametrize(("where", "name"), _params())
def test_a_wrong_type_is_refused(where, name):
    spec = SCHEMAS[where][name]
    for value in WRONG_TYPE[spec.type]:
        if spec.name == "excite" and value == 0:
            continue
        message = _refused(where, name, value)
        assert spec.allowed() in message


@pytest.mark.parametrize(("where", "name"), _params(lambda s: s.numeric))
def test_out_of_range_numbers_are_refused(where, name):
    spec = SCHEMAS[where][name]
    lo, hi = spec.lo, spec.hi
    assert lo is not None and hi is not None  # every number has a range
    below = lo if spec.lo_open else lo - (1 if spec.type == "int" else 0.5)
    for value in (below, hi + 1, hi * 1000 + 1, -(10**30)):
        if value in spec.also:
            continue
        message = _refused(where, name, value)
        assert f"must be in {spec.range_text()}" in message


@pytest.mark.parametrize(("where", "name"), _params(lambda s: s.numeric))
def test_nan_and_infinity_are_refused(where, name):
    for value in (float("nan"), float("inf"), -float("inf"), "nan", "inf", "1e999"):
        message = _refused(where, name, value)
        assert "must be a finite number in" in message


@pytest.mark.parametrize(("where", "name"), _params(lambda s: s.type == "choice" or s.check is not None))
def test_values_outside_a_choice_or_form_are_refused(where, name):
    spec = SCHEMAS[where][name]
    values = INVALID_FORMS.get((where, name), ("bogus", "", "OMOST", "float64"))
    for value in values:
        message = _refused(where, name, value)
        assert spec.allowed() in message


def test_exact_messages():
    cases = [("SDXL", {"batch_size": -3}, "SDXL option batch_size must be in [1, 64], got -3"),
             ("SDXL", {"device": "meta"},
              "SDXL option device must be auto, cpu, cuda, cuda:N (N a GPU index) or mps, got 'meta'"),
             ("SDXL", {"hires_scale": 100}, "SDXL option hires_scale must be in [1, 4] (or 0), got 100"),
             ("SDXL", {"init_strength": 2}, "SDXL option init_strength must be in (0, 1], got 2"),
             ("SDXL", {"excite_factor": -1}, "SDXL option excite_factor must be in [1, 64], got -1"),
             ("SDXL", {"empty_negative": "abc"}, "SDXL option empty_negative must be a number in [0, 1], got 'abc'"),
             ("SDXL", {"batch_size": True}, "SDXL option batch_size must be a whole number in [1, 64], got True"),
             ("SDXL", {"guidance_rescale": float("nan")},
              "SDXL option guidance_rescale must be a finite number in [0, 1], got nan"),
             ("SDXL", {"turbo": True}, "unknown SDXL options ['turbo'] (known: " + ", ".join(sorted(sdxl.SCHEMA))
              + ")"),
             ("Paella", {"batch_size": -1}, "Paella option batch_size must be in [1, 64], got -1"),
             ("Paella", {"temperature": "nan"}, "Paella option temperature must be two numbers in (0, 10], start "
              "and end temperature, e.g. 0.7,0.3 (1 number given), got 'nan'"),
             ("Paella", {"temperature": "nan,0.3"}, "Paella option temperature must be two numbers in (0, 10], "
              "start and end temperature, e.g. 0.7,0.3, got 'nan,0.3'")]
    for where, options, message in cases:
        with pytest.raises(RequestError) as info:
            validate_options(SCHEMAS[where], options, where)
        assert str(info.value) == message


def test_normalised_values_and_none_means_the_default():
    out = validate_options(sdxl.SCHEMA, {"excite": 0, "hires_scale": 0, "vae_tiling": "off", "batch_size": None,
                                         "excite_refine": "3"}, "SDXL")
    assert out == {"excite": "off", "hires_scale": 0, "vae_tiling": False, "excite_refine": 3}
    assert validate_options(sdxl.SCHEMA, {"excite": "off"}, "SDXL") == {"excite": "off"}
    assert validate_options(sdxl.SCHEMA, {"excite": False}, "SDXL") == {"excite": "off"}


def test_load_time_and_file_bearing_options():
    assert load_options(sdxl.SCHEMA) == {"device", "dtype", "cpu_offload", "vae_tiling", "attention_slicing", "config",
                                         "variant"}
    assert file_options(sdxl.SCHEMA) == {"config"}
    assert load_options(paella.SCHEMA) == {"device", "byt5", "clip"}
    assert file_options(paella.SCHEMA) == {"byt5", "clip", "variation_image"}
    assert sdxl.SDXLBackend.schema is sdxl.SCHEMA and paella.PaellaBackend.schema is paella.SCHEMA


@pytest.mark.parametrize("entry", REMOVED_OPTIONS, ids=lambda e: f"{e.option}-{e.value}")
def test_a_removed_option_is_one_line_naming_what_replaced_it(entry):
    value = True if entry.value is None else entry.value
    for where, schema in SCHEMAS.items():
        for check in (validate_options, validate_at_load):  # at load too: the request's fault, a RequestError
            with pytest.raises(RequestError) as info:
                check(schema, {"batch_size": 1, entry.option: value}, where)
            assert str(info.value) == entry.message() and "\n" not in entry.message()
            assert entry.message().startswith(f"{entry.option} {entry.value!r} was removed after t2i " if entry.value
                                              else f"option {entry.option} was removed after t2i ")
        if entry.value is None:  # the option is gone from every schema
            assert entry.option not in schema
        elif entry.option in schema:  # the option lives on: only the removed value is gone from it
            assert entry.value not in schema[entry.option].choices
    if entry.value is None:  # a removed option is refused whatever its value
        with pytest.raises(RequestError, match="was removed"):
            validate_options(sdxl.SCHEMA, {entry.option: None}, "SDXL")
    else:  # the option itself is fine
        assert validate_options(sdxl.SCHEMA, {entry.option: None}, "SDXL") == {}


def test_sdxl_choices_follow_the_regional_renderer():
    from t2i.render.regional import REGION_MODES, REGION_TEXTS

    assert sdxl.SCHEMA["region_mode"].choices == REGION_MODES
    assert sdxl.SCHEMA["region_text"].choices == REGION_TEXTS


def test_the_shipped_defaults_pass_their_schema():
    from t2i.backends import default_registry

    registry = default_registry()
    for name, schema, where in (("shapes-xl", sdxl.SCHEMA, "SDXL"), ("shapes-koala", sdxl.SCHEMA, "SDXL"),
                                ("paella-tiny", paella.SCHEMA, "Paella")):
        options = dict(registry.resolve(name).spec.defaults.get("options", {}))
        assert options and validate_options(schema, options, where) == options


def test_a_bad_schema_is_refused_when_declared():
    with pytest.raises(ValueError, match="only numbers have a range"):
        OptionSpec("x", "str", lo=0)
    with pytest.raises(ValueError, match="a choice needs choices"):
        OptionSpec("x", "choice")
    with pytest.raises(ValueError, match="declared twice"):
        make_schema(OptionSpec("x", "bool"), OptionSpec("x", "int"))
    with pytest.raises(RequestError, match="x must be a whole number in"):
        validate_value(OptionSpec("x", "int", lo=0, hi=2), 1.5, "T")


def test_a_device_that_is_not_there_is_a_model_error(monkeypatch):
    torch = pytest.importorskip("torch")
    from t2i.backends.options import resolve_device
    from t2i.registry import ModelError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [resolve_device(d) for d in ("auto", "cpu", "cuda", "cuda:1")] == ["cuda", "cpu", "cuda", "cuda:1"]
    with pytest.raises(ModelError) as info:
        resolve_device("cuda:2")
    assert str(info.value) == "device cuda:2: torch sees 2 CUDA device(s), cuda:0 to cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ModelError) as info:
        resolve_device("cuda:1")
    assert str(info.value) == "device cuda:1 was asked for but CUDA is not available"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ModelError) as info:
        resolve_device("mps")
    assert str(info.value) == "device mps was asked for but torch sees no MPS (Apple GPU) device"


# ---------------------------------------------------------------------------- end to end on tiny models


class Canary:
    """Unpickling this creates (truncates) the file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _canary_pickle(target: Path, canary: Path) -> None:
    target.write_bytes(pickle.dumps(Canary(canary)))


def test_the_canary_payload_is_live(tmp_path):
    """The canary pickles below would create their file if anything unpickled them."""
    probe = tmp_path / "probe"
    _canary_pickle(tmp_path / "p.bin", probe)
    pickle.loads((tmp_path / "p.bin").read_bytes()).close()  # noqa: S301 - our own payload, on purpose
    assert probe.exists()


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    pytest.importorskip("diffusers")
    from t2i.backends import default_registry
    from tests.tiny_sdxl import build_tiny_sdxl

    path = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    registry = default_registry()
    _, backend = registry.load(str(path), {"device": "cpu"})
    return registry, backend, str(path)


def _sdxl_request(model: str, **kw: Any) -> GenerationRequest:
    base = dict(prompt="a red circle", model=model, seed=5, steps=2, guidance=2.0, width=64, height=64)
    return GenerationRequest(**{**base, **kw})


def test_sdxl_negative_batch_size_fails_before_any_image(tiny_sdxl):
    from t2i.generate import generate

    registry, backend, model = tiny_sdxl
    steps = []
    with pytest.raises(RequestError) as info:
        generate(_sdxl_request(model, n_images=2, model_options={"batch_size": -3}), registry, backend=backend,
                 callback=lambda done, total: steps.append(done))
    assert str(info.value) == "SDXL option batch_size must be in [1, 64], got -3" and steps == []
    for options, message in (({"hires_scale": 100}, "SDXL option hires_scale must be in [1, 4] (or 0), got 100"),
                             ({"excite_factor": -1}, "SDXL option excite_factor must be in [1, 64], got -1"),
                             ({"empty_negative": "abc"},
                              "SDXL option empty_negative must be a number in [0, 1], got 'abc'")):
        with pytest.raises(RequestError) as info:
            backend.generate(_sdxl_request(model, model_options=options), lambda d, t: steps.append(d))
        assert str(info.value) == message and steps == []


def test_sdxl_cli_negative_batch_size_exits_non_zero_and_writes_nothing(tiny_sdxl, tmp_path, capsys):
    from t2i.cli import main

    _, _, model = tiny_sdxl
    code = main(["generate", "a red circle", "--model", model, "--seed", "1", "--steps", "1", "--n", "2",
                 "--option", "batch_size=-3", "--out", str(tmp_path / "x.png")])
    assert code != 0
    assert "SDXL option batch_size must be in [1, 64], got -3" in capsys.readouterr().err
    assert list(tmp_path.rglob("*.png")) == []


def test_sdxl_device_meta_and_bogus_are_refused_at_load(tiny_sdxl):
    from t2i.registry import ModelError

    registry, _, model = tiny_sdxl
    for device in ("meta", "bogus"):
        with pytest.raises(ModelError) as info:
            registry.load(model, {"device": device})
        assert str(info.value) == (f"SDXL option device must be auto, cpu, cuda, cuda:N (N a GPU index) or mps, "
                                   f"got {device!r}")
    with pytest.raises(ModelError) as info:
        registry.load(model, {"turbo": True})
    assert str(info.value).startswith("unknown SDXL options ['turbo'] (known: attention_slicing, batch_size, ")
    with pytest.raises(RequestError) as info:  # a bad per-call option is the request's fault, even at load
        registry.load(model, {"batch_size": -3})
    assert not isinstance(info.value, ModelError)
    assert str(info.value) == "SDXL option batch_size must be in [1, 64], got -3"
    with pytest.raises(ModelError, match="option variant picks the weights of a hub model"):
        registry.load(model, {"variant": "fp16"})
    with pytest.raises(ModelError, match="option config is for single-file checkpoints"):
        registry.load(model, {"config": model})


def test_a_call_cannot_change_a_load_time_option(tiny_sdxl):
    registry, backend, model = tiny_sdxl
    with pytest.raises(RequestError) as info:
        backend.generate(_sdxl_request(model, model_options={"dtype": "bfloat16"}))
    assert str(info.value) == ("SDXL option dtype is read when the model is loaded: this one was loaded with "
                               "dtype=None, the call asks for 'bfloat16'; load the model again with it")
    assert len(backend.generate(_sdxl_request(model, model_options={"device": "cpu"}), None).images) == 1
    for same in ({"device": "auto"}, {"dtype": "float32", "vae_tiling": False}):
        assert len(backend.generate(_sdxl_request(model, model_options=same), None).images) == 1


@pytest.fixture(scope="module")
def paella_folder(tmp_path_factory):
    import torch

    from t2i.paella import Paella, VQModel
    from t2i.paella.pipeline import PaellaPipeline
    from t2i.paella.text import tiny_byt5_encoder
    from tests.test_paella import TINY, TINY_VQ

    torch.manual_seed(0)
    pipe = PaellaPipeline(Paella(TINY), VQModel(TINY_VQ), tiny_byt5_encoder(16, 1, 2, 32), max_length=16)
    return pipe.save_pretrained(tmp_path_factory.mktemp("paella") / "tiny",
                                {"steps": 3, "guidance": 2.0, "width": 32, "height": 32})


def _paella_request(folder: Path, **kw: Any) -> GenerationRequest:
    base = dict(prompt="a red circle", model=str(folder), seed=1, steps=3, guidance=2.0, width=32, height=32)
    return GenerationRequest(**{**base, **kw})


def test_paella_bad_options_fail_before_any_image(paella_folder):
    from t2i.backends import default_registry
    from t2i.registry import ModelError

    registry = default_registry()
    _, backend = registry.load(str(paella_folder))
    steps = []
    form = "two numbers in (0, 10], start and end temperature, e.g. 0.7,0.3"
    for options, message in (({"batch_size": -1}, "Paella option batch_size must be in [1, 64], got -1"),
                             ({"temperature": "nan"}, f"Paella option temperature must be {form} (1 number given), "
                                                      "got 'nan'"),
                             ({"temperature": "nan,0.3"}, f"Paella option temperature must be {form}, got 'nan,0.3'"),
                             ({"temperature": "0.7,inf"}, f"Paella option temperature must be {form}, got '0.7,inf'"),
                             ({"variation_weight": 0}, "Paella option variation_weight must be in (0, 100], got 0")):
        with pytest.raises(RequestError) as info:
            backend.generate(_paella_request(paella_folder, n_images=2, model_options=options),
                             lambda d, t: steps.append(d))
        assert str(info.value) == message and steps == []
    for options, message in (({"device": "meta"}, "Paella option device must be auto, cpu, cuda, cuda:N (N a GPU "
                                                  "index) or mps, got 'meta'"),
                             ({"byt5": "google/byt5-xl"}, f"option byt5 picks the released v3's text encoders; "
                                                          f"{paella_folder} is a saved pipeline with its own")):
        with pytest.raises(ModelError) as info:
            registry.load(str(paella_folder), options)
        assert str(info.value) == message
    ok = backend.generate(_paella_request(paella_folder, model_options={"temperature": "1.5,0.3", "batch_size": 1}))
    assert len(ok.images) == 1


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


KNOWN_PARTS = "generator, vqgan, text_encoder, clip_text_encoder, clip_tokenizer, clip_image_encoder"


@pytest.mark.parametrize(("components", "expected"), [
    pytest.param(3, f'"components" must be a list of subfolder names from {KNOWN_PARTS}, got 3', id="a-number"),
    pytest.param({"generator": 1}, f'"components" must be a list of subfolder names from {KNOWN_PARTS}, '
                 "got {'generator': 1}", id="a-mapping"),
    pytest.param(["generator", "vqgan", "text_encoder", "../../etc"],
                 f"unknown components '../../etc' (known: {KNOWN_PARTS})", id="an-odd-subfolder"),
    pytest.param(["generator", "text_encoder"], '"components" must list vqgan', id="a-part-unlisted"),
    pytest.param(["generator", "vqgan", "text_encoder", "clip_image_encoder"],
                 "lists clip_image_encoder but {folder} has no such subfolder", id="a-missing-subfolder"),
])
def test_a_bad_paella_model_index_is_one_clear_error(paella_folder, tmp_path, components, expected):
    from t2i.backends import default_registry
    from t2i.registry import ModelError

    folder = _copy(paella_folder, tmp_path)
    index = folder / "model_index.json"
    data = json.loads(index.read_text())
    index.write_text(json.dumps({**data, "components": components}))
    with pytest.raises(ModelError) as info:
        default_registry().load(str(folder))
    expected = expected.replace("{folder}", str(folder))
    assert str(info.value) == f"{folder}: cannot load a Paella pipeline: {index}: {expected}"


def test_a_paella_index_that_is_not_an_object_or_has_a_bad_max_length(paella_folder, tmp_path):
    from t2i.paella.pipeline import PaellaPipeline

    folder = _copy(paella_folder, tmp_path)
    index = folder / "model_index.json"
    data = json.loads(index.read_text())
    for bad, expected in (([1, 2], "expected a JSON object, got list"), ("{", "not valid JSON"),
                          (json.dumps({**data, "max_length": "big"}),
                           '"max_length" must be a whole number in [1, 100000], got big')):
        index.write_text(bad if isinstance(bad, str) else json.dumps(bad))
        with pytest.raises(ValueError, match=re.escape(f"{index}: {expected}")):
            PaellaPipeline.from_pretrained(folder)


@pytest.mark.parametrize("part", ["generator", "text_encoder"])
def test_a_pickle_only_paella_part_is_refused_and_never_unpickled(paella_folder, tmp_path, part):
    from t2i.backends import default_registry
    from t2i.registry import ModelError

    folder = _copy(paella_folder, tmp_path)
    for weights in (folder / part).glob("*.safetensors"):
        weights.unlink()
    name = "model.bin" if part == "generator" else "pytorch_model.bin"
    canary = tmp_path / "canary"
    _canary_pickle(folder / part / name, canary)
    with pytest.raises(ModelError) as info:
        default_registry().load(str(folder))
    pickled = folder / part / name
    assert str(info.value) == (f"{folder}: cannot load a Paella pipeline: {pickled}: pickled weights and no "
                               "safetensors; t2i does not load pickles (they can run code). Convert them: "
                               f"`t2i convert {pickled} {folder / part / 'model.safetensors'}`")
    assert not canary.exists()


def test_a_pickle_only_llm_folder_is_refused_and_never_unpickled(tmp_path):
    pytest.importorskip("transformers")
    from t2i.backends.llm import load_llm
    from t2i.llm import LLMError
    from t2i.llm.transformers_llm import TransformersLLM
    from tests.tiny_llm import make_tiny_llama

    folder = make_tiny_llama(tmp_path / "llm")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    canary = tmp_path / "canary"
    _canary_pickle(folder / "pytorch_model.bin", canary)
    expected = (f"{folder}: its weights are pickles (pytorch_model.bin) and t2i does not load pickles (they can run "
                f"code); convert them: `t2i convert {folder / 'pytorch_model.bin'} {folder / 'model.safetensors'}`")
    for load in (lambda: load_llm(str(folder), options={"device": "cpu"}),
                 lambda: TransformersLLM.load(folder, device="cpu")):
        with pytest.raises(LLMError) as info:
            load()
        assert str(info.value) == expected
    assert not canary.exists()
