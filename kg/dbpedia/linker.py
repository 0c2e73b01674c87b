"""The SPARQL side of DBpedia linking: vocabulary, candidate lookup by label, candidate
scoring, people/organisation matching and fact fetching (see :mod:`kgrec.kg.dbpedia.linking`
for the strategies and the graph writes)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kgrec.errors import ConfigError, SparqlError
from kgrec.kg import schema
from kgrec.kg.dbpedia.sparql import SparqlClient, iri, literal, template
from kgrec.kg.dbpedia.titles import (
    iri_label,
    iri_year,
    label_variants,
    normalise_title,
    similarity,
    title_parts,
)

DBO = "http://dbpedia.org/ontology/"
DCT_SUBJECT = "http://purl.org/dc/terms/subject"

#: DBpedia predicate → relationship type (every value is in kg/schema.py's allow-list).
PREDICATES: dict[str, str] = {
    DBO + "director": "DIRECTOR", DBO + "starring": "STARRING", DBO + "writer": "WRITER",
    DBO + "producer": "PRODUCER", DBO + "musicComposer": "MUSIC_COMPOSER", DBO + "author": "AUTHOR",
    DBO + "literaryGenre": "LITERARY_GENRE", DBO + "genre": "GENRE", DBO + "publisher": "PUBLISHER",
    DBO + "series": "SERIES", DBO + "previousWork": "PREVIOUS_WORK",
    DBO + "subsequentWork": "SUBSEQUENT_WORK", DBO + "country": "COUNTRY", DBO + "language": "LANGUAGE",
    DCT_SUBJECT: "SUBJECT",
}
assert set(PREDICATES.values()) <= set(schema.ENTITY_REL_TYPES)

#: Entity ``type`` values, in priority order when a resource has several.
ENTITY_CLASSES = ("Film", "Book", "TelevisionShow", "Person", "Band", "Company", "Organisation",
                  "Genre", "MusicGenre", "Country", "Language", "WrittenWork", "Work")
#: The type an object gets from the predicate when DBpedia states none.
IMPLIED_TYPE = schema.ENTITY_TARGET_TYPE
WORK_CLASSES = ("Film", "Book")
#: Feature kinds matched to DBpedia people / organisations: kind → (classes, relationship, method).
FEATURE_KINDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "director": (("Person",), "DIRECTOR", "person"),
    "author": (("Person",), "AUTHOR", "person"),
    "publisher": (("Company", "Organisation"), "PUBLISHER", "organisation"),
    "brand": (("Company", "Organisation"), "PUBLISHER", "organisation"),
}
PEOPLE_PREDICATES = {"DIRECTOR", "STARRING", "WRITER", "PRODUCER", "AUTHOR", "MUSIC_COMPOSER"}

# --- data classes -----------------------------------------------------------------------------


@dataclass
class ItemRecord:
    id: str
    title: str
    year: int | None = None
    features: dict[str, list[str]] = field(default_factory=dict)

    @property
    def expected_type(self) -> str | None:
        if self.features.get("director"):
            return "Film"
        if self.features.get("author"):
            return "Book"
        return None


@dataclass
class Candidate:
    iri: str
    label: str
    type: str
    partial: bool = False


@dataclass
class Link:
    item: str
    iri: str
    method: str
    confidence: float
    type: str | None = None

# --- the linker -------------------------------------------------------------------------------


class Linker:
    def __init__(self, client: SparqlClient, batch_size: int, label_threshold: float,
                 work_types: Sequence[str] = WORK_CLASSES) -> None:
        if not work_types or any(t not in ENTITY_CLASSES for t in work_types):
            raise ConfigError(f"work_types must be a non-empty subset of {ENTITY_CLASSES}")
        self.work_types = tuple(work_types)
        self.client = client
        self.batch_size = batch_size
        self.label_threshold = label_threshold
        self.types_clause = ", ".join(iri(DBO + c) for c in ENTITY_CLASSES)
        self.facts: dict[str, list[dict[str, str]]] = {}
        self.facts_failed: set[str] = set()

    # label candidates ------------------------------------------------------------------
    def candidates(self, labels: Sequence[str], classes: Sequence[str]) -> dict[str, list[Candidate]]:
        """Exact-label lookup; ``label → candidates``. Raises SparqlError."""
        if not labels:
            return {}
        q = template("label_candidates", labels=" ".join(literal(lab, "en") for lab in labels),
                     types=", ".join(iri(DBO + c) for c in classes))
        out: dict[str, list[Candidate]] = defaultdict(list)
        seen = set()
        for r in self.client.select(q):
            if "s" not in r or "label" not in r:
                continue
            key = (r["label"], r["s"])
            typ = r.get("type", "").rsplit("/", 1)[-1]
            if key in seen:
                continue
            seen.add(key)
            out[r["label"]].append(Candidate(r["s"], r["label"], typ))
        return out

    def score(self, item: ItemRecord, cands: list[Candidate]) -> tuple[Candidate | None, float, str]:
        """Best candidate, its confidence, and a reason when none is acceptable."""
        if not cands:
            return None, 0.0, "no_candidate"
        wanted = [normalise_title(p) for p in title_parts(item.title)]
        people = {normalise_title(v) for k in ("director", "author") for v in item.features.get(k, [])}
        best: dict[str, float] = {}
        by_iri: dict[str, Candidate] = {}
        for c in cands:
            s = max(similarity(w, normalise_title(c.label)) for w in wanted)
            if c.partial:
                s = min(s, 0.9) - 0.1
            y = iri_year(c.iri)
            if y is not None and item.year is not None:
                if y == item.year:
                    s += 0.1
                elif abs(y - item.year) > 1:
                    continue
            exp = item.expected_type
            if exp and c.type != exp:
                s -= 0.3
            elif not exp and c.type != self.work_types[0]:
                s -= 0.2  # the catalogue's main kind (first of work_types) is preferred
            if people and self._shares_people(c.iri, people):
                s += 0.15
            if s > best.get(c.iri, -1.0):
                best[c.iri] = s
                by_iri[c.iri] = c
        if not best:
            return None, 0.0, "year_mismatch"
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        top_iri, top = ranked[0]
        conf = min(1.0, top)
        if len(ranked) > 1 and ranked[1][1] >= top - 0.05:
            conf *= 0.5
            reason = "ambiguous"
        else:
            reason = "low_confidence"
        return by_iri[top_iri], round(conf, 4), reason

    def _shares_people(self, resource: str, people: set[str]) -> bool:
        for r in self.facts.get(resource, []):
            if (PREDICATES.get(r.get("p", "")) in PEOPLE_PREDICATES
                    and normalise_title(r.get("label") or iri_label(r["o"])) in people):
                return True
        return False

    def link_batch(self, items: list[ItemRecord]) -> tuple[list[Link], dict[str, str]]:
        """Label-link a batch; returns links and ``item id → reason`` for the rest.
        Raises SparqlError when the lookup fails (the caller marks the batch failed)."""
        variants = {it.id: label_variants(it.title) for it in items}
        labels = list(dict.fromkeys(v for vs in variants.values() for v, _ in vs))
        found = self.candidates(labels, self.work_types)
        # shared-people disambiguation needs the candidates' facts (cached, reused in enrichment)
        with_people = [it for it in items if it.features.get("director") or it.features.get("author")]
        if with_people:
            need = sorted({c.iri for it in with_people for v, _ in variants[it.id] for c in found.get(v, [])})
            self.fetch_facts(need)
        links: list[Link] = []
        reasons: dict[str, str] = {}
        for it in items:
            cands = [Candidate(c.iri, c.label, c.type, partial)
                     for v, partial in variants[it.id] for c in found.get(v, [])]
            best, conf, reason = self.score(it, cands)
            if best is not None and conf >= self.label_threshold:
                links.append(Link(it.id, best.iri, "label", conf, best.type))
            else:
                reasons[it.id] = reason if best is None else f"{reason} ({conf:.2f} {best.iri})"
        return links, reasons

    # facts -----------------------------------------------------------------------------
    def fetch_facts(self, resources: Sequence[str]) -> None:
        todo = [r for r in resources if r not in self.facts and r not in self.facts_failed]
        preds = " ".join(iri(p) for p in PREDICATES)
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            q = template("facts", subjects=" ".join(iri(r) for r in chunk), predicates=preds,
                         types=self.types_clause)
            try:
                rows = self.client.select(q)
            except SparqlError:
                self.facts_failed.update(chunk)
                continue
            for r in chunk:
                self.facts[r] = []
            for row in rows:
                if row.get("s") in self.facts and "o" in row and "p" in row:
                    self.facts[row["s"]].append(row)

    def describe(self, resources: Sequence[str]) -> tuple[dict[str, tuple[str | None, str | None]], set[str]]:
        """``iri → (label, type)`` for the subjects; and the IRIs whose query failed."""
        out: dict[str, tuple[str | None, str | None]] = {}
        failed: set[str] = set()
        for i in range(0, len(resources), self.batch_size):
            chunk = list(resources[i:i + self.batch_size])
            q = template("describe", subjects=" ".join(iri(r) for r in chunk), types=self.types_clause)
            try:
                rows = self.client.select(q)
            except SparqlError:
                failed.update(chunk)
                continue
            acc: dict[str, tuple[str | None, list[str]]] = {}
            for row in rows:
                lab, types = acc.get(row["s"], (None, []))
                lab = lab or row.get("label")
                if row.get("type"):
                    types.append(row["type"].rsplit("/", 1)[-1])
                acc[row["s"]] = (lab, types)
            for r, (lab, types) in acc.items():
                out[r] = (lab, pick_type(types))
        return out, failed


def pick_type(types: Iterable[str]) -> str | None:
    ts = set(types)
    for c in ENTITY_CLASSES:
        if c in ts:
            return c
    return None


def feature_variants(value: str) -> list[str]:
    v = " ".join(str(value).split())
    out = [v]
    if v.count(",") == 1:  # "Tolkien, J. R. R." → "J. R. R. Tolkien"
        last, first = (p.strip() for p in v.split(","))
        if first and last:
            out.append(f"{first} {last}")
    return out
