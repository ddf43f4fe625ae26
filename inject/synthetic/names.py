"""Word lists and name makers of the synthetic world (fictional names from syllables).

Every list is a tuple in a fixed order and every draw goes through a caller's seeded
``random.Random``, so a seed always yields the same names.
"""
from __future__ import annotations

import random

GIVEN_FEMALE = (
    "Ada", "Alvine", "Berit", "Calla", "Dessa", "Elin", "Fenna", "Greta", "Hedda", "Ilsabet",
    "Ione", "Jessamy", "Kerys", "Linnea", "Maren", "Nella", "Odile", "Perrin", "Quilla", "Rosalind",
    "Sabeth", "Tamsin", "Ulla", "Verity", "Wenna", "Ysolde", "Zelie", "Amarant", "Brisa", "Corisande",
    "Delphine", "Emmeline", "Florentia", "Gwenael", "Hester", "Isaura", "Jorunn", "Katrine", "Lisette",
    "Mirabel", "Noemi", "Orla", "Philippa", "Romilly", "Solveig", "Theodora", "Undine", "Vanora",
    "Wilmet", "Xanthe",
)
GIVEN_MALE = (
    "Aldric", "Bastian", "Caspar", "Dorian", "Edmer", "Florian", "Gaspard", "Halvard", "Ivo", "Jasper",
    "Kasimir", "Leopold", "Matthis", "Nikolas", "Osric", "Piet", "Quentin", "Rainer", "Sander", "Tobias",
    "Ulric", "Valentin", "Wendel", "Xaver", "Yannick", "Zeno", "Ambrose", "Benedikt", "Cornelis", "Dietmar",
    "Emeric", "Fabian", "Gideon", "Hartwig", "Isidor", "Jorik", "Konrad", "Lorcan", "Magnus", "Norbert",
    "Oswin", "Percival", "Reinhold", "Severin", "Thaddeus", "Urban", "Vincenz", "Wolfram", "Anselm", "Bertram",
)

ONSETS = (
    "B", "Br", "C", "Cr", "D", "Dr", "F", "G", "Gr", "H", "K", "L", "M", "N", "P", "Pr", "R",
    "S", "St", "T", "Th", "Tr", "V", "W", "Z", "Al", "El", "Or", "Ul", "Is", "Ash", "Ev",
)
VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "y", "ar", "en", "or", "il")
MIDDLES = ("", "", "l", "r", "n", "v", "d", "m", "st", "th", "rr", "ll", "nd", "sk")
FAMILY_ENDS = ("ard", "er", "ley", "ing", "ett", "ow", "in", "ane", "ick", "ell", "ston", "ry", "aux", "ek", "ord")
PLACE_ENDS = (
    "holt", "mere", "ford", "wick", "by", "stead", "combe", "dale", "thorpe", "haven", "bridge",
    "moor", "field", "gate", "minster", "burn", "hollow", "lyn",
)
RIVER_ENDS = ("a", "e", "en", "is", "ra", "wy", "on", "ish", "ent")
REGION_ENDS = ("land", "mark", "march", "shire", "vale", "reach", "wold", "mont")
ORG_ENDS = ("ane", "ore", "ith", "ora", "ence", "ival", "ador", "emy", "is", "ant")

PROFESSIONS = (
    "weaver", "clockmaker", "cartographer", "astronomer", "botanist", "shipwright", "glassblower",
    "printer", "engraver", "physician", "apothecary", "architect", "surveyor", "composer", "violinist",
    "painter", "sculptor", "poet", "novelist", "historian", "lawyer", "banker", "merchant", "brewer",
    "miller", "stonemason", "bookbinder", "engineer", "chemist", "mathematician", "schoolteacher",
    "librarian", "naval officer", "organ builder", "lens grinder", "dyer", "potter", "journalist",
    "photographer", "geologist",
)
INDUSTRIES = (
    "wool", "salt", "glassmaking", "fishing", "timber", "shipbuilding", "pottery", "brewing",
    "copper mining", "paper making", "tanning", "lace making", "cider pressing", "slate quarrying",
    "silk weaving", "clockmaking",
)
PLACE_KINDS = ("town", "town", "market town", "city", "village", "village", "port town")
POPULATION = {"town": (4000, 30000), "market town": (3000, 15000), "city": (40000, 400000),
              "village": (150, 3000), "port town": (5000, 60000)}

# field -> (description, name kinds); the kind in an org's name hints at its field.
ORG_FIELDS = {
    "shipping": ("shipping company", ("Shipping Company", "Steam Packet Company", "Line")),
    "printing": ("publishing house", ("Press", "Printing House")),
    "astronomy": ("observatory", ("Observatory",)),
    "botany": ("botanical society", ("Botanical Society", "Botanic Garden")),
    "banking": ("bank", ("Bank", "Savings Bank")),
    "textiles": ("textile firm", ("Mills", "Cloth Company")),
    "brewing": ("brewery", ("Brewery",)),
    "cartography": ("map-making firm", ("Survey", "Map Company")),
    "medicine": ("hospital", ("Infirmary", "Hospital")),
    "music": ("music school", ("Conservatory", "School of Music")),
    "engineering": ("engineering firm", ("Ironworks", "Engineering Company")),
    "learning": ("learned academy", ("Academy", "Lyceum")),
    "theatre": ("theatre company", ("Theatre Company", "Playhouse")),
    "natural history": ("museum", ("Museum", "Naturalists' Society")),
    "railways": ("railway company", ("Railway Company",)),
    "insurance": ("insurance society", ("Assurance Society",)),
}


def _stem(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(ONSETS), rng.choice(VOWELS)]
    for _ in range(syllables - 1):
        parts += [rng.choice(MIDDLES), rng.choice(VOWELS)]
    return "".join(parts)


def make_word(rng: random.Random, ends: tuple[str, ...], taken: set[str]) -> str:
    """A fresh capitalised invented word ending in one of ``ends``, not in ``taken``.

    ``taken`` is only tested for membership (never iterated), so results are seeded.
    """
    for _ in range(10000):
        word = (_stem(rng, rng.choice((1, 1, 2))) + rng.choice(ends)).capitalize()
        if 4 <= len(word) <= 13 and word not in taken:
            taken.add(word)
            return word
    raise RuntimeError("synthetic world: ran out of fresh names")  # not reachable at sane sizes


def make_words(rng: random.Random, n: int, ends: tuple[str, ...], taken: set[str]) -> list[str]:
    return [make_word(rng, ends, taken) for _ in range(n)]

PARENT_JOBS = ("farmer", "innkeeper", "ferryman", "carter", "clergyman", "shopkeeper", "blacksmith",
               "saddler", "tailor", "baker")
DIRECTIONS = ("north", "south", "east", "west", "north-east", "south-west")
LANDSCAPES = ("gently rolling farmland", "marshy and low-lying", "wooded and hilly", "open heath",
              "a patchwork of orchards and pasture", "steep and rocky")
CENTURIES = {16: "sixteenth", 17: "seventeenth", 18: "eighteenth", 19: "nineteenth", 20: "twentieth"}

# ---- sentence templates (str.format fields filled by inject.synthetic.text) --------------

PERSON_LEADS = (
    "{name} ({birth}–{death}) was {a_prof} from {town}.",
    "{name} (born {birth} in {town}; died {death}) was {a_prof}.",
    "{name} was {a_prof} who was born in {town} in {birth} and died in {death}.",
    "{name} ({birth}–{death}) was {a_prof}, born in the {kind} of {town} in the province of {region}.",
    "{name}, born in {town} in {birth}, was {a_prof} active in the province of {region}.",
)
PERSON_BIRTH = (
    "{Pron} was born in {birth} in {town}, {a_kind} on the {river} in the province of {region}.",
    "{given} was born in {town} in the year {birth}.",
    "Born in {town} in {birth}, {given} was {child} of {a_parent}.",
    "{given} grew up in {town}, where {pron} had been born in {birth}.",
)
PERSON_EARLY = (
    "Little is recorded of {pos} early schooling.",
    "{Pron} was educated at home before being apprenticed at the age of {apprentice_age}.",
    "As a child {pron} showed an unusual talent for drawing and arithmetic.",
    "The family moved several times during {pos} childhood but kept close ties to {town}.",
    "{Pron} spent {pos} childhood summers on a farm outside {town}.",
    "At school in {town} {pron} was remembered as a quiet but stubborn pupil.",
    "{Pos} father, {a_parent}, encouraged an early interest in books.",
)
PERSON_MENTOR = (
    "{Pron} trained under the {prof} {mentor}.",
    "{given} was apprenticed to {mentor}, {a_prof} of some reputation.",
    "{Pos} teacher was {mentor}, with whom {pron} remained in correspondence for many years.",
)
PERSON_PROF = (
    "{Pron} worked as {a_prof} for most of {pos} life.",
    "By the age of {career_age} {given} had made a name as {a_prof}.",
    "{given} became {a_prof}, a calling that {pron} followed until {retire}.",
    "{Pos} reputation as {a_prof} spread well beyond {region}.",
    "As {a_prof} with the {employer}, {given} was known for careful and unhurried work.",
    "{Pos} skill as {a_prof} was recognised early by colleagues in {hq}.",
    "Throughout {pos} years as {a_prof}, {pron} took on several apprentices.",
)
PERSON_EMPLOYER = (
    "{Pron} spent most of {pos} career at the {employer}, {a_desc} based in {hq}.",
    "In {join} {given} joined the {employer} in {hq}, where {pron} remained for {tenure} years.",
    "{given} worked for the {employer}, {a_desc} in {hq}.",
    "From {join} {pron} was employed by the {employer}.",
)
PERSON_FOUNDER = (
    "In {founded} {pron} founded the {employer} in {hq} and led it for {tenure} years.",
    "{given} is best remembered as the founder of the {employer}, established in {founded}.",
    "{Pron} founded the {employer}, {a_desc} in {hq}, in {founded}.",
)
PERSON_FOUNDER_WORK = (
    "{Pron} devoted the rest of {pos} working life to the {employer}.",
    "{given} worked for the {employer} until {retire}.",
)
PERSON_DEATH = (
    "{Pron} died in {death} at the age of {age}.",
    "{given} died in {hq} in {death}.",
    "{Pron} died in {death}, aged {age}, and was buried in {town}.",
)
PERSON_LEGACY = (
    "A street in {town} is named after {obj}.",
    "{Pos} papers are kept in the archive of the {employer}.",
    "A portrait of {name} hangs in the town hall of {town}.",
    "{Pos} letters were published by a grand-nephew in {letters}.",
    "In {letters} a collection of {pos} papers was given to the {employer}.",
    "{Pos} name appears on a memorial tablet in {town}.",
    "Historians of {region} regard {obj} as a characteristic figure of {pos} generation.",
    "Several of {pos} notebooks survive in private hands.",
    "In {honour} {pron} received the freedom of {town}, the place of {pos} birth.",
    "{Pron} was awarded a gold medal at the {hq} exhibition of {honour}.",
    "A prize in {pos} name is still given to young {profs} in {region}.",
)

PLACE_LEADS = (
    "{name} is {a_kind} in the province of {region}, on the {river}.",
    "{name} is {a_kind} on the banks of the {river} in {region}.",
    "{name}, {a_kind} in {region}, lies on the {river}.",
    "{name} is {a_kind} in {region}. It stands on the {river}.",
)
PLACE_GEO = (
    "The {river} divides the old quarter from the newer streets to the {direction}.",
    "Several bridges cross the {river} within the {kind}.",
    "The country around {name} is {landscape}.",
    "The {kind} lies in the {direction} of the province of {region}.",
    "The {river} floods the meadows below {name} most winters.",
    "Its climate is mild, and the valley of the {river} shelters it from the {direction} wind.",
)
PLACE_HISTORY = (
    "{name} is first mentioned in a charter of {recorded}.",
    "The earliest record of {name} dates from {recorded}.",
    "A market charter was granted to {name} in {charter}.",
    "Much of the old centre was rebuilt after a fire in {fire}.",
)
PLACE_ECONOMY = (
    "The economy of {name} has long rested on {industry}.",
    "{name} is known for {industry}.",
    "It was {industry} that made {name} prosperous in the {century} century.",
    "The {industry} trade remains the largest employer in {name}.",
)
PLACE_POPULATION = (
    "At the last census {name} had {pop} inhabitants.",
    "{name} has a population of about {pop}.",
)

ORG_LEADS = (
    "The {name} is {a_desc} founded in {founded} by {founder} in {hq}.",
    "The {name} is {a_desc} based in {hq}. It was founded by {founder} in {founded}.",
    "The {name}, {a_desc} with its seat in {hq}, was established in {founded} by the {fprof} {founder}.",
    "Founded in {founded} by {founder}, the {name} is {a_desc} in {hq}.",
)
ORG_HISTORY = (
    "Its founder, {founder}, had been born in {ftown} in {fbirth}.",
    "{founder} led the {name} until {lead_end}.",
    "The {name} moved into its present building in {hq} in {building}.",
    "By {growth} the {name} employed more than {staff} people.",
    "During its early years it struggled for money, but it recovered after {recover}.",
    "Its archive holds minutes of every meeting since {founded}.",
)
PERSON_WORKS = (
    "{Pos} best-known work, {title}, dates from {work_year}.",
    "In {work_year} {pron} completed {title}, which was widely discussed in {region}.",
    "{given}'s {title} ({work_year}) is still cited by historians of the craft.",
    "Among {pos} surviving works is {title}, finished in {work_year}.",
    "{Pron} is also remembered for {title}, written in {work_year}.",
)
PERSON_CAREER = (
    "In {event} {pron} spent a year in {hq} studying the methods of other {profs}.",
    "A serious illness in {event} interrupted {pos} work for several months.",
    "{Pron} travelled widely in {region} in search of commissions.",
    "At its height {pos} workshop employed as many as {assistants} assistants.",
    "{Pron} published a short account of {pos} methods in {event}.",
    "A quarrel with a rival in {event} did {obj} little lasting harm.",
    "{Pos} income was modest, and for some years {pron} also taught evening classes.",
)
PERSON_FAMILY = (
    "In {married} {pron} married {spouse}, {a_spouse_job}; they had {kids} children.",
    "{given} married {spouse} in {married}.",
    "{Pron} never married, and lived for many years with a sister in {hq}.",
    "{Pos} marriage to {spouse} in {married} was by all accounts a happy one.",
)
PERSON_CHARACTER = (
    "Contemporaries described {obj} as patient, exacting and dryly humorous.",
    "{Pron} kept a detailed diary for more than thirty years.",
    "{Pos} correspondence with colleagues across {region} survives in part.",
    "{Pron} was known for long walks along the {river}.",
    "{given} rarely travelled beyond {region}.",
    "{Pron} took an active part in the civic life of {hq}.",
    "Friends recalled {pos} fondness for music and for the company of children.",
)
WORK_TITLES = (
    '"A Treatise on {thing}"', '"Notes from {town}"', '"The {adj} {noun}"', '"{noun}s of the {river}"',
    '"Observations Made at {hq}"', '"A Description of {region}"', '"On {thing}"',
)
THINGS = ("Light and Shade", "Weights and Measures", "the Tides", "Common Plants", "Bells", "Dyes and Mordants",
          "Winter Roads", "the Northern Sky", "Old Charters", "Mills and Weirs")
TITLE_ADJS = ("Silent", "Copper", "Lantern", "Narrow", "Winter", "Golden", "Hollow", "Seventh")
TITLE_NOUNS = ("Harbour", "Orchard", "Ledger", "Bridge", "Gate", "Compass", "Garden", "Tower")

PLACE_LANDMARKS = (
    "The parish church, rebuilt in {church}, has a tall {material} tower.",
    "A {material} bridge of {arches} arches crosses the {river} at {name}.",
    "The old market hall still stands in the main square.",
    "A small museum in the former toll house records the history of {industry} in {name}.",
    "The town walls were taken down in {walls}, and their line is now a tree-lined walk.",
    "Two watermills on the {river} survive, one of them still working.",
    "A weekly market has been held in {name} since the middle ages.",
    "The grammar school of {name} was founded in {church}.",
    "Old houses of {material} line the street that leads down to the {river}.",
)
PLACE_TRANSPORT = (
    "A road along the {river} links {name} with the rest of {region}.",
    "The railway reached {name} in {railway}.",
    "Barges carried goods down the {river} from {name} until the early twentieth century.",
    "A ferry across the {river} ran at {name} until {ferry}.",
)
MATERIALS = ("sandstone", "limestone", "brick", "granite", "flint")
ORG_ACTIVITY = (
    "The {name} publishes an annual report on its work.",
    "Its members meet each spring in {hq}.",
    "The {name} awards a medal every year for distinguished work in {field}.",
    "The {name} keeps a library open to the public of {hq}.",
    "In {crisis} the {name} nearly closed after a dispute among its directors.",
    "It opened a branch outside {hq} in {branch}, which closed some years later.",
)

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven")
OBIT_OPEN = (
    "The death is announced of {name}, {a_prof} of {hq}, at the age of {age}.",
    "{name}, who died in {death}, was for many years {a_prof} with the {employer}.",
    "We record with regret the death in {death} of {name}, {a_prof}.",
    "With the death of {name} in {death}, {region} has lost one of its best-known {profs}.",
)
OBIT_LIFE = (
    "{Pron} was born in {town}, on the {river}, in {birth}, and never lost {pos} affection for the place.",
    "A native of {town} in {region}, {pron} was born there in {birth}.",
    "{given} came from {town}, where {pron} was born in {birth}.",
)
OBIT_WORK = (
    "{Pos} long connection with the {employer} began in {join}.",
    "For {tenure} years {pron} served the {employer} in {hq}.",
    "Colleagues at the {employer} will remember {obj} as a generous {prof}.",
)
OBIT_WORK_FOUNDER = (
    "{Pron} founded the {employer} in {founded} and guided it through its early years.",
    "The {employer}, which {pron} founded in {founded}, owes much of its standing to {obj}.",
)
OBIT_CLOSE = (
    "{Pron} is survived by {kids} children.",
    "The funeral took place in {town}.",
    "A memorial service was held at the {employer}.",
    "Many who knew {obj} will recall {pos} kindness to younger {profs}.",
    "{Pos} work, {title}, will keep {pos} name alive.",
)
