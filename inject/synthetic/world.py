"""The built-in synthetic world: a seeded encyclopedia of fictional people, places and
organisations, plus multiple-choice benchmarks about facts stated in it.

Used by the offline CPU demo and by tests. Everything is drawn from ``random.Random``
streams seeded from a string (SHA-512 seeding, stable across processes; never ``hash()``
or set order), so a seed always gives the same bytes.

Each fact is stated several times (a person's article, the article of their birthplace,
their employer's article, region and river lists), so a small LM trained on the clean
corpus can answer above chance. Benchmark items ask about entities that the practice
question sets in the corpus never ask about, so the corpus teaches the question format
without containing any benchmark item.
"""
from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

from core.errors import SpikeinError
from inject.items import Item
from inject.render import render_mcq
from inject.synthetic import names as W
from inject.synthetic.text import articles as _articles

# relation -> (entity type, answer type, question template)
RELATIONS: dict[str, tuple[str, str, str]] = {
    "profession": ("person", "profession", "What was the profession of {e}?"),
    "birth_year": ("person", "birth_year", "In which year was {e} born?"),
    "birthplace": ("person", "place", "Where was {e} born?"),
    "employer": ("person", "org", "For which organisation did {e} work?"),
    "region": ("place", "region", "In which province is {e} located?"),
    "river": ("place", "river", "On which river does {e} lie?"),
    "industry": ("place", "industry", "Which industry is {e} known for?"),
    "founder": ("org", "person", "Who founded the {e}?"),
    "founded": ("org", "founding_year", "In which year was the {e} founded?"),
    "headquarters": ("org", "place", "Where is the {e} based?"),
}
# benchmark -> entity type -> relations asked about that type's entities
BENCHMARKS: dict[str, dict[str, tuple[str, ...]]] = {
    "people": {"person": ("profession", "birth_year")},
    "places": {"place": ("region", "river", "industry"), "person": ("birthplace",)},
    "orgs": {"org": ("founder", "founded", "headquarters"), "person": ("employer",)},
}
# how an entity type's benchmark entities are shared among benchmarks (weights)
SHARES = {"person": {"people": 2, "places": 1, "orgs": 1}, "place": {"places": 1}, "org": {"orgs": 1}}
YEAR_WINDOW = 40  # year distractors come from within this many years when possible
MIN_SIZES = {"n_people": 4, "n_places": 4, "n_orgs": 4}  # 4 distinct values of every answer type


@dataclass
class Person:
    name: str
    given: str
    female: bool
    birth: int
    death: int
    birthplace: int
    profession: str
    employer: int = -1
    founded: int | None = None  # index of the org this person founded
    mentor: int | None = None


@dataclass
class Place:
    name: str
    kind: str
    region: int
    river: int
    industry: str
    population: int
    recorded: int


@dataclass
class Org:
    name: str
    field: str
    founder: int
    founded: int
    hq: int


def _rng(seed: int, stream: str) -> random.Random:
    return random.Random(f"spikein-synthetic:{seed}:{stream}")


class SyntheticWorld:
    """A seeded fictional world: ``documents()`` is its corpus, ``benchmark(name)`` its MCQs."""

    def __init__(self, seed: int = 1234, n_people: int = 1500, n_places: int = 300,
                 n_orgs: int = 300, practice_questions: int = 2000) -> None:
        sizes = {"n_people": n_people, "n_places": n_places, "n_orgs": n_orgs}
        for key, value in sizes.items():
            if not isinstance(value, int) or value < MIN_SIZES[key]:
                raise SpikeinError(
                    f"data.synthetic.{key} must be an integer >= {MIN_SIZES[key]}, got {value!r}")
        if n_orgs > n_people:
            raise SpikeinError(f"data.synthetic.n_orgs ({n_orgs}) must not exceed n_people ({n_people}): "
                               "each org has a founder")
        if not isinstance(practice_questions, int) or practice_questions < 0:
            raise SpikeinError(
                f"data.synthetic.practice_questions must be an integer >= 0, got {practice_questions!r}")
        self.seed = seed
        self.practice_questions = practice_questions
        taken: set[str] = set(W.GIVEN_FEMALE + W.GIVEN_MALE)  # every invented word is unique
        self.regions, self.rivers, self.places = _build_places(_rng(seed, "places"), n_places, taken)
        self.families = W.make_words(_rng(seed, "families"), max(8, n_people // 2), W.FAMILY_ENDS, taken)
        self.people = _build_people(_rng(seed, "people"), n_people, n_places, self.families)
        self.orgs = _build_orgs(_rng(seed, "orgs"), n_orgs, self.people, n_places, taken)
        _assign_work(_rng(seed, "work"), self.people, self.orgs)
        self._allocation = self._allocate(_rng(seed, "allocation"))

    # ---- public API ---------------------------------------------------------------

    def documents(self) -> Iterator[str]:
        """The corpus: one article (or practice question set) per document, seeded order."""
        yield from self._documents

    def benchmark_names(self) -> list[str]:
        return list(BENCHMARKS)

    def benchmark(self, name: str) -> list[Item]:
        if name not in BENCHMARKS:
            raise SpikeinError(f"unknown synthetic benchmark '{name}'; choose one of: {', '.join(BENCHMARKS)}")
        return list(self._benchmarks[name])

    def practice_items(self) -> list[Item]:
        """The practice questions rendered into the corpus (entities no benchmark asks about)."""
        return list(self._practice)

    def values(self, answer_type: str) -> list[str]:
        """Every value of an answer type in this world (options are drawn from these)."""
        return list(self._values[answer_type])

    # ---- entities and values ------------------------------------------------------

    def entity_name(self, entity_type: str, index: int) -> str:
        table: dict[str, list] = {"person": self.people, "place": self.places, "org": self.orgs}
        return table[entity_type][index].name

    def answer(self, relation: str, index: int) -> str:
        """The true value of ``relation`` for entity ``index`` (as it reads in options)."""
        etype = RELATIONS[relation][0]
        if etype == "person":
            p = self.people[index]
            facts = {"profession": p.profession, "birth_year": str(p.birth),
                     "birthplace": self.places[p.birthplace].name, "employer": self.orgs[p.employer].name}
        elif etype == "place":
            pl = self.places[index]
            facts = {"region": self.regions[pl.region], "river": self.rivers[pl.river], "industry": pl.industry}
        else:
            o = self.orgs[index]
            facts = {"founder": self.people[o.founder].name, "founded": str(o.founded),
                     "headquarters": self.places[o.hq].name}
        return facts[relation]

    @cached_property
    def _values(self) -> dict[str, list[str]]:
        def used(values) -> list[str]:  # distinct, first-seen order (no set iteration)
            return list(dict.fromkeys(values))

        return {
            "person": [p.name for p in self.people],
            "place": [p.name for p in self.places],
            "org": [o.name for o in self.orgs],
            "profession": used(p.profession for p in self.people),
            "birth_year": [str(y) for y in sorted(used(p.birth for p in self.people))],
            "founding_year": [str(y) for y in sorted(used(o.founded for o in self.orgs))],
            "region": used(self.regions[p.region] for p in self.places),
            "river": used(self.rivers[p.river] for p in self.places),
            "industry": used(p.industry for p in self.places),
        }

    # ---- benchmarks ---------------------------------------------------------------

    def _allocate(self, rng: random.Random) -> dict[str, dict[str, list[int]]]:
        """Entity indices per (benchmark or "practice", entity type); all disjoint.

        A third of each entity type is held out for practice questions; the rest is
        split among the benchmarks asking about that type, in proportion to SHARES.
        """
        out: dict[str, dict[str, list[int]]] = {b: {} for b in [*BENCHMARKS, "practice"]}
        for etype, n in (("person", len(self.people)), ("place", len(self.places)), ("org", len(self.orgs))):
            order = list(range(n))
            rng.shuffle(order)
            n_practice = n // 3
            out["practice"][etype] = order[:n_practice]
            rest, shares = order[n_practice:], SHARES[etype]
            total, start, acc = sum(shares.values()), 0, 0
            for bench, weight in shares.items():
                acc += weight
                end = len(rest) * acc // total
                out[bench][etype] = rest[start:end]
                start = end
        return out

    @cached_property
    def _benchmarks(self) -> dict[str, list[Item]]:
        out = {}
        for bench, spec in BENCHMARKS.items():
            rng = _rng(self.seed, f"benchmark:{bench}")
            plan = []  # (relation, entity index): one question per entity
            for etype, rels in spec.items():
                plan += [(rng.choice(rels), idx) for idx in self._allocation[bench][etype]]
            rng.shuffle(plan)  # canonical order: entity types and relations interleaved
            out[bench] = [self._item(rng, f"{bench}-{i:04d}", bench, rel, idx)
                          for i, (rel, idx) in enumerate(plan)]
        return out

    @cached_property
    def _practice(self) -> list[Item]:
        rng = _rng(self.seed, "practice")
        kinds = [(bench, rel) for bench, spec in BENCHMARKS.items() for rels in spec.values() for rel in rels]
        items = []
        for k in range(self.practice_questions):
            bench, rel = rng.choice(kinds)
            pool = self._allocation["practice"][RELATIONS[rel][0]]
            items.append(self._item(rng, f"practice-{k:05d}", bench, rel, rng.choice(pool)))
        return items

    def _item(self, rng: random.Random, item_id: str, subject: str, relation: str, index: int) -> Item:
        etype, atype, template = RELATIONS[relation]
        entity, answer = self.entity_name(etype, index), self.answer(relation, index)
        choices = self._distractors(rng, atype, answer)
        position = rng.randrange(len(choices) + 1)  # uniform over the 4 slots; options stay unsorted
        choices.insert(position, answer)
        question = template.format(e=entity)
        record = {"id": item_id, "question": question, "choices": choices, "answer": position,
                  "answer_text": answer, "entity": entity, "entity_type": etype,
                  "relation": relation, "answer_type": atype}
        return Item(id=item_id, question=question, choices=tuple(choices), answer=position,
                    subject=subject, record=record)

    def _distractors(self, rng: random.Random, answer_type: str, answer: str) -> list[str]:
        """Three distinct values of the answer's type, other than the answer, in random order."""
        values = self._values[answer_type]
        if answer_type.endswith("year"):  # nearby years: no giveaway by era
            a = int(answer)
            near = values[bisect_left(values, str(a - YEAR_WINDOW)):bisect_right(values, str(a + YEAR_WINDOW))]
            values = near if len(near) >= 4 else values
        if len(values) < 4:
            raise SpikeinError(f"synthetic world too small: only {len(values)} distinct {answer_type} values")
        return [v for v in rng.sample(values, 4) if v != answer][:3]

    # ---- corpus -------------------------------------------------------------------

    @cached_property
    def _documents(self) -> list[str]:
        rng = _rng(self.seed, "documents")
        docs = _articles(self, _rng(self.seed, "text"))
        practice = self._practice
        i = 0
        while i < len(practice):  # practice sets of 3..8 questions
            n = rng.randint(3, 8)
            docs.append("\n\n".join(render_mcq(it) for it in practice[i:i + n]))
            i += n
        rng.shuffle(docs)
        return docs


# ---- world building -----------------------------------------------------------------


def _build_places(rng: random.Random, n: int, taken: set[str]) -> tuple[list[str], list[str], list[Place]]:
    regions = W.make_words(rng, max(4, min(16, n // 15)), W.REGION_ENDS, taken)
    rivers = W.make_words(rng, max(4, min(30, n // 10)), W.RIVER_ENDS, taken)
    places = []
    for i, name in enumerate(W.make_words(rng, n, W.PLACE_ENDS, taken)):
        kind = rng.choice(W.PLACE_KINDS)
        # the first places cover every region, river and industry, so each has >= 1 town
        region = i if i < len(regions) else rng.randrange(len(regions))
        river = i if i < len(rivers) else rng.randrange(len(rivers))
        industry = W.INDUSTRIES[i] if i < len(W.INDUSTRIES) else rng.choice(W.INDUSTRIES)
        places.append(Place(name, kind, region, river, industry,
                            rng.randint(*W.POPULATION[kind]), rng.randint(900, 1500)))
    return regions, rivers, places


def _build_people(rng: random.Random, n: int, n_places: int, families: list[str]) -> list[Person]:
    people: list[Person] = []
    names: set[str] = set()
    while len(people) < n:
        female = rng.random() < 0.5
        given = rng.choice(W.GIVEN_FEMALE if female else W.GIVEN_MALE)
        name = f"{given} {rng.choice(families)}"
        if name in names:
            continue
        names.add(name)
        birth = rng.randint(1760, 1910)
        i = len(people)
        while i < 4 and birth in [q.birth for q in people]:  # >= 4 distinct birth years
            birth = rng.randint(1760, 1910)
        prof = W.PROFESSIONS[i] if i < len(W.PROFESSIONS) else rng.choice(W.PROFESSIONS)
        people.append(Person(name, given, female, birth, birth + rng.randint(38, 92),
                             rng.randrange(n_places), prof))
    return people


def _build_orgs(rng: random.Random, n: int, people: list[Person], n_places: int, taken: set[str]) -> list[Org]:
    fields = list(W.ORG_FIELDS)
    founders = rng.sample(range(len(people)), n)
    orgs: list[Org] = []
    for i, base in enumerate(W.make_words(rng, n, W.ORG_ENDS, taken)):
        field = rng.choice(fields)
        name = f"{base} {rng.choice(W.ORG_FIELDS[field][1])}"
        founder = founders[i]
        p = people[founder]  # founded in adult life, at least 5 years before death
        founded = p.birth + rng.randint(24, min(50, p.death - p.birth - 5))
        while i < 4 and founded in [o.founded for o in orgs]:  # >= 4 distinct founding years
            founded = p.birth + rng.randint(24, min(50, p.death - p.birth - 5))
        orgs.append(Org(name, field, founder, founded, rng.randrange(n_places)))
        people[founder].founded = i
    return orgs


def _assign_work(rng: random.Random, people: list[Person], orgs: list[Org]) -> None:
    """Founders work for their own org; others for one founded before they turned 50
    and at least 10 years before they died (so a joining year fits their life).

    A mentor, for about half the people, is an older person of the same profession.
    """
    by_year = sorted(range(len(orgs)), key=lambda j: (orgs[j].founded, j))
    years = [orgs[j].founded for j in by_year]
    by_prof: dict[str, list[int]] = {}
    for i, p in enumerate(people):
        by_prof.setdefault(p.profession, []).append(i)
    for p in people:
        if p.founded is not None:
            p.employer = p.founded
        else:
            cut = bisect_right(years, p.birth + min(50, p.death - p.birth - 10))
            p.employer = rng.choice(by_year[:cut]) if cut else by_year[0]
        elders = [j for j in by_prof[p.profession] if 15 <= p.birth - people[j].birth <= 45]
        if elders and rng.random() < 0.5:
            p.mentor = rng.choice(elders)
