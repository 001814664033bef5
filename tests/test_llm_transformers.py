import pytest

from t2i.backends.llm import load_llm
from t2i.llm import LLMError, Message, SamplingSettings, stream
from t2i.llm.transformers_llm import TransformersLLM, cache_argument, pick_device_dtype
from tests.tiny_llm import make_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("llm") / "tiny")


def test_loads_float32_on_cpu_and_answers(tiny):
    llm = load_llm(str(tiny), options={"device": "cpu"})
    assert isinstance(llm, TransformersLLM)
    assert next(llm.model.parameters()).dtype.is_floating_point and str(next(llm.model.parameters()).dtype) == \
        "torch.float32"
    out = llm.complete("tag: red circle", SamplingSettings(max_tokens=12, temperature=1.0, seed=3))
    assert out.n_prompt_tokens > 0 and 0 < out.n_tokens <= 12 and out.finish_reason in ("stop", "length")


def test_cache_is_passed_under_the_name_the_model_takes(tiny):
    """transformers 5.24 renamed `past_key_values` to `cache` and warns on the old name at every token."""
    import inspect
    import warnings

    llm = load_llm(str(tiny))
    name = cache_argument(llm.model)
    assert name in inspect.signature(llm.model.forward).parameters
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = llm.complete("tag: red", SamplingSettings(max_tokens=8, temperature=1.0, seed=2))
    assert out.n_tokens > 1  # the cached steps ran
    assert not [w for w in caught if "past_key_values" in str(w.message)]


def test_same_seed_same_text_other_seed_other_text(tiny):
    llm = load_llm(str(tiny))
    runs = [llm.complete("tag: red", SamplingSettings(max_tokens=20, temperature=1.5, seed=s)).text
            for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_streamed_pieces_make_the_text_and_cancel_stops(tiny):
    llm = load_llm(str(tiny))
    s = SamplingSettings(max_tokens=20, temperature=1.5, seed=5)
    pieces = list(stream(lambda cb: llm.complete("tag:", s, cb)))
    assert "".join(pieces) == llm.complete("tag:", s).text
    cut = llm.complete("tag:", s, lambda piece: False)
    assert cut.finish_reason == "cancelled" and len(cut.text) <= len(pieces[0])


def test_stop_strings_and_chat_template(tiny):
    llm = load_llm(str(tiny))
    full = llm.complete("tag:", SamplingSettings(max_tokens=30, temperature=1.5, seed=7)).text
    stop = full[len(full) // 2: len(full) // 2 + 2]
    if stop.strip():
        cut = llm.complete("tag:", SamplingSettings(max_tokens=30, temperature=1.5, seed=7, stop=(stop,)))
        assert cut.finish_reason == "stop" and cut.text == full[: full.find(stop)]
    answer = llm.chat([Message("user", "draw a circle")], SamplingSettings(max_tokens=5, seed=1))
    assert answer.n_prompt_tokens > 5


def test_chat_without_template_is_a_clear_error(tmp_path):
    llm = load_llm(str(make_tiny_llama(tmp_path / "plain", chat=False)))
    with pytest.raises(LLMError, match="no chat template"):
        llm.chat([Message("user", "hi")], SamplingSettings())


def test_half_precision_is_refused_on_cpu():
    with pytest.raises(LLMError, match="float32"):
        pick_device_dtype("cpu", "float16")
    assert pick_device_dtype("cpu", None) == ("cpu", "float32")


def test_bitsandbytes_checkpoint_is_a_clear_error_on_cpu(tmp_path):
    folder = make_tiny_llama(tmp_path / "q", quantised=True)
    with pytest.raises(LLMError, match="CUDA only"):
        load_llm(str(folder), options={"device": "cpu"})


def test_prompt_longer_than_the_context_is_an_error(tiny):
    llm = load_llm(str(tiny))
    with pytest.raises(LLMError, match="at most 128"):
        llm.complete("red circle, " * 200, SamplingSettings(max_tokens=4))


def test_unknown_options_and_image_models_are_refused(tiny):
    with pytest.raises(LLMError, match="unknown LLM option"):
        load_llm(str(tiny), options={"temprature": 1})
    with pytest.raises(LLMError, match="not a language model"):
        load_llm("shapes-xl")


def test_registered_hub_model_offline_says_how_to_get_it():
    with pytest.raises(LLMError, match="huggingface-cli download"):
        load_llm("tipo-500m-ft", options={"device": "cpu"})
    with pytest.raises(LLMError, match="huggingface-cli download KBlueLeaf/TIPO-500M-ft TIPO-500M-ft-F16.gguf"):
        load_llm("tipo-500m-ft", options={"backend": "llama.cpp"})


def test_the_llm_layer_opens_paths_and_hub_ids_without_the_registry(tiny, tmp_path):
    from t2i.llm import open_llm
    from t2i.llm.loading import check_options, open_hub, open_local

    llm = open_llm(tiny, options={"device": "cpu"})
    assert isinstance(llm, TransformersLLM) and llm.name == str(tiny)
    s = SamplingSettings(max_tokens=10, temperature=1.0, seed=4)
    assert llm.complete("tag: red", s).text == load_llm(str(tiny)).complete("tag: red", s).text  # one loader
    assert load_llm(str(tiny)).name == str(tiny)
    with pytest.raises(LLMError, match="^'my-model' is not a GGUF file; the llama.cpp backend takes .gguf files$"):
        open_local(tiny, {"backend": "llama.cpp"}, name="x", label="my-model")
    with pytest.raises(LLMError, match=r"^org/model has no known GGUF file; pass --llm-option gguf_file=NAME$"):
        open_hub("org/model", {"backend": "llama.cpp"}, name="org/model")
    with pytest.raises(LLMError, match="cannot read the model config of org/model"):  # offline, not cached
        open_llm("org/model")
    with pytest.raises(LLMError, match="^backend must be one of auto, transformers, llama.cpp, got 'vllm'$"):
        check_options({"backend": "vllm"})
    with pytest.raises(LLMError, match="^LLM option n_ctx must be a whole number from 16"):
        open_llm(tiny, options={"n_ctx": 8})
    assert check_options(None) == {} and check_options({"n_ctx": 512}) == {"n_ctx": 512}


def test_the_llm_layer_imports_no_registry():
    import subprocess
    import sys

    code = ("import sys, t2i.llm, t2i.llm.loading, t2i.presample, t2i.compose.conversation, t2i.licences; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['t2i', 'registry'], ['t2i', 'backends'], "
            "['t2i', 'world'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
