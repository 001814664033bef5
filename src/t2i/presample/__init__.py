"""TIPO presampling: a small LLM expands a short prompt (tags and natural language) before generation.

Pure logic here (request building, parsing, categories, formats, weights); the model is any `t2i.llm`
backend the caller passes to `Presampler`.
"""

from t2i.presample.formats import FORMATS, apply_format
from t2i.presample.parse import TipoOutput, parse_output
from t2i.presample.request import LENGTHS, TASKS, Operation, build_request, format_aspect_ratio, plan_operations
from t2i.presample.runner import Expansion, PresampleError, Presampler, banned
from t2i.presample.tags import CATEGORIES, TagDatabase, categorize, category_of
from t2i.presample.targets import (
    REFERENCE_SETTINGS,
    TIPO_TARGETS,
    LengthTargets,
    sampling_for,
    targets_for,
    vocabulary_name_for,
)
from t2i.presample.vocabulary import Vocabulary
from t2i.presample.weights import WeightedTag, parse_weighted, render, split_prompt

__all__ = ["CATEGORIES", "FORMATS", "LENGTHS", "REFERENCE_SETTINGS", "TASKS", "TIPO_TARGETS",
           "Expansion", "LengthTargets", "Operation", "PresampleError", "Presampler", "TagDatabase", "TipoOutput",
           "Vocabulary", "WeightedTag", "apply_format", "banned", "build_request", "categorize", "category_of",
           "format_aspect_ratio", "parse_output", "parse_weighted", "plan_operations", "render", "sampling_for",
           "split_prompt", "targets_for", "vocabulary_name_for"]
