"""The backend contract (`t2i.backends.base`) as a set of tests any backend runs.

A backend's test module subclasses `BackendContract` and gives it a class-scoped fixture `case` that returns a
`ContractCase` (a tiny loaded backend and what the tests need around it); every test below then runs on it:

    class TestMineContract(BackendContract):
        @pytest.fixture(scope="class")
        def case(self, tmp_path_factory) -> ContractCase:
            registry = default_registry()
            _, backend = registry.load(str(folder), {"device": "cpu"})
            request = GenerationRequest("a red circle", model=str(folder), seed=1, steps=2, guidance=2.0,
                                        width=32, height=32, negative_prompt="")
            return ContractCase(registry, backend, request, load_time=("device", "cuda:7"))

Keep the case tiny (a few steps at the smallest size the model takes): every test draws at most a few images.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from t2i.backends.base import Backend
from t2i.backends.options import OptionSpec, file_options
from t2i.cancel import Cancelled, CancelToken
from t2i.compose import Canvas
from t2i.generate import generate, save_result
from t2i.outputs import OutputWriter
from t2i.registry import ModelRegistry
from t2i.types import ComposeOptions, GenerationRequest, GenerationResult, RequestError

# a value of the wrong type for an option of each type
WRONG_TYPE: dict[str, Any] = {"int": "abc", "float": "abc", "bool": "maybe", "choice": 1.5, "str": 1.5}
WAIT_S = 120  # how long a thread waits for the other (far more than a tiny model's step)


@dataclass
class ContractCase:
    """A tiny loaded backend and what the contract tests need around it."""

    registry: ModelRegistry  # resolves request.model (t2i.generate.generate runs through it)
    backend: Backend
    request: GenerationRequest  # resolved (seed, steps >= 2, guidance, width, height set), n_images 1
    load_time: tuple[str, Any]  # a load-time option and a valid value other than the one the backend has


def arrays(result: GenerationResult) -> list[np.ndarray]:
    return [np.asarray(im.convert("RGB")) for im in result.images]


def canvas_program() -> str:
    c = Canvas()
    c.set_global_description("shapes on a gray background", [], "gray background", "gray")
    c.add_local_description("on the left", "no offset", "a small square area", 2.0, "a red circle", [], "red circle",
                            "", "", "", "red")
    return c.to_program()


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


class BackendContract:
    """The contract's tests; a subclass supplies the class-scoped fixture `case`."""

    @pytest.fixture(scope="class")
    def pair(self, case: ContractCase) -> tuple[GenerationResult, list[tuple[int, int]]]:
        """Two images drawn in one call, and the (done, total) pairs its callback got."""
        seen: list[tuple[int, int]] = []
        result = case.backend.generate(case.request.with_(n_images=2), lambda done, total: seen.append((done, total)))
        return result, seen

    # ------------------------------------------------------------------ what a backend is

    def test_it_is_a_backend_with_a_schema_and_boolean_capabilities(self, case: ContractCase) -> None:
        backend = case.backend
        assert isinstance(backend, Backend)
        schema = type(backend).schema
        assert schema and all(isinstance(spec, OptionSpec) and spec.name == name for name, spec in schema.items())
        assert type(backend.supports_regions) is bool and type(backend.supports_variations) is bool
        if backend.supports_variations:
            assert "variation_image" in file_options(schema)

    # ------------------------------------------------------------------ seeds

    def test_the_same_seed_gives_pixel_identical_images(self, case: ContractCase, pair) -> None:
        first, _ = pair
        again = case.backend.generate(case.request.with_(n_images=2))
        seed = case.request.seed
        assert first.seeds == again.seeds == [seed, seed + 1]
        assert all(np.array_equal(a, b) for a, b in zip(arrays(first), arrays(again), strict=True))
        size = (case.request.width, case.request.height)
        assert [im.size for im in first.images] == [size, size]
        assert (first.request.seed, first.request.width, first.request.height) == (seed, *size)

    def test_different_seeds_give_different_images(self, case: ContractCase, pair) -> None:
        first, _ = pair
        a, b = arrays(first)
        assert not np.array_equal(a, b)
        other = case.backend.generate(case.request.with_(seed=case.request.seed + 1000))
        assert not np.array_equal(arrays(other)[0], a)

    def test_image_k_is_drawn_from_seed_plus_k(self, case: ContractCase, pair) -> None:
        first, _ = pair
        alone = case.backend.generate(case.request.with_(seed=case.request.seed + 1))
        assert alone.seeds == [case.request.seed + 1]
        assert np.array_equal(arrays(alone)[0], arrays(first)[1])

    # ------------------------------------------------------------------ progress

    def test_the_callback_is_called_once_per_step(self, case: ContractCase, pair) -> None:
        steps = case.request.steps
        seen: list[tuple[int, int]] = []
        case.backend.generate(case.request, lambda done, total: seen.append((done, total)))
        assert seen == [(i, steps) for i in range(1, steps + 1)]
        _, two = pair  # two images: the count goes to 2 x steps, one image-step or one batch-step at a time
        done = [d for d, _ in two]
        assert all(total == 2 * steps for _, total in two) and done[-1] == 2 * steps
        assert all(a < b for a, b in zip(done, done[1:], strict=False)) and len(two) >= steps

    def test_a_callback_returning_false_cancels_at_that_step(self, case: ContractCase) -> None:
        seen: list[int] = []
        with pytest.raises(Cancelled):
            case.backend.generate(case.request.with_(n_images=2), lambda done, total: seen.append(done) or False)
        assert len(seen) == 1

    # ------------------------------------------------------------------ cancel

    def test_a_token_cancelled_before_the_start_draws_and_writes_nothing(self, case: ContractCase,
                                                                          tmp_path: Path) -> None:
        token = CancelToken()
        token.cancel("before the start")
        seen: list[int] = []
        with pytest.raises(Cancelled, match="before the start"):
            case.backend.generate(case.request, lambda done, total: seen.append(done), token)
        with pytest.raises(Cancelled):
            save_result(generate(case.request, case.registry, backend=case.backend,
                                 callback=lambda done, total: seen.append(done), cancel=token),
                        OutputWriter(out=tmp_path / "out"))
        assert seen == [] and pngs(tmp_path) == []

    def test_a_token_cancelled_from_another_thread_stops_within_one_step(self, case: ContractCase,
                                                                         tmp_path: Path) -> None:
        token = CancelToken()
        at_first_step, cancelled = threading.Event(), threading.Event()
        seen: list[int] = []
        outcome: dict[str, Any] = {}

        def callback(done: int, total: int) -> None:  # holds the first step until the token is set
            seen.append(done)
            if len(seen) == 1:
                at_first_step.set()
                cancelled.wait(WAIT_S)

        def draw_and_save() -> None:
            try:
                result = generate(case.request.with_(n_images=2), case.registry, backend=case.backend,
                                  callback=callback, cancel=token)
                outcome["paths"] = save_result(result, OutputWriter(out=tmp_path / "out"))
            except Exception as e:  # noqa: BLE001 - handed to the test's thread
                outcome["error"] = e

        worker = threading.Thread(target=draw_and_save)
        worker.start()
        assert at_first_step.wait(WAIT_S)
        token.cancel("from the test's thread")
        cancelled.set()
        worker.join(WAIT_S)
        assert not worker.is_alive()
        assert isinstance(outcome.get("error"), Cancelled), outcome
        assert len(seen) == 1  # the step running when the token was set was the last
        assert pngs(tmp_path) == []

    # ------------------------------------------------------------------ options

    def _refused(self, case: ContractCase, options: dict[str, Any], match: str,
                 request: GenerationRequest | None = None) -> None:
        """`request` (default the case's) with `options` is a RequestError matching `match` before any step."""
        seen: list[int] = []
        request = (request or case.request).with_(model_options=options)
        with pytest.raises(RequestError, match=match):
            case.backend.generate(request, lambda done, total: seen.append(done))
        assert seen == []

    def test_an_unknown_option_is_refused(self, case: ContractCase) -> None:
        self._refused(case, {"no_such_option": 1}, r"unknown .*options \['no_such_option'\]")

    def test_a_value_of_the_wrong_type_is_refused(self, case: ContractCase) -> None:
        for name, spec in type(case.backend).schema.items():
            self._refused(case, {name: WRONG_TYPE[spec.type]}, rf"option {name} must be ")

    def test_a_number_out_of_range_is_refused(self, case: ContractCase) -> None:
        numbers = [spec for spec in type(case.backend).schema.values() if spec.numeric]
        if not numbers:
            pytest.skip("the backend has no numeric option")
        for spec in numbers:
            value = spec.hi + 1 if spec.hi is not None else spec.lo - 1
            assert value not in spec.also
            self._refused(case, {spec.name: value}, rf"option {spec.name} must be in ")

    def test_a_load_time_option_cannot_change_per_call(self, case: ContractCase) -> None:
        name, value = case.load_time
        assert type(case.backend).schema[name].when == "load"
        self._refused(case, {name: value}, rf"option {name} is read when the model is loaded")

    # ------------------------------------------------------------------ capabilities

    def test_a_canvas_is_drawn_only_by_a_backend_with_regions(self, case: ContractCase) -> None:
        request = case.request.with_(compose=ComposeOptions(enabled=True, program=canvas_program()))
        if case.backend.supports_regions:
            assert len(case.backend.generate(request).images) == 1
            return
        self._refused(case, {}, "no regional renderer", request)
        flattened = generate(request, case.registry, backend=case.backend)
        assert len(flattened.images) == 1 and any("flattened" in w for w in flattened.warnings)

    def test_variations_follow_the_capability(self, case: ContractCase, tmp_path: Path) -> None:
        image = tmp_path / "vary.png"
        Image.new("RGB", (40, 40), (250, 10, 10)).save(image)
        varied = case.request.with_(model_options={"variation_image": str(image)})
        if not case.backend.supports_variations:
            self._refused(case, dict(varied.model_options), "variation")
            return
        plain = case.backend.generate(case.request)
        assert not np.array_equal(arrays(case.backend.generate(varied))[0], arrays(plain)[0])
