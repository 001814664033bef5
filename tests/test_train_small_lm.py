"""The small-LM recipe (tipo-tiny; omost-tiny later): smoke run, resume, loss goes down, export loads."""

from __future__ import annotations

import json
import random

import pytest
import torch

from t2i.backends.llm import load_llm
from t2i.llm import SamplingSettings
from t2i.presample import REFERENCE_SETTINGS, LengthTargets, parse_output, sampling_for, targets_for
from t2i.stages import vocabulary_for
from t2i.train.small_lm import SmallLMConfig, train_small_lm
from t2i.train.tipo_data import BUCKETS, TINY_SAMPLING, TINY_TARGETS, tipo_document, tipo_documents
from t2i.train.tipo_tiny import train_tipo_tiny
from t2i.world.scene import sample_scene
from t2i.world.text import parse_sentence, parse_tag


def test_tipo_documents_are_valid_tipo_layout_and_shapes_world_text():
    for doc in tipo_documents(200, 3):
        out = parse_output(doc)
        assert out.fields["target"].startswith("<|") and out.tags
        assert all(parse_tag(t) is not None for t in out.tags)
        assert BUCKETS[len(out.tags)] in out.fields["target"]
        if out.generated and "long_to_tag" not in out.fields["target"]:
            assert all(parse_sentence(s) is not None for s in out.generated.split(". "))
    assert tipo_documents(5, 1) == tipo_documents(5, 1)


def test_the_task_that_starts_from_a_caption_lists_its_objects_first():
    rng = random.Random(0)
    for _ in range(200):
        doc = tipo_document(sample_scene(rng), rng)
        if "<|short_to_tag|>" in doc:
            out = parse_output(doc)
            first = parse_tag(out.tags[0])
            assert first is not None
            break
    else:
        pytest.fail("no short_to_tag document in 200")


def test_smoke_run_exports_a_loadable_presampler(tmp_path):
    out = train_tipo_tiny(SmallLMConfig.smoke(), tmp_path / "work", tmp_path / "model")
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    written = json.loads((out / "presample.json").read_text())
    assert targets_for(out) == TINY_TARGETS == LengthTargets.from_dict({k: v for k, v in written.items()
                                                                       if k not in ("sampling", "vocabulary")})
    assert vocabulary_for(out).name == "shapes-world"  # generated text outside shapes world is dropped
    settings = sampling_for(out)  # the model's own sampling, over the reference's other fields
    assert (settings.temperature, settings.top_k, settings.repetition_penalty) == (1.0, 0, 1.0)
    assert settings.max_tokens == REFERENCE_SETTINGS.max_tokens and written["sampling"] == TINY_SAMPLING
    assert targets_for(out).pick("auto", 0) in BUCKETS.values()
    recipe = json.loads((out / "RECIPE.json").read_text())
    assert recipe["figures"]["validation_loss"] > 0
    llm = load_llm(str(out))
    assert llm.tokenizer.convert_tokens_to_ids("<|tag_to_long|>") != llm.tokenizer.unk_token_id
    assert llm.complete("target: <|long|>\ntag:", SamplingSettings(max_tokens=4)).n_tokens >= 1


def _docs(n: int, seed: int) -> list[str]:
    return tipo_documents(n, seed)


def test_kill_and_resume_equals_one_run_and_loss_goes_down(tmp_path):
    cfg = SmallLMConfig.smoke()
    cfg.steps, cfg.checkpoint_seconds = 30, 0.0
    straight = train_small_lm(cfg, "t", _docs, (), tmp_path / "a", tmp_path / "ma")
    assert train_small_lm(cfg, "t", _docs, (), tmp_path / "b", tmp_path / "mb", stop=lambda s: s == 17) is None
    resumed = train_small_lm(cfg, "t", _docs, (), tmp_path / "b", tmp_path / "mb")
    from safetensors.torch import load_file

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = torch.load(tmp_path / "a" / "lm.ckpt", weights_only=True)["losses"]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_tiny_targets_fit_the_world():
    assert TINY_TARGETS.min_tags["very_short"] == 2 and TINY_TARGETS.max_tags["very_long"] == 5
    assert abs(sum(TINY_TARGETS.target_weights.values()) - 1) < 0.01


def test_omost_tiny_smoke_exports_a_chat_model_whose_documents_parse(tmp_path):
    from t2i.compose import parse_canvas
    from t2i.compose.conversation import system_prompt_for
    from t2i.train.omost_data import TINY_SYSTEM, omost_documents
    from t2i.train.omost_tiny import train_omost_tiny

    for doc in omost_documents(20, 0) + omost_documents(20, 0, paraphrased=1.0):
        assert parse_canvas(doc.split("<|assistant|>\n", 1)[1]).components
    cfg = SmallLMConfig.smoke()
    cfg.context = 2048
    cfg.paraphrased = 0.5
    out = train_omost_tiny(cfg, tmp_path / "w", tmp_path / "m")
    assert system_prompt_for("omost-tiny", out) == TINY_SYSTEM
    assert __import__("json").loads((out / "RECIPE.json").read_text())["config"]["paraphrased"] == 0.5
    llm = load_llm(str(out))
    from t2i.llm import Message

    answer = llm.chat([Message("system", TINY_SYSTEM), Message("user", "a red circle")],
                      SamplingSettings(max_tokens=3))
    assert answer.n_prompt_tokens > 5


def test_fine_tuning_starts_from_the_exported_model_and_keeps_its_tokenizer(tmp_path):
    from safetensors.torch import load_file

    cfg = SmallLMConfig.smoke()
    first = train_small_lm(cfg, "t", _docs, (), tmp_path / "a", tmp_path / "ma")
    cfg.init, cfg.steps, cfg.lr = str(first), 1, 1e-9  # one step at a vanishing rate: weights barely move
    second = train_small_lm(cfg, "t", _docs, (), tmp_path / "b", tmp_path / "mb")
    assert (tmp_path / "ma" / "tokenizer.json").read_text() == (tmp_path / "mb" / "tokenizer.json").read_text()
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)
    cfg.init = str(tmp_path / "missing")
    with pytest.raises(OSError):
        train_small_lm(cfg, "t", _docs, (), tmp_path / "c", tmp_path / "mc")


def test_about_one_omost_document_in_seven_teaches_a_relation():
    import re

    from t2i.train.omost_data import omost_documents
    from t2i.world.relations import RELATIONS

    docs = omost_documents(600, 3)
    taught = [d for d in docs if "# Set a global description for the canvas: " in d]
    assert 0.10 < len(taught) / len(docs) < 0.20
    for d in taught:
        prompt = d.split("<|user|>\n", 1)[1].split("</s>", 1)[0]
        summary = re.search(r"for the canvas: (.+)\.\n", d).group(1)
        rel = next(r for r in RELATIONS if f" {r} " in summary)
        assert summary.split(f" {rel} ")[1].split()[-1] == prompt.split()[-1]  # the same second object
        assert d.count("canvas.add_local_description(") == 2 and d.count("# Add ") == 2


def test_prompts_that_fix_no_place_get_open_layouts():
    import random

    from t2i.compose import parse_canvas
    from t2i.train.omost_data import OPEN_LAYOUT_AREAS, omost_conversation, open_layout_scene
    from t2i.world.captions import natural_caption
    from t2i.world.scene import separated

    rng = random.Random(7)
    for n in (1, 2, 3, 4):
        objects = open_layout_scene(rng, n).objects
        assert len(objects) == n and {o.area for o in objects} <= set(OPEN_LAYOUT_AREAS)
        assert all(separated(a, b) for i, a in enumerate(objects) for b in objects[:i])
    place_words = ("left", "right", "top", "bottom", "center", "middle", "corner", "side", "upper", "lower", "above",
                   "below", "under", "over", "beneath", "near", "small", "medium", "large")
    open_areas, other_areas = [], []
    for _ in range(400):
        prompt, program = omost_conversation(rng)
        areas = [c.area for c in parse_canvas(program).components]
        (other_areas if any(w in prompt for w in place_words) else open_areas).extend(areas)
    assert len(open_areas) > 100 and set(open_areas) <= set(OPEN_LAYOUT_AREAS)
    assert not set(other_areas) <= set(OPEN_LAYOUT_AREAS)  # prompts that fix places keep the world's areas
    with pytest.raises(ValueError, match="form must be one of"):
        natural_caption(open_layout_scene(rng, 1), rng, form="poem")


def test_counting_prompts_get_that_many_regions_of_one_shape():
    import random
    import re

    from t2i.compose import parse_canvas
    from t2i.train.omost_data import omost_conversation

    rng, seen = random.Random(11), 0
    for _ in range(600):
        prompt, program = omost_conversation(rng)
        m = re.fullmatch(r"(?:a \w+ of |an image of )?(two|three|four) (?:\w+ )?(circle|square|triangle|star)s"
                         r"(?: (?:on|against|with) a \w+ background)?", prompt)
        if m:
            seen += 1
            regions = parse_canvas(program).components
            assert len(regions) == {"two": 2, "three": 3, "four": 4}[m.group(1)], prompt
            assert all(m.group(2) in r.description for r in regions)
    assert seen > 20
