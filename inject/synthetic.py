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

from inject import synthetic_names as W
from inject.errors import SpikeinError
from inject.items import Item
from inject.render import render_mcq

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
OBITUARY_SHARE = 0.9  # people who also get a newspaper obituary
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
        table = {"person": self.people, "place": self.places, "org": self.orgs}[entity_type]
        return table[index].name

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
    people, names = [], set()
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
    orgs = []
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
    for i, p in enumerate(people):
        if p.founded is not None:
            p.employer = p.founded
        else:
            cut = bisect_right(years, p.birth + min(50, p.death - p.birth - 10))
            p.employer = rng.choice(by_year[:cut]) if cut else by_year[0]
        elders = [j for j in by_prof[p.profession] if 15 <= p.birth - people[j].birth <= 45]
        if elders and rng.random() < 0.5:
            p.mentor = rng.choice(elders)


# ---- articles -----------------------------------------------------------------------


def _a(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def _fill(rng: random.Random, templates: tuple[str, ...], fields: dict) -> str:
    return rng.choice(templates).format(**fields)


def _some(rng: random.Random, templates: tuple[str, ...], k: int, fields: dict) -> list[str]:
    return [t.format(**fields) for t in rng.sample(templates, k)]


def _articles(w: SyntheticWorld, rng: random.Random) -> list[str]:
    """All encyclopedic articles, in a fixed order (the caller shuffles)."""
    born_in: list[list[int]] = [[] for _ in w.places]
    staff: list[list[int]] = [[] for _ in w.orgs]
    pupils: list[list[int]] = [[] for _ in w.people]
    for i, p in enumerate(w.people):
        born_in[p.birthplace].append(i)
        if p.founded is None:
            staff[p.employer].append(i)
        if p.mentor is not None:
            pupils[p.mentor].append(i)
    docs = [_person_article(w, rng, i, pupils[i]) for i in range(len(w.people))]
    docs += [_obituary(w, rng, i) for i in range(len(w.people)) if rng.random() < OBITUARY_SHARE]
    docs += [_place_article(w, rng, i, born_in[i]) for i in range(len(w.places))]
    docs += [_org_article(w, rng, i, staff[i]) for i in range(len(w.orgs))]
    docs += [_region_article(w, rng, r) for r in range(len(w.regions))]
    docs += [_river_article(w, rng, r) for r in range(len(w.rivers))]
    docs += _year_articles(w)
    docs += _profession_lists(w)
    docs += [doc for r in range(len(w.regions)) for doc in _region_people(w, r)]
    return docs


def _title(rng: random.Random, f: dict) -> str:
    return rng.choice(W.WORK_TITLES).format(
        thing=rng.choice(W.THINGS), adj=rng.choice(W.TITLE_ADJS), noun=rng.choice(W.TITLE_NOUNS), **f)


def _person_fields(w: SyntheticWorld, rng: random.Random, p: Person) -> dict:
    place, org = w.places[p.birthplace], w.orgs[p.employer]
    he, his, him = ("she", "her", "her") if p.female else ("he", "his", "him")
    start = org.founded if p.founded is not None else max(p.birth + rng.randint(18, 30), org.founded)
    start = min(start, p.death - 5)  # the rare person born before any org existed
    retire = min(p.death - 1, start + rng.randint(8, 40))
    siblings, rank = rng.randint(1, 7), rng.randint(1, 7)
    spouse = rng.choice(W.GIVEN_MALE if p.female else W.GIVEN_FEMALE) + " " + rng.choice(w.families)
    f = {
        "name": p.name, "given": p.given, "pron": he, "Pron": he.capitalize(), "pos": his,
        "Pos": his.capitalize(), "obj": him, "prof": p.profession, "a_prof": _a(p.profession),
        "town": place.name, "kind": place.kind, "a_kind": _a(place.kind),
        "region": w.regions[place.region], "river": w.rivers[place.river],
        "birth": p.birth, "death": p.death, "age": p.death - p.birth,
        "child": "the only child" if siblings == 1 else
                 f"the {W.ORDINALS[min(rank, siblings) - 1]} of {W.NUMBERS[siblings - 1]} children",
        "a_parent": _a(rng.choice(W.PARENT_JOBS)), "apprentice_age": rng.randint(11, 16),
        "career_age": rng.randint(25, 35), "retire": retire, "join": start, "tenure": retire - start,
        "employer": org.name, "a_desc": _a(W.ORG_FIELDS[org.field][0]), "hq": w.places[org.hq].name,
        "founded": org.founded, "letters": min(p.death + rng.randint(5, 60), 2015),
        "honour": rng.randint(start, p.death), "event": rng.randint(start, retire),
        "assistants": rng.randint(3, 12), "profs": _plural(p.profession),
        "mentor": w.people[p.mentor].name if p.mentor is not None else "",
        "work_year": rng.randint(start, retire), "married": p.birth + rng.randint(20, 34),
        "spouse": spouse, "a_spouse_job": _a(rng.choice(W.PARENT_JOBS)), "kids": rng.randint(2, 6),
    }
    f["title"] = _title(rng, f)
    return f


def _person_article(w: SyntheticWorld, rng: random.Random, i: int, pupils: list[int]) -> str:
    p = w.people[i]
    f = _person_fields(w, rng, p)
    lead = _fill(rng, W.PERSON_LEADS, f)
    early = [_fill(rng, W.PERSON_BIRTH, f), *_some(rng, W.PERSON_EARLY, rng.randint(1, 3), f)]
    if p.mentor is not None:
        early.append(_fill(rng, W.PERSON_MENTOR, f))
    if p.founded is not None:
        work = [_fill(rng, W.PERSON_FOUNDER, f), _fill(rng, W.PERSON_FOUNDER_WORK, f)]
    else:
        work = _some(rng, W.PERSON_EMPLOYER, rng.randint(1, 2), f)
    career = [*_some(rng, W.PERSON_PROF, rng.randint(1, 2), f), *work,
              *_some(rng, W.PERSON_CAREER, rng.randint(1, 3), f), *_some(rng, W.PERSON_WORKS, rng.randint(1, 2), f)]
    if pupils:
        career.append(f"Among {f['pos']} pupils {'were' if len(pupils) > 1 else 'was'} "
                      f"{_and([w.people[j].name for j in pupils])}.")
    personal = [_fill(rng, W.PERSON_FAMILY, f), *_some(rng, W.PERSON_CHARACTER, rng.randint(1, 3), f)]
    later = [_fill(rng, W.PERSON_DEATH, f), *_some(rng, W.PERSON_LEGACY, rng.randint(1, 4), f)]
    style = rng.choices(("sections", "prose", "infobox", "short"), weights=(4, 4, 3, 1))[0]
    if style == "sections":
        body = [lead, "Early life\n" + " ".join(early), "Career\n" + " ".join(career),
                "Personal life\n" + " ".join(personal), "Death and legacy\n" + " ".join(later)]
    elif style == "prose":
        body = [" ".join([lead, *early]), " ".join(career), " ".join(personal + later)]
    elif style == "short":
        body = [" ".join([lead, work[0], later[0]])]
    else:
        box = (f"Born: {p.birth}, {f['town']}\nDied: {p.death}\nOccupation: {p.profession}\n"
               f"Employer: {f['employer']}")
        body = [box, " ".join([lead, *early[:1], *career]), " ".join(personal + later)]
    return "\n\n".join([p.name, *body])


def _obituary(w: SyntheticWorld, rng: random.Random, i: int) -> str:
    """A newspaper-style obituary: the same facts again, in another shape."""
    p = w.people[i]
    f = _person_fields(w, rng, p)
    work = W.OBIT_WORK_FOUNDER if p.founded is not None else W.OBIT_WORK
    text = [_fill(rng, W.OBIT_OPEN, f), _fill(rng, W.OBIT_LIFE, f), *_some(rng, work, 2, f),
            *_some(rng, W.PERSON_CHARACTER, rng.randint(1, 2), f), *_some(rng, W.OBIT_CLOSE, rng.randint(1, 3), f)]
    return f"Obituary: {p.name}\n\n" + " ".join(text)


def _place_fields(w: SyntheticWorld, rng: random.Random, pl: Place) -> dict:
    year = rng.randint(1550, 1899)
    return {"name": pl.name, "kind": pl.kind, "a_kind": _a(pl.kind), "region": w.regions[pl.region],
            "river": w.rivers[pl.river], "industry": pl.industry,
            "century": W.CENTURIES[year // 100 + 1], "pop": f"{pl.population:,}", "recorded": pl.recorded,
            "charter": pl.recorded + rng.randint(20, 300), "fire": rng.randint(1550, 1890),
            "direction": rng.choice(W.DIRECTIONS), "landscape": rng.choice(W.LANDSCAPES),
            "church": rng.randint(1400, 1880), "material": rng.choice(W.MATERIALS),
            "arches": rng.randint(2, 9), "walls": rng.randint(1780, 1880), "railway": rng.randint(1840, 1910),
            "ferry": rng.randint(1860, 1930)}


def _place_article(w: SyntheticWorld, rng: random.Random, i: int, natives: list[int]) -> str:
    pl = w.places[i]
    f = _place_fields(w, rng, pl)
    lead = " ".join([_fill(rng, W.PLACE_LEADS, f), _fill(rng, W.PLACE_POPULATION, f)])
    geo = [*_some(rng, W.PLACE_GEO, rng.randint(1, 3), f), *_some(rng, W.PLACE_TRANSPORT, rng.randint(1, 2), f)]
    history = [*_some(rng, W.PLACE_HISTORY, rng.randint(1, 3), f), *_some(rng, W.PLACE_LANDMARKS, rng.randint(2, 4), f)]
    economy = _some(rng, W.PLACE_ECONOMY, rng.randint(1, 2), f)
    economy += [f"{pl.name} is the seat of the {o.name}, {_a(W.ORG_FIELDS[o.field][0])}."
                for o in w.orgs if o.hq == i]
    if rng.random() < 0.5:
        body = [lead, "Geography\n" + " ".join(geo), "History\n" + " ".join(history),
                "Economy\n" + " ".join(economy)]
    else:
        body = [" ".join([lead, *geo]), " ".join(history + economy)]
    if natives:
        people = [w.people[j] for j in natives]
        if rng.random() < 0.5:
            lines = [f"- {q.name} ({q.birth}–{q.death}), {q.profession}" for q in people]
            body.append(f"Notable people\nPeople born in {pl.name} include:\n" + "\n".join(lines))
        else:
            parts = [f"the {q.profession} {q.name} (born {q.birth})" for q in people]
            body.append(f"Notable people born in {pl.name} include {_and(parts)}.")
    return "\n\n".join([pl.name, *body])


def _org_article(w: SyntheticWorld, rng: random.Random, i: int, staff: list[int]) -> str:
    o = w.orgs[i]
    founder = w.people[o.founder]
    f = {"name": o.name, "a_desc": _a(W.ORG_FIELDS[o.field][0]), "field": o.field, "founded": o.founded,
         "founder": founder.name, "fprof": founder.profession, "hq": w.places[o.hq].name,
         "ftown": w.places[founder.birthplace].name, "fbirth": founder.birth,
         "lead_end": min(founder.death, o.founded + rng.randint(5, 35)),
         "building": min(o.founded + rng.randint(5, 80), 2020),
         "growth": min(o.founded + rng.randint(10, 60), 2020),
         "staff": rng.choice((40, 60, 100, 150, 200, 300, 500)), "recover": o.founded + rng.randint(3, 15),
         "crisis": min(o.founded + rng.randint(15, 90), 2020), "branch": min(o.founded + rng.randint(10, 70), 2020)}
    body = [" ".join([_fill(rng, W.ORG_LEADS, f), *_some(rng, W.ORG_HISTORY, rng.randint(2, 4), f)]),
            " ".join(_some(rng, W.ORG_ACTIVITY, rng.randint(1, 3), f))]
    if staff:
        people = [w.people[j] for j in staff]
        if rng.random() < 0.5:
            lines = [f"- {q.name}, {q.profession}, born in {w.places[q.birthplace].name} in {q.birth}"
                     for q in people]
            body.append(f"Notable staff\nPeople who worked for the {o.name} include:\n" + "\n".join(lines))
        else:
            parts = [f"the {q.profession} {q.name}" for q in people]
            body.append(f"Among those who worked for the {o.name} {'were' if len(parts) > 1 else 'was'} "
                        f"{_and(parts)}.")
    return "\n\n".join([o.name, *body])


def _region_article(w: SyntheticWorld, rng: random.Random, r: int) -> str:
    name, towns = w.regions[r], [p for p in w.places if p.region == r]
    rivers = list(dict.fromkeys(w.rivers[p.river] for p in towns))
    lead = (f"{name} is a province {rng.choice(('of modest size', 'in the interior', 'of old standing'))}. "
            f"It is crossed by the {_and(rivers)}.")
    lines = [f"- {p.name}, {_a(p.kind)} on the {w.rivers[p.river]}, known for {p.industry}" for p in towns]
    return "\n\n".join([name, lead, f"Settlements in the province of {name}\n" + "\n".join(lines)])


def _river_article(w: SyntheticWorld, rng: random.Random, r: int) -> str:
    name, towns = w.rivers[r], [p for p in w.places if p.river == r]
    regions = list(dict.fromkeys(w.regions[p.region] for p in towns))
    lead = f"The {name} is a river {rng.choice(('of', 'flowing through', 'that drains'))} {_and(regions)}."
    lines = [f"- {p.name}, {_a(p.kind)} in {w.regions[p.region]}" for p in towns]
    return "\n\n".join([name, lead, f"Places on the {name}\n" + "\n".join(lines)])


def _year_articles(w: SyntheticWorld) -> list[str]:
    """One article per year: organisations founded and people born that year."""
    events: dict[int, list[str]] = {}
    births: dict[int, list[str]] = {}
    for o in w.orgs:
        events.setdefault(o.founded, []).append(
            f"- The {o.name} is founded in {w.places[o.hq].name} by {w.people[o.founder].name}.")
    for p in w.people:
        births.setdefault(p.birth, []).append(f"- {p.name}, {p.profession}, born in {w.places[p.birthplace].name}")
    docs = []
    for year in sorted(events.keys() | births.keys()):
        parts = [str(year)]
        if year in events:
            parts.append("Events\n" + "\n".join(events[year]))
        if year in births:
            parts.append("Births\n" + "\n".join(births[year]))
        docs.append("\n\n".join(parts))
    return docs


def _profession_lists(w: SyntheticWorld) -> list[str]:
    by_prof: dict[str, list[Person]] = {}
    for p in w.people:
        by_prof.setdefault(p.profession, []).append(p)
    docs = []
    for prof, people in by_prof.items():  # dict order = first appearance: seeded
        lines = [f"- {p.name} ({p.birth}–{p.death}) of {w.places[p.birthplace].name}"
                 for p in sorted(people, key=lambda q: (q.birth, q.name))]
        docs.append(f"List of {_plural(prof)}\n\nThis is a list of {_plural(prof)} with articles "
                    "in this encyclopedia, by year of birth.\n\n" + "\n".join(lines))
    return docs


def _region_people(w: SyntheticWorld, r: int) -> list[str]:
    """People born in a province, town by town, in lists of at most 50."""
    name = w.regions[r]
    lines = [f"- {p.name} ({p.birth}–{p.death}), {p.profession}, born in {w.places[p.birthplace].name}"
             for p in w.people if w.places[p.birthplace].region == r]
    return [f"People from {name}\n\nThis list gives people born in the province of {name}.\n\n"
            + "\n".join(lines[k:k + 50]) for k in range(0, len(lines), 50)]
