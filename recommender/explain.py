"""``kgrec explain``: why was an item recommended to a user, in graph paths and plain words.

Each kind of explanation is one Cypher file in ``cypher/explain/`` (pasteable into Neo4j
Browser with ``:param user => '…'`` / ``:param item => '…'``). The graph holds training
interactions only, so explanations never cite a held-out interaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kgrec.errors import NotFoundError
from kgrec.kg.store import GraphStore

#: explanation kind → the statement in cypher/explain/
QUERIES = {
    "shared_entity": "explain/shared_entity",
    "shared_feature": "explain/shared_feature",
    "persona_peers": "explain/persona_peers",
    "co_occurrence": "explain/co_occurrence",
}

RELATION_WORDS = {
    "DIRECTOR": "director", "STARRING": "cast member", "WRITER": "writer", "PRODUCER": "producer",
    "MUSIC_COMPOSER": "composer", "AUTHOR": "author", "LITERARY_GENRE": "genre", "GENRE": "genre",
    "PUBLISHER": "publisher", "SERIES": "series", "PREVIOUS_WORK": "predecessor",
    "SUBSEQUENT_WORK": "sequel", "COUNTRY": "country", "LANGUAGE": "language", "SUBJECT": "subject",
}


@dataclass
class Explanation:
    kind: str
    #: how informative the reason is, in [0, 1] for every kind, rounded to 3 digits
    score: float
    reason: str
    #: the ids along the path (for re-querying and for analysts)
    path: dict[str, Any] = field(default_factory=dict)
    #: 1 for the weakest reasons (a shared year): they rank after every other reason
    weak: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _title(text: Any, fallback: Any) -> str:
    return f"“{text}”" if text else f"item {fallback}"


def _vias(row: dict[str, Any]) -> str:
    """“Back to the Future” (and 2 more of yours)."""
    more = int(row.get("via_count") or 1) - 1
    return _title(row["via_title"], row["via_item"]) + (f" (and {more} more of yours)" if more else "")


def _score(row: dict[str, Any]) -> float:
    return round(float(row["score"]), 3)


def _entity_reasons(rows: list[dict[str, Any]], title: str) -> list[Explanation]:
    out = []
    for r in rows:
        word = RELATION_WORDS.get(r["relation"], r["relation"].lower().replace("_", " "))
        label = r["entity_label"] or r["entity"].rsplit("/", 1)[-1].replace("_", " ")
        reason = (f"You had {_vias(r)}; {title} shares its {word} {label} "
                  f"(DBpedia; {r['items_sharing']} items in the catalogue do).")
        out.append(Explanation("shared_entity", _score(r), reason, {
            "via_item": r["via_item"], "via_entity": r["via_entity"], "relation": r["relation"],
            "entity": r["entity"], "item_entity": r["item_entity"]}))
    return out


def _feature_reasons(rows: list[dict[str, Any]], title: str) -> list[Explanation]:
    return [Explanation("shared_feature", _score(r),
                        f"You had {_vias(r)}; {title} shares its {r['kind']} {r['value']} "
                        f"({r['items_sharing']} items in the catalogue do).",
                        {"via_item": r["via_item"], "feature": r["feature"]}, weak=int(r["weak"]))
            for r in rows]


def _persona_reasons(rows: list[dict[str, Any]], title: str) -> list[Explanation]:
    return [Explanation("persona_peers", _score(r),
                        f"{r['peers']} of the {r['persona_size']} users in your persona group "
                        f"“{r['persona_label']}” chose {title} ({r['group_pct']:g} % of the group "
                        f"against {r['overall_pct']:g} % of all users).",
                        {"persona": r["persona"], "peers": r["example_peers"]}) for r in rows]


def _cooccurrence_reasons(rows: list[dict[str, Any]], title: str) -> list[Explanation]:
    return [Explanation("co_occurrence", _score(r),
                        f"People who had {_title(r['via_title'], r['via_item'])} went on to {title} "
                        f"({r['weight']:g} time{'' if r['weight'] == 1 else 's'}).",
                        {"via_item": r["via_item"]}) for r in rows]


FORMATTERS = {"shared_entity": _entity_reasons, "shared_feature": _feature_reasons,
              "persona_peers": _persona_reasons, "co_occurrence": _cooccurrence_reasons}


def explain(store: GraphStore, user: str, item: str, n: int = 5,
            kinds: tuple[str, ...] = tuple(QUERIES)) -> list[Explanation]:
    """The ``n`` most informative explanation paths for (user, item), best first. Weak reasons
    (a shared year) come after all others; within each tier, at most two per kind come first
    unless fewer kinds have any (so one kind does not crowd out the others)."""
    found = store.run("explain/node_exists", {"user": user, "item": item}, read_only=True)
    row = found[0] if found else {}
    if row.get("user") is None:
        raise NotFoundError(f"unknown user {user!r}")
    if row.get("item") is None:
        raise NotFoundError(f"unknown item {item!r}")
    title = _title(row.get("title"), item)
    reasons = [e for kind in kinds
               for e in FORMATTERS[kind](store.run(QUERIES[kind], {"user": user, "item": item},
                                                   read_only=True), title)]
    strong = [e for e in reasons if not e.weak]
    weak = [e for e in reasons if e.weak]
    return (_diverse(strong) + _diverse(weak))[:n]


def _diverse(reasons: list[Explanation], per_kind: int = 2) -> list[Explanation]:
    """Best first, with the ``per_kind`` best of every kind ahead of the rest."""
    ordered = sorted(reasons, key=lambda e: -e.score)
    seen: dict[str, int] = {}
    head, tail = [], []
    for e in ordered:
        seen[e.kind] = seen.get(e.kind, 0) + 1
        (head if seen[e.kind] <= per_kind else tail).append(e)
    return head + tail
