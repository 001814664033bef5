"""Tag categories as TIPO uses them: special, characters, copyrights, artist, meta, quality, rating, general.

Special, quality and rating lists are built in (they are small and fixed) and hold exactly KGen's
(`kgen.metainfo`): a tag that KGen treats as general stays general here, since the released TIPO models were
trained on KGen's split.  The large artist / character / copyright / meta databases come from the
`tipo-kgen` package's data files when it is installed, or from files the user names (one tag per line).
A `TagDatabase` is an object the caller owns, never module state.

Lookup follows KGen's `seperate_tags`: case-sensitive (the lists are lowercase, so `Hatsune Miku` is
general), the tag as written first, then with every `_` as a space; the tag reaches the model in the form
that matched, and a general tag of 4+ characters has its `_` written as spaces (`long_hair` -> `long hair`,
while `^_^` survives).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES = ("special", "characters", "copyrights", "artist", "meta", "quality", "rating", "general")

SPECIAL = frozenset(
    [f"{n}{s}" for n in ("1", "2", "3", "4", "5", "6+") for s in ("girl" if n == "1" else "girls",)]
    + [f"{n}{s}" for n in ("1", "2", "3", "4", "5", "6+") for s in ("boy" if n == "1" else "boys",)]
    + [f"{n}{s}" for n in ("1", "2", "3", "4", "5", "6+") for s in ("other" if n == "1" else "others",)]
    + ["multiple girls", "multiple boys", "multiple others", "male focus"]
)
QUALITY = frozenset(
    ["masterpiece", "best quality", "great quality", "good quality", "normal quality", "low quality",
     "worse quality", "very aesthetic", "aesthetic", "displeasing", "very displeasing",
     "newest", "recent", "mid", "early", "old",
     "score_9", "score_8_up", "score_7_up", "score_6_up", "score_5_up", "score_4_up",
     "source_anime", "source_cartoon", "source_furry", "source_pony"]
)
RATING = frozenset(["safe", "general", "sfw", "sensitive", "nsfw", "explicit"])
# used when tipo-kgen's meta.txt is absent; every entry is in that file, so nothing is meta here that KGen
# would call general
META = frozenset(
    ["highres", "absurdres", "incredibly absurdres", "lowres", "wide image", "tall image",
     "commentary", "commentary request", "english commentary", "chinese commentary",
     "korean commentary", "symbol-only commentary", "partial commentary", "translated", "translation request",
     "partially translated", "check translation", "hard-translated", "bad id", "bad pixiv id", "bad twitter id",
     "bad link", "duplicate", "jpeg artifacts", "md5 mismatch", "official art", "scan", "third-party edit",
     "animated", "video", "sound", "game cg", "revision", "photoshop (medium)", "artist request",
     "character request", "copyright request", "source request", "paid reward available"]
)
_DB_FILES = {"artist": "artist.txt", "characters": "characters.txt", "copyrights": "copyrights.txt",
             "meta": "meta.txt"}


def _read_list(path: Path) -> frozenset[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        return frozenset(line.strip() for line in f if line.strip())  # as listed: lookup is case-sensitive


@dataclass(frozen=True)
class TagDatabase:
    """Known tags per category, as listed (KGen's are lowercase with spaces).  Empty sets mean 'not known':
    those tags are general."""

    artist: frozenset[str] = frozenset()
    characters: frozenset[str] = frozenset()
    copyrights: frozenset[str] = frozenset()
    meta: frozenset[str] = META
    extra: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_files(cls, **paths: str | Path) -> TagDatabase:
        """`TagDatabase.from_files(artist=..., characters=..., copyrights=..., meta=...)`: one tag per line."""
        unknown = sorted(set(paths) - set(_DB_FILES))
        if unknown:
            raise ValueError(f"unknown tag list(s) {', '.join(unknown)} (known: {', '.join(_DB_FILES)})")
        lists = {}
        for name, p in paths.items():
            path = Path(p).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"tag list {name}: {path} does not exist")
            lists[name] = _read_list(path)
        if "meta" in lists:
            lists["meta"] = lists["meta"] | META
        return cls(**lists)

    @classmethod
    def from_kgen(cls) -> TagDatabase | None:
        """The lists shipped in the `tipo-kgen` wheel (package `kgen`, folder `tag-list`), or None."""
        import importlib.util

        spec = importlib.util.find_spec("kgen")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations))) / "tag-list"
        found = {k: folder / f for k, f in _DB_FILES.items() if (folder / f).is_file()}
        return cls.from_files(**found) if found else None

    @classmethod
    def default(cls) -> TagDatabase:
        """tipo-kgen's lists when installed, else the built-in meta list only."""
        return cls.from_kgen() or cls()

    def lookup(self, category: str) -> frozenset[str]:
        return {"special": SPECIAL, "quality": QUALITY, "rating": RATING, "meta": self.meta, "artist": self.artist,
                "characters": self.characters, "copyrights": self.copyrights}.get(category, frozenset())


# KGen looks in its data files first (in directory order, which varies by file system), then special, quality,
# rating; its files share no tag with these lists or with each other, so a fixed order changes nothing for them
_ORDER = ("special", "quality", "rating", "meta", "characters", "copyrights", "artist")


def normalise(tag: str) -> str:
    """A general tag as KGen sends it: `_` -> space for tags of 4+ characters (so `^_^` survives).  No
    lowercasing: KGen keeps the case the user wrote."""
    t = tag.strip()
    return t.replace("_", " ") if len(t) >= 4 else t


def classify(tag: str, db: TagDatabase) -> tuple[str, str]:
    """(category, the tag as the model is given it) for one plain tag, as KGen's `seperate_tags` does:
    per category the tag as written, then with every `_` as a space (case-sensitive); else general, in
    `normalise`'s form."""
    t = tag.strip()
    spaced = t.replace("_", " ")
    for cat in _ORDER:
        known = db.lookup(cat)
        if t in known:
            return cat, t
        if spaced in known:
            return cat, spaced
    return "general", normalise(t)


def category_of(tag: str, db: TagDatabase) -> str:
    """The category of one plain tag (see `classify`)."""
    return classify(tag, db)[0]


def categorize(tags: Iterable[str], db: TagDatabase | None = None) -> dict[str, list[str]]:
    """Plain tags -> {category: [tags in input order, in the form the model is given]}; every category key
    is present."""
    db = db or TagDatabase()
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for t in tags:
        if t.strip():
            cat, form = classify(t, db)
            out[cat].append(form)
    return out
