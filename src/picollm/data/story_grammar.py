"""A probabilistic grammar of simple children's stories whose probabilities are known exactly.

Format: one story per line, seven sentences joined by single spaces, for example::

    Once upon a time, there was a little girl named Lily. She liked to play with her red ball in
    the park. One day, she lost her ball in the park. She looked everywhere, but she could not
    find it. Then her friend Ben came to help. They found the ball under the bed. Lily felt happy.

Generating process, in reading order: an opening sentence, a sentence about the child's toy,
one of four plots (a lost toy, sharing, a broken toy, a rainy day) of four sentences, and an
ending. Each sentence is one template drawn from its slot's weighted alternatives (the weights
below). A template's fields are filled lazily: the first time a story writes ``{toy}`` it draws
a toy uniformly from the lexicon and reuses it afterwards; the child's gender is drawn uniformly
the first time it matters and fixes ``girl``/``boy`` and the pronouns; a name is drawn from the
names of that gender; the friend is drawn uniformly from all names except the child's.
``lexicon_size`` k keeps the first k words of every lexicon list (k = 10 uses them all).

Entropy: ``log p(story)`` is the sum of the log-probabilities of the template choices and the
first-time draws (see :mod:`picollm.data.choices`). It is the log-probability of the text,
because the text determines the choice path: every story has exactly seven sentences; the
alternatives of one slot differ in their fixed words; every drawn value is drawn only when it is
written, so it appears in the text; lexicon words are single words and no word is in two lists
(girl and boy names are disjoint, so the name reveals the gender). The tests enumerate every
path at ``lexicon_size=1`` (the texts are distinct and the probabilities sum to one) and check
sampled stories at ``lexicon_size=2`` for two paths giving one text.
"""

from __future__ import annotations

from collections.abc import Sequence

from picollm.data.choices import Chooser

_WORDS = {  # every entry is one word, so the lexicon is a tuple of words per category
    "girl_name": "Lily Mia Lucy Sue Anna Emma Zoe Amy Kim Rose",
    "boy_name": "Ben Tom Tim Sam Max Leo Jack Bob Dan Finn",
    "trait": "little sweet kind brave shy curious funny gentle small clever",
    "color": "red blue green yellow pink purple brown black white gray",
    "toy": "ball kite doll car truck book hat drum boat train",
    "place": "park garden forest yard meadow playground field woods barn backyard",
    "helper": "mom dad grandma grandpa teacher neighbor aunt uncle brother sister",
    "spot": "bed tree bush table chair rock bench sofa swing fence",
    "feeling": "happy glad proud thankful excited calm cheerful grateful joyful relieved",
}
LEXICON: dict[str, tuple[str, ...]] = {
    category: tuple(words.split()) for category, words in _WORDS.items()
}
LEXICON_SIZE = 10

Slot = Sequence[tuple[float, str]]  # weighted alternative templates for one sentence

OPENING: Slot = (
    (3, "Once upon a time, there was a {trait} {child} named {Name}."),
    (2, "There once was a {trait} {child} named {Name}."),
    (1, "{Name} was a {trait} {child} who lived near a {place}."),
)
TOY: Slot = (
    (1, "{He} liked to play with {his} {color} {toy} in the {place}."),
    (1, "{His} favorite toy was a {color} {toy}."),
)
LOST_TOY: Sequence[Slot] = (
    (
        (1, "One day, {he} lost {his} {toy} in the {place}."),
        (1, "One day, {his} {toy} was gone."),
    ),
    (
        (2, "{He} looked everywhere, but {he} could not find it."),
        (1, "{He} was very sad and started to cry."),
    ),
    ((1, "Then {his} friend {Friend} came to help."), (1, "Then {his} {helper} came to help.")),
    ((1, "They found the {toy} under the {spot}."), (1, "They found the {toy} behind the {spot}.")),
)
SHARING: Sequence[Slot] = (
    ((1, "One day, {Friend} came to play."),),
    ((1, "{Friend} wanted to play with the {toy} too."),),
    (
        (1, "At first, {Name} did not want to share."),
        (2, '{Name} smiled and said, "Let\'s play together!"'),
    ),
    ((1, "They played together all day."), (1, "They took turns and had lots of fun.")),
)
BROKEN_TOY: Sequence[Slot] = (
    ((1, "One day, the {toy} broke."), (1, "One day, {he} dropped the {toy} and it broke.")),
    ((1, "{Name} felt very sad."),),
    ((1, '{His} {helper} said, "Do not worry, we can fix it."'),),
    ((1, "Together they fixed the {toy}."),),
)
RAINY_DAY: Sequence[Slot] = (
    (
        (1, "One day, it started to rain."),
        (1, "One day, the sky turned dark and it began to rain."),
    ),
    ((1, "{Name} could not play in the {place}."),),
    (
        (1, "So {he} stayed inside with {his} {helper}."),
        (1, "So {he} built a fort with {his} {helper}."),
    ),
    ((1, "When the sun came out, {he} ran back to the {place}."),),
)
PLOTS: Sequence[tuple[float, Sequence[Slot]]] = (
    (3, LOST_TOY),
    (2, SHARING),
    (2, BROKEN_TOY),
    (1, RAINY_DAY),
)
ENDING: Slot = (
    (2, "{Name} felt {feeling}."),
    (1, "In the end, {Name} was very {feeling}."),
    (1, "From that day on, {Name} always took good care of {his} {toy}."),
    (1, "From that day on, {Name} and {Friend} were best friends."),
)
PRONOUNS = {"he": {"girl": "she", "boy": "he"}, "his": {"girl": "her", "boy": "his"}}


class _Story:
    """The fields of one story, each drawn the first time a template asks for it."""

    def __init__(self, chooser: Chooser, lexicon_size: int):
        self._chooser = chooser
        self._lexicon_size = lexicon_size
        self._fields: dict[str, str] = {}

    def __getitem__(self, field: str) -> str:  # str.format_map looks fields up here
        if field not in self._fields:
            self._fields[field] = self._draw(field)
        return self._fields[field]

    def _draw(self, field: str) -> str:
        if field == "child":
            return self._chooser.choice(("girl", "boy"))
        if field in PRONOUNS:
            return PRONOUNS[field][self["child"]]
        if field in ("He", "His"):
            return self[field.lower()].capitalize()
        if field == "Name":
            return self._chooser.choice(self._words(f"{self['child']}_name"))
        if field == "Friend":
            names = self._words("girl_name") + self._words("boy_name")
            return self._chooser.choice([name for name in names if name != self["Name"]])
        return self._chooser.choice(self._words(field))

    def _words(self, category: str) -> tuple[str, ...]:
        return LEXICON[category][: self._lexicon_size]

    def sentence(self, slot: Slot) -> str:
        weights, templates = zip(*slot, strict=True)
        return self._chooser.choice(templates, weights).format_map(self)


def story_document(chooser: Chooser, *, lexicon_size: int = LEXICON_SIZE) -> str:
    """One story drawn with ``chooser`` (see the module docstring)."""
    story = _Story(chooser, lexicon_size)
    weights, plots = zip(*PLOTS, strict=True)
    opening, toy = story.sentence(OPENING), story.sentence(TOY)
    plot = [story.sentence(slot) for slot in chooser.choice(plots, weights)]
    return " ".join([opening, toy, *plot, story.sentence(ENDING)])
