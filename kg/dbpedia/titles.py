"""Title handling for DBpedia label matching: normalisation, label variants, IRI parsing."""

from __future__ import annotations

import difflib
import re
import unicodedata
from urllib.parse import unquote

_ARTICLES = ("the", "a", "an", "la", "le", "les", "l'", "el", "los", "las", "il", "lo", "gli", "i",
             "der", "die", "das", "den", "det", "het", "een", "ein", "eine", "o", "os", "as", "un",
             "une", "uno", "una")
_TRAILING_ARTICLE = re.compile(r"^(?P<body>.+?),\s*(?P<art>" + "|".join(re.escape(a) for a in _ARTICLES)
                               + r")$", re.IGNORECASE)
_PAREN = re.compile(r"^(?P<main>.*?)\s*\((?P<alt>[^()]*)\)\s*$")
_AKA = re.compile(r"^(?:a\.k\.a\.|aka)\s+", re.IGNORECASE)
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")
_IRI_PAREN = re.compile(r"_\((?P<inner>[^()]*)\)$")
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_PUNCT = re.compile(r"[^\w\s]")


def move_article(title: str) -> str:
    """``"Matrix, The"`` → ``"The Matrix"``; ``"Homme, L'"`` → ``"L'Homme"``; else unchanged."""
    m = _TRAILING_ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{m.group('body').strip()}"


def normalise_title(title: str) -> str:
    """Compare form: article moved to the front, accents and punctuation dropped, casefolded."""
    t = move_article(title)
    t = unicodedata.normalize("NFKD", t)
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = t.replace("&", " and ")
    t = _PUNCT.sub(" ", t.casefold())
    return " ".join(t.split())


def title_parts(title: str) -> list[str]:
    """The main title and alternates: ``"Seven (a.k.a. Se7en)"`` → ``["Seven", "Se7en"]``."""
    t = _YEAR_IN_TITLE.sub("", title.strip())
    parts: list[str] = []
    while True:
        m = _PAREN.match(t)
        if not m or not m.group("main"):
            break
        alt = _AKA.sub("", m.group("alt").strip())
        if alt:
            parts.append(alt)
        t = m.group("main")
    return [t.strip()] + parts[::-1]


def label_variants(title: str) -> list[tuple[str, bool]]:
    """Exact label strings to look up, each with whether it is a weaker (partial) variant."""
    out: dict[str, bool] = {}
    for part in title_parts(title):
        for v in (move_article(part), part):
            if v and v not in out:
                out[v] = False
        main = move_article(part)
        if ": " in main:
            head = main.split(": ", 1)[0].strip()
            if len(head) >= 4 and head not in out:
                out[head] = True
    return list(out.items())


def iri_label(resource: str) -> str:
    """A readable label from a DBpedia IRI's local name, without the ``_(…)`` suffix."""
    local = unquote(resource.rstrip("/").rsplit("/", 1)[-1])
    local = _IRI_PAREN.sub("", local)
    return local.replace("_", " ").strip() or resource


def iri_year(resource: str) -> int | None:
    local = unquote(resource.rsplit("/", 1)[-1])
    m = _IRI_PAREN.search(local)
    if not m:
        return None
    y = _YEAR.search(m.group("inner"))
    return int(y.group(1)) if y else None


def similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
