"""The synthetic world's prose: encyclopedia articles, obituaries and lists about its entities.

Split from :mod:`inject.synthetic.world` (which builds the world and its benchmarks); every
function draws only from the ``random.Random`` it is given, so a seed gives the same bytes.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from inject.synthetic import names as W

OBITUARY_SHARE = 0.9  # people who also get a newspaper obituary

if TYPE_CHECKING:
    from inject.synthetic.world import Person, Place, SyntheticWorld

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


def articles(w: SyntheticWorld, rng: random.Random) -> list[str]:
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
