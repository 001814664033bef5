"""Running a TIPO model over a prompt: plan -> requests -> parse -> retry -> post-process -> format.

The requests are KGen's (tipo-kgen's `executor/tipo.py`, with z-tipo-extension's choice of the caption
step): the released models were trained on that format.  Differences on purpose, each with its reason in
docs/presample-fidelity.md: the user's tags are never dropped or cut and reach the image model as written
(only generated content is capped and ban-listed); the tag cap uses the tag maximum (KGen uses the sentence
maximum); sentences keep their stops; new content keeps the model's order (KGen shuffles it), so one seed
gives one expansion; a caption retry continues the caption; the LLM, tag database and ban list belong to
the `Presampler` object (no module state); any model failure falls back to the user's own prompt and says
so in `warnings`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from t2i.cancel import CancelToken, check
from t2i.llm.base import LLM, LLMError, SamplingSettings
from t2i.presample.formats import FORMATS, apply_format, wants_caption
from t2i.presample.parse import TipoOutput, parse_output
from t2i.presample.request import LENGTHS, META_KEYS, Operation, build_request, plan_operations
from t2i.presample.tags import CATEGORIES, TagDatabase, categorize, category_of, normalise
from t2i.presample.targets import REFERENCE_SETTINGS, TIPO_TARGETS, LengthTargets, sentences
from t2i.presample.vocabulary import Vocabulary
from t2i.presample.weights import WeightedTag, parse_weighted, split_prompt

MAX_PROMPT_CHARS = 10_000


class PresampleError(ValueError):
    """The input cannot be presampled (e.g. too long); the message says why."""


@dataclass(frozen=True)
class Expansion:
    """The result: `prompt` is what the image model gets."""

    prompt: str
    original: str
    tags: list[str]  # user's tags as written, then the new ones
    new_tags: list[str]
    extended: str  # user's natural language plus added sentences
    generated: str  # a caption the model wrote afresh
    categories: dict[str, list[str]]
    model: str
    seed: int
    fallback: bool = False
    warnings: list[str] = field(default_factory=list)
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    user: list[WeightedTag]
    user_nl: str
    user_end: str = ""  # the model's words finishing the user's last sentence (when it had no full stop)
    new: list[str] = field(default_factory=list)
    new_other: dict[str, list[str]] = field(default_factory=dict)  # new tags of the other categories
    added_nl: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)  # generated tags and sentences the vocabulary rejected
    disagreeing: set[str] = field(default_factory=set)  # caption sentences that contradict the tags

    def plain_user(self) -> list[str]:
        return [t.text for t in self.user]

    def extended(self) -> str:
        return " ".join(s for s in [self.user_nl.strip() + self.user_end, *self.added_nl] if s)


def _key(tag: str) -> str:
    return normalise(tag.lower())


MAX_TAG_CHARS = 100
MAX_SENTENCE_CHARS = 600


def plausible(text: str, cap: int) -> bool:
    """Generated content we take: printable, not too long, some letters or digits, no special tokens."""
    return (0 < len(text) <= cap and text.isprintable() and any(c.isalnum() for c in text)
            and "<|" not in text and "|>" not in text)


def banned(text: str, ban: Sequence[str]) -> bool:
    """A ban entry removes generated content it is a substring of, or that it matches as a regex."""
    low = text.lower()
    for b in ban:
        if b.lower() in low:
            return True
        try:
            if re.search(b, text, flags=re.IGNORECASE):
                return True
        except re.error:
            pass  # not a valid regex: substring only
    return False


class Presampler:
    """A TIPO runner around an LLM you own.  One object per model; thread-safe as long as the LLM is."""

    def __init__(self, llm: LLM, targets: LengthTargets = TIPO_TARGETS, db: TagDatabase | None = None,
                 ban: Sequence[str] = (), settings: SamplingSettings = REFERENCE_SETTINGS, max_retries: int = 10,
                 max_same: int = 5, vocabulary: Vocabulary | None = None) -> None:
        self.llm = llm
        self.targets = targets
        self.db = db or TagDatabase()
        self.ban = tuple(ban)
        self.settings = settings
        self.max_retries = max_retries
        self.max_same = max_same
        self.vocabulary = vocabulary  # generated content outside it is dropped (t2i.presample.vocabulary)

    def with_settings(self, settings: SamplingSettings) -> Presampler:
        """The same presampler (LLM, targets, tags, ban list, vocabulary) sampling with `settings`."""
        return Presampler(self.llm, self.targets, self.db, self.ban, settings, self.max_retries, self.max_same,
                          self.vocabulary)

    # ------------------------------------------------------------------ public

    def expand(self, prompt: str = "", *, tags: str | Sequence[str] | None = None, nl: str | None = None,
               seed: int = 0, target: str | None = None, nl_target: str | None = None, want_nl: bool = True,
               width: int | None = None, height: int | None = None, fmt: str | None = None,
               on_call: Callable[[str, str], None] | None = None, cancel: CancelToken | None = None) -> Expansion:
        """Expand `prompt` (split into tags and natural language by `split_prompt`), or the given `tags`
        and `nl`.  `on_call(request, answer)` sees every model call.  Never raises for a model failure:
        the result then carries the user's own prompt, `fallback=True` and a warning.  `cancel`, once set
        (from any thread), raises `Cancelled` before the next model call or generated token."""
        warnings: list[str] = []
        prompt = self._clean(prompt, warnings)
        nl = self._clean(nl or "", warnings)
        if tags is None:
            user, split_nl = split_prompt(prompt)
            nl = ", ".join(x for x in (split_nl, nl) if x)
        else:
            items = tags if not isinstance(tags, str) else [tags]
            user = [t for item in items for t in parse_weighted(self._clean(item, warnings))]
        for name, value in (("target", target), ("nl_target", nl_target)):
            if value is not None and value not in (*LENGTHS, "auto"):
                raise PresampleError(f"{name} must be one of {', '.join(LENGTHS)} or auto, got {value!r}")
        try:
            target = self.targets.pick(target, seed)
            nl_target = self.targets.pick(nl_target, seed) if nl_target else target
        except ValueError as e:
            raise PresampleError(str(e)) from e
        fmt = fmt or self.targets.default_format
        if fmt not in FORMATS and "<|" not in fmt:
            raise PresampleError(f"unknown format {fmt!r} (presets: {', '.join(FORMATS)})")
        original = prompt if tags is None else ", ".join(t.written() for t in user) + (f", {nl}" if nl else "")
        state = _State(user, nl)
        aspect = f"{width / height:.1f}" if width and height else None
        calls = 0
        try:
            has_nl = bool(nl.strip())
            # KGen plans on the tag line: quality, meta and rating tags alone are no tags to continue
            has_tags = bool(self._tag_line(state, categorize(state.plain_user(), self.db)))
            for op in plan_operations(has_tags, has_nl, target, nl_target, want_nl and wants_caption(fmt, has_nl)):
                calls += self._run(op, state, seed, aspect, warnings, on_call, cancel)
        except LLMError as e:
            warnings.append(f"presampling failed ({e}); the prompt is used as written")
            return self._fallback(original, user, nl, seed, warnings, calls)
        if not state.new and not any(state.new_other.values()) and not state.added_nl and not state.generated:
            warnings += [*self._dropped_note(state), "the model added nothing usable; the prompt is used as written"]
            return self._fallback(original, user, nl, seed, warnings, calls)
        return self._result(original, state, seed, fmt, warnings, calls)

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _clean(text: str, warnings: list[str]) -> str:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
            warnings.append("the prompt was bytes; decoded as UTF-8 with bad bytes replaced")
        if not isinstance(text, str):
            raise PresampleError(f"a prompt must be text, got {type(text).__name__}")
        if len(text) > MAX_PROMPT_CHARS:
            raise PresampleError(f"the prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}")
        fixed = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # argv's undecodable bytes
        if fixed != text:
            warnings.append("the prompt held bytes that are not UTF-8; they were replaced with U+FFFD")
        return fixed

    def _request(self, op: Operation, state: _State, aspect: str | None) -> str:
        """As KGen builds it: the meta lines hold the user's tags only (new artist / character / copyright
        tags the model wrote go to the result, not back to the model), the tag line special then general."""
        cats = categorize(state.plain_user(), self.db)
        return build_request(tags=self._tag_line(state, cats), nl=self._nl_given(op, state),
                             meta={k: cats[k] for k in META_KEYS}, aspect_ratio=aspect, target=op.target,
                             task=op.task, expand=op.expand)

    @staticmethod
    def _tag_line(state: _State, cats: dict[str, list[str]]) -> list[str]:
        """The `tag:` field: special tags (the user's, then new ones), then general (the user's, then new)."""
        return [*cats["special"], *state.new_other.get("special", []), *cats["general"], *state.new]

    @staticmethod
    def _nl_given(op: Operation, state: _State) -> str:
        """The natural language a request carries (KGen: the extended text, else the generated one; in
        `short:` when the task names short, else in `long:`)."""
        if not op.task:
            return ""
        return state.extended() if "short" in op.task else (state.extended() or " ".join(state.generated))

    @staticmethod
    def _ends_in_nl(op: Operation, given: str, n_tags: int) -> bool:
        """Whether an expanding request ends in its natural-language field, so the model continues that
        text (NL only: `long: ...` then the model writes on, then `tag:`)."""
        if not op.expand or not op.task or not given.strip():
            return False
        order = op.task.split("_to_")
        nl_key = "short" if "short" in order else "long"
        filled = [k for k in order if (k == "tag" and n_tags) or k == nl_key]
        return filled[-1] == nl_key

    def _criteria(self, op: Operation, state: _State) -> bool:
        if op.writes == "tag":
            tags = self._tag_line(state, categorize(state.plain_user(), self.db))
            return len(tags) >= self.targets.min_tags[op.target]
        text = " ".join(state.generated) if op.writes == "long" and not op.expand else state.extended()
        return len(sentences(text)) >= self.targets.min_sentences[op.target]

    def _run(self, op: Operation, state: _State, seed: int, aspect: str | None, warnings: list[str],
             on_call: Callable[[str, str], None] | None, cancel: CancelToken | None = None) -> int:
        """One operation with its retry loop; returns the number of model calls."""
        seen: set[str] = set()
        same = 0  # outputs in a row that repeat an earlier one (KGen's generate_with_retry)
        calls = 0
        # the backend checks it per token; passed only when given (an LLM without the keyword works without one)
        given = {"cancel": cancel} if cancel is not None else {}
        for i in range(self.max_retries + 1):
            check(cancel, f"presample call {i + 1} ({op.writes})")
            request = self._request(op, state, aspect)
            answer = self.llm.complete(request, replace(self.settings, seed=seed + i), **given).text
            calls += 1
            if on_call is not None:
                on_call(request, answer)
            self._merge(op, state, parse_output(request + answer if op.expand else request + " " + answer,
                                                self.db))
            if self._criteria(op, state):
                break
            same = same + 1 if request + answer in seen else 0
            seen.add(request + answer)
            if same >= self.max_same:
                break
        return calls

    def _merge(self, op: Operation, state: _State, out: TipoOutput) -> None:
        """Post-processing: user content first and whole; new content de-duplicated, ban-listed, capped."""
        given_nl = self._nl_given(op, state)  # what the request carried, before this merge changes the state
        user = categorize(state.plain_user(), self.db)
        continued = self._ends_in_nl(op, given_nl, len(self._tag_line(state, user)))
        have = {_key(t) for t in [*state.plain_user(), *state.new]}
        have |= {_key(t) for items in state.new_other.values() for t in items}
        cap = self.targets.max_tags[op.target]
        n_general = len(user["general"]) + len(state.new)  # KGen caps general tags only
        for cat in CATEGORIES:
            for tag in out.categories.get(cat, []):
                if _key(tag) in have or banned(tag, self.ban) or cat in ("meta", "quality", "rating") or \
                        not plausible(tag, MAX_TAG_CHARS):
                    continue  # meta lines the model writes are not tags the user asked for
                general = cat == "general"
                if (general and cap is not None and n_general >= cap) or not self._known("tag", tag, state):
                    continue  # over the cap (checked first, so a capped tag is not counted as dropped)
                if general:
                    state.new.append(tag)
                    n_general += 1
                else:
                    state.new_other.setdefault(cat, []).append(tag)
                have.add(_key(tag))
        nl_key = "short" if op.task and "short" in op.task else "long"
        text = out.extended if nl_key == "short" else out.generated
        if not op.expand and op.writes == "long":  # a fresh caption (a retry continues it: it comes whole again)
            given = {s.rstrip(".").lower() for s in sentences(state.extended())}
            fresh = []
            for s in sentences(self._agreeing(out.generated, state)):
                if s.rstrip(".").lower() not in given and not banned(s, self.ban) and \
                        plausible(s, MAX_SENTENCE_CHARS) and self._known("sentence", s, state):
                    fresh.append(s)
                    given.add(s.rstrip(".").lower())
            limit = self.targets.max_sentences[op.target]
            if fresh:
                state.generated = fresh[:limit] if limit is not None else fresh
        elif continued:  # the model wrote on from the text it was given (KGen keeps that as extended text)
            rest = text[len(given_nl):] if text.startswith(given_nl) else text
            if text.startswith(given_nl) and not given_nl.rstrip().endswith((".", "!", "?")):
                rest = self._finish_last_sentence(state, rest)
            self._add_sentences(op, state, rest)
        elif op.task and not given_nl.strip() and (op.expand or nl_key == "short"):
            self._add_sentences(op, state, text)  # no text given: what the model wrote there is new

    def _finish_last_sentence(self, state: _State, rest: str) -> str:
        """A given text without a final stop is finished first, in place (KGen replaces its last sentence
        with the finished one); returns what follows."""
        end = re.match(r"[^.!?]*[.!?]+[\"')\]]*", rest)
        head = end.group(0) if end else rest
        words = (" " if head[:1].isspace() else "") + " ".join(head.split())
        if words.strip() and any(c.isalnum() for c in words):  # words, not only a stop: the sentence must pass
            last = state.added_nl[-1] if state.added_nl else state.user_nl.strip() + state.user_end
            finished = ((sentences(last) or [""])[-1] + words).strip()
            ok = not banned(words, self.ban) and plausible(finished, MAX_SENTENCE_CHARS) and \
                self._known("sentence", finished, state) and bool(self._agreeing(finished, state))
        else:
            ok = bool(words.strip()) and words.isprintable() and "<|" not in words
        if ok and state.added_nl:
            state.added_nl[-1] += words
        elif ok:
            state.user_end += words
        return rest[len(head):]

    def _add_sentences(self, op: Operation, state: _State, text: str) -> None:
        """New sentences after the extended text: de-duplicated, ban-listed, in the vocabulary, agreeing with
        the tags, and capped so that the extended text holds at most the target's maximum (KGen counts the
        given sentences too; they are never cut)."""
        given = {s.rstrip(".").lower() for s in sentences(state.extended())}
        limit = self.targets.max_sentences[op.target]
        n = len(given)
        for s in sentences(self._agreeing(text, state)):
            if s.rstrip(".").lower() not in given and not banned(s, self.ban) and \
                    plausible(s, MAX_SENTENCE_CHARS) and (limit is None or n < limit) and \
                    self._known("sentence", s, state):
                state.added_nl.append(s)
                given.add(s.rstrip(".").lower())
                n += 1

    def _known(self, kind: Literal["tag", "sentence"], text: str, state: _State) -> bool:
        """Whether generated `text` is in the model's vocabulary; what is not is remembered in `dropped`."""
        if self.vocabulary is None or getattr(self.vocabulary, kind)(text):
            return True
        state.dropped.add(text.strip().lower())
        return False

    def _agreeing(self, text: str, state: _State) -> str:
        """`text` without the generated sentences that disagree with the tags (remembered in `disagreeing`);
        the user's own sentences are never checked."""
        agrees = self.vocabulary.agrees if self.vocabulary is not None else None
        if agrees is None or not text:
            return text
        tags = [*state.plain_user(), *state.new]
        user = {u.rstrip(".").lower() for u in sentences(state.user_nl)}
        kept = []
        for s in sentences(text):
            if s.rstrip(".").lower() in user or agrees(tags, s):
                kept.append(s)
            else:
                state.disagreeing.add(s.strip().lower())
        return " ".join(kept)

    def _dropped_note(self, state: _State) -> list[str]:
        notes = []
        if state.dropped:
            notes.append(f"dropped {len(state.dropped)} generated tag(s) or sentence(s) outside the "
                         f"{self.vocabulary.name} vocabulary")
        if state.disagreeing:
            notes.append(f"dropped {len(state.disagreeing)} generated caption sentence(s) that disagree with the tags")
        return notes

    # ------------------------------------------------------------------ results

    def _fallback(self, original: str, user: list[WeightedTag], nl: str, seed: int, warnings: list[str],
                  calls: int) -> Expansion:
        written = [t.written() for t in user]
        return Expansion(original, original, written, [], nl, "", categorize([t.text for t in user], self.db),
                         self.llm.name, seed, True, warnings, calls)

    def _result(self, original: str, state: _State, seed: int, fmt: str, warnings: list[str],
                calls: int) -> Expansion:
        cats: dict[str, list[str]] = {c: [] for c in CATEGORIES}
        for t in state.user:  # the user's tags reach the image model as written (docs/presample-fidelity.md)
            cats[category_of(t.text, self.db)].append(t.written())
        cats["general"] = cats["general"] + state.new
        for cat, items in state.new_other.items():  # new special tags join the user's at the front
            cats[cat] = cats[cat] + items
        extended, generated = state.extended(), " ".join(state.generated)
        warnings += self._dropped_note(state)
        prompt = apply_format(fmt, {**cats, "extended": extended, "generated": generated})
        low = prompt.lower()
        missing = [t.written() for t in state.user if t.text.lower() not in low]
        if missing:  # a format without tag places (e.g. "NL only") must not lose the user's tags
            prompt = ", ".join([*missing, prompt])
            warnings.append(f"the format has no place for {', '.join(missing)}; kept in front of the prompt")
        new = [*state.new_other.get("special", []), *state.new]
        tags = [t.written() for t in state.user] + new + [t for c, v in state.new_other.items() if c != "special"
                                                          for t in v]
        return Expansion(prompt, original, tags, new, extended, generated, cats, self.llm.name, seed,
                         False, warnings, calls)
