"""The bundled demo data set: a deterministic synthetic movie catalogue, its users and their rating history.

`generate_demo(seed, n_users, n_items, n_interactions)` always returns the same frames for the same arguments
(everything is drawn from one `np.random.default_rng(seed)`); `demo_size(scale)` maps the `LMREC_DEMO_SCALE` knob to
sizes: scale 1 -> 1,000 users x 1,500 items x 50,000 events, scale 200 -> 100,000 x 50,000 x 10,000,000 (the
benchmark size). Events grow linearly with scale, users and the catalogue sublinearly (scale**0.87 and
scale**0.66): bigger data sets have longer histories and catalogues grow slower than audiences.

How the data is generated, and what a recommender should be able to find in it:

- Items have 1-3 of the 18 MovieLens genres, a log-normal popularity (a few blockbusters, a long tail), a quality
  score, a release time and a made-up title. The one-sentence description is assembled from genre-specific phrases
  (crime items speak of detectives and heists, sci-fi items of spaceships and androids; see `GENRE_WORDS`), so a
  text model that embeds descriptions can recover what users like.
- Each user has a taste: a Dirichlet draw over genres concentrated on 2-3 favourites (children lean to animation,
  older users to war films and westerns). Each event picks a genre from the taste, then an item of that genre by
  popularity at that time.
- Sequential signal: with probability `P_STAY` (0.5) an event keeps the previous event's genre instead of drawing
  a fresh one, so the most recent items say something about the next one that the whole history does not.
- Time: events span 2023 (one year). Each user is active in a window of it (30% are still active at the end) and
  their events increase strictly in time. An item's popularity is boosted right after release and decays to a
  floor (recency). About 3% of items are *cold*: released in the last 5% of the year, they appear only as late
  events. At the default size 5-8% of users end their history on a cold item, and a handful of cold items occur
  only as last events, i.e. never in the training part of a leave-last-out split.
- History lengths are heavy-tailed: at least 5 events per user, some users with hundreds (capped at a fifth of the
  catalogue); the total is `n_interactions` less the rare (user, item) repeats that could not be redrawn.
- Ratings ("1".."5") rise with how well the item's genres match the user's taste, and with item quality.
- Planted group difference (for the fairness checks): users with gender "F" have noisier tastes. Their taste is
  mixed 35% with the global genre mix (10% for "M"), so their histories are less predictable and personalised
  recommenders score a lower hit rate for them (see the measurements below). This is a property of the synthetic
  data, not a claim about people.

Measured on a 2-core CPU (numpy 2.4, pandas 3.1): the default size takes 0.1 s (peak RSS 150 MB for the whole
process); scale 200 (10M events) takes 17-25 s with a peak RSS of 3.5 GB, reached while `sha256_frame` hashes the
10M-row string frame (about 1.2 GB before hashing, and a third of the time). Everything per event is vectorized
numpy; Python loops run only per genre, per redraw round, or per item/user when building labels and texts.
Checked with EASE on a leave-last-out split (HR@10; popularity reaches only a third to a half of EASE): at scale 4,
"F" users score 17-25% below "M" (seeds 7, 11), 36% below at scale 10. The gap depends on the model: adding the
last three items to EASE's scores (which lifts HR@10 by 4-13%, the sequential signal) narrows it to 6-20%, and
popularity scores "F" users higher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lmrec_assets.ingestion.sources.base import (
    AGE_BRACKETS,
    ERROR_COLUMN,
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    USER_COLUMNS,
    RawTable,
    SourceData,
    sha256_frame,
)

# --- sizes ---------------------------------------------------------------------------------------------------------
BASE_USERS, BASE_ITEMS, BASE_INTERACTIONS = 1_000, 1_500, 50_000
# Events grow linearly with scale; users as scale**USER_GROWTH (~0.87) and items as scale**ITEM_GROWTH (~0.66), both
# anchored so that scale 200 is exactly the benchmark size: 100,000 users x 50,000 items x 10,000,000 events.
BENCHMARK_SCALE = 200
USER_GROWTH = math.log(100_000 / BASE_USERS) / math.log(BENCHMARK_SCALE)
ITEM_GROWTH = math.log(50_000 / BASE_ITEMS) / math.log(BENCHMARK_SCALE)
MIN_ITEMS = 50  # below this the genres cannot all be populated and users run out of distinct items
MIN_HISTORY = 5  # events per user, at least
HISTORY_CAP_SHARE = 5  # a user's history is at most n_items // HISTORY_CAP_SHARE events

# --- time ------------------------------------------------------------------------------------------------------------
START = 1_672_531_200  # 2023-01-01T00:00:00Z
SPAN = 365 * 86_400  # events fall in [START, START + SPAN)
DAY = 86_400
N_BUCKETS = 100  # item popularity is recomputed every SPAN / N_BUCKETS (~3.7 days)
STILL_ACTIVE_SHARE = 0.3  # users whose activity window reaches the end of the span
COLD_SHARE = 0.03  # items released in the last 5% of the span...
COLD_RELEASE = (0.95, 0.985)  # ...early enough to be picked up by at least one popularity bucket
NEW_SHARE = 0.37  # items released during the span; the rest is back catalogue released in the two years before
HYPE, FLOOR, HYPE_DAYS = 3.0, 0.35, 60.0  # popularity multiplier: HYPE at release, decaying to FLOOR

# --- tastes and sequences --------------------------------------------------------------------------------------------
P_STAY = 0.5  # chance an event keeps the previous event's genre (the sequential signal)
FAVOURITE_ALPHA, OTHER_ALPHA = 3.0, 0.05  # Dirichlet concentration on a user's 2-3 favourite genres vs the rest
TASTE_NOISE = {"F": 0.35, "M": 0.10}  # share of a user's taste replaced by the global genre mix (planted gap)
FEMALE_SHARE = 0.35

GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
# How common each genre is among items and favourites (roughly MovieLens' mix).
GENRE_SHARE = np.array(
    [0.09, 0.05, 0.02, 0.04, 0.20, 0.04, 0.03, 0.25, 0.02, 0.01, 0.06, 0.02, 0.02, 0.07, 0.05, 0.07, 0.03, 0.02]
)
GENRE_SHARE = GENRE_SHARE / GENRE_SHARE.sum()
GENRE_COUNT_PROBS = [0.5, 0.35, 0.15]  # an item has 1, 2 or 3 genres
AGE_SHARE = [0.04, 0.18, 0.35, 0.20, 0.09, 0.08, 0.06]  # per AGE_BRACKETS entry
AGE_GENRE_BOOST = {"under 18": {"Animation": 4.0, "Children": 4.0}, "56+": {"War": 2.5, "Western": 2.5, "Drama": 1.5}}
OCCUPATIONS = [
    "student", "engineer", "teacher", "artist", "healthcare", "sales", "writer",
    "scientist", "lawyer", "programmer", "homemaker", "retired", "self-employed", "other",
]  # fmt: skip
OCCUPATION_SHARE = [0.14, 0.10, 0.08, 0.06, 0.07, 0.08, 0.05, 0.05, 0.03, 0.09, 0.05, 0.05, 0.05, 0.10]

# --- text ------------------------------------------------------------------------------------------------------------
# Per genre: (characters, plots, settings). A description is "<character> <plot> <setting>." with the character from
# the item's first genre, the plot from its second and the setting from its third (falling back to the first), so
# every genre of an item leaves words in its description. Every phrase holds at least one of GENRE_WORDS[genre].
_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Action": (
        ("an ex-commando", "a hardened mercenary", "a reluctant bodyguard", "a rogue special-forces commando"),
        ("fights through a relentless shootout", "races to defuse an explosive device",
         "leads a high-speed chase", "takes on an army of mercenaries"),
        ("in a skyscraper rigged with explosives", "during a rooftop shootout",
         "through a mercenary-held compound", "on a highway chase at dawn"),
    ),
    "Adventure": (
        ("a daring explorer", "a young treasure hunter", "a seasoned expedition guide", "a shipwrecked explorer"),
        ("sets out on a quest for a lost relic", "follows an ancient treasure map",
         "leads a perilous expedition", "embarks on a voyage to uncharted islands"),
        ("deep in an uncharted jungle", "across a desert hiding a pirate treasure",
         "on a voyage beyond the known seas", "through the ruins of a jungle temple"),
    ),
    "Animation": (
        ("a talking rabbit", "a brave little toy", "an animated robot", "a cartoon fox"),
        ("teams up with talking animals to find home", "paints a cartoon world in bright colors",
         "learns to fly in an animated caper", "befriends a cartoon whale"),
        ("in a colorful animated kingdom", "in an animated forest", "inside a toy box come alive",
         "in a cartoon city of talking creatures"),
    ),
    "Children": (
        ("a curious kid", "a lost puppy", "a group of schoolchildren", "a big-hearted family"),
        ("learns about friendship and family", "saves the summer camp",
         "goes exploring with the kids from school", "raises a mischievous puppy"),
        ("in a sleepy family town", "at a summer camp by the lake", "in a neighborhood full of kids",
         "during the school holidays with the whole family"),
    ),
    "Comedy": (
        ("a goofy slacker", "a wacky party planner", "a bumbling prank-loving roommate",
         "a hapless stand-up comedian"),
        ("stumbles through a hilarious misadventure", "pulls off an elaborate prank",
         "survives a wacky road trip", "causes slapstick chaos at a fancy gala"),
        ("in a hilariously chaotic office", "on a goofy road trip", "during a slapstick weekend at the lake",
         "in a small town full of wacky neighbors"),
    ),
    "Crime": (
        ("a weary detective", "a small-time gangster", "a veteran safecracker", "an undercover cop inside the mob"),
        ("plans one last heist", "investigates a bank robbery gone wrong", "takes down a drug cartel",
         "infiltrates a gangster's inner circle"),
        ("in a mob-run port city", "in the crime-ridden streets of the city", "inside a cartel's stronghold",
         "during a casino heist"),
    ),
    "Documentary": (
        ("a documentary crew", "a real-life whistleblower", "an investigative filmmaker",
         "a retired athlete interviewed for a documentary"),
        ("uses archival footage to revisit a historic event", "gathers candid interviews about a forgotten disaster",
         "follows a farming town's struggle in candid footage", "films a year of climate research for a documentary"),
        ("in a documentary shot over ten years", "through never-seen archival footage",
         "in candid interviews with the people who were there", "in a real-life story told by its witnesses"),
    ),
    "Drama": (
        ("an estranged daughter", "a grieving widower", "a struggling single mother",
         "a disgraced surgeon seeking redemption"),
        ("confronts years of grief", "seeks redemption after a tragic mistake",
         "struggles to hold a broken home together", "reconciles with an estranged brother"),
        ("in a heartfelt drama set in a mill town", "in a quiet town weighed down by grief",
         "in a heartfelt story of redemption", "over one emotional winter of grief and hope"),
    ),
    "Fantasy": (
        ("a young wizard", "an exiled elf princess", "a reluctant dragon rider", "an apprentice sorcerer"),
        ("fulfills an ancient prophecy", "battles a dark sorcerer", "searches for a stolen magic crown",
         "breaks an enchanted curse"),
        ("in an enchanted realm", "in a kingdom of dragons and magic", "beyond the enchanted forest",
         "in a land ruled by wizards"),
    ),
    "Film-Noir": (
        ("a hard-boiled private eye", "a femme fatale", "a doomed nightclub owner", "a jaded noir drifter"),
        ("is drawn into a deadly double-cross", "falls for a femme fatale with a hidden past",
         "unravels a blackmail scheme in the shadows", "takes the fall for a noir kingpin"),
        ("in a smoky nightclub", "in the rain-slicked shadows of 1940s Los Angeles",
         "in a noir city of neon and shadows", "in a smoky hotel bar"),
    ),
    "Horror": (
        ("a possessed teenager", "a pair of ghost hunters", "a masked slasher",
         "a paranormal investigator haunted by a demon"),
        ("is stalked by a masked slasher", "survives a zombie outbreak", "awakens an ancient demon",
         "spends a terrifying night with a vengeful ghost"),
        ("in a haunted mansion", "in a zombie-infested town", "in a terrifying cabin in the woods",
         "in a haunted asylum"),
    ),
    "Musical": (
        ("a small-town singer", "an aspiring broadway dancer", "a choir director", "a street dance crew"),
        ("sings their way to stardom", "stages a broadway show against all odds",
         "wins a dance competition with one last song", "brings a church choir back to life"),
        ("in a musical full of show-stopping songs", "on the stages of broadway",
         "in a city that breaks into song and dance", "at a summer musical festival"),
    ),
    "Mystery": (
        ("an amateur sleuth", "a puzzle-obsessed librarian", "a mystery novelist", "a retired sleuth"),
        ("follows a trail of cryptic clues", "solves a locked-room whodunit", "looks into a sudden disappearance",
         "deciphers a riddle left by a dead man"),
        ("in a remote manor full of secrets", "on a snowbound train with a mystery to solve",
         "in a village hiding a dark secret", "inside a puzzle-filled mansion"),
    ),
    "Romance": (
        ("a hopeless romantic", "a pair of star-crossed lovers", "a heartbroken florist", "a childhood sweetheart"),
        ("falls in love with a stranger", "gets a second chance at romance",
         "plans a wedding that may never happen", "recovers from heartbreak"),
        ("in a romantic seaside town", "during a whirlwind summer love affair", "in a romantic Paris spring",
         "at a countryside wedding"),
    ),
    "Sci-Fi": (
        ("a lone android", "a starship captain", "a cyborg bounty hunter", "a stranded astronaut"),
        ("discovers an alien signal", "must stop a rogue android uprising",
         "travels through a wormhole across the galaxy", "races to repair a failing spaceship"),
        ("aboard a derelict spaceship", "on a distant colony planet", "at the edge of the galaxy",
         "in a cyborg-ruled future megacity"),
    ),
    "Thriller": (
        ("a paranoid journalist", "a hunted assassin", "a former spy", "a hostage negotiator"),
        ("uncovers a government conspiracy", "races to stop a kidnapping", "is framed by a ring of spies",
         "negotiates a tense hostage standoff"),
        ("in a city gripped by suspense", "inside a conspiracy reaching the highest offices",
         "during a paranoid night of suspense", "in a spy-ridden capital"),
    ),
    "War": (
        ("a young soldier", "a battle-scarred sergeant", "a platoon medic", "a wartime nurse"),
        ("holds the line in a desperate battle", "leads a platoon behind enemy lines",
         "survives the trenches of the great war", "smuggles troops across occupied territory"),
        ("on the frontline of a brutal war", "in a bombed-out wartime city", "on the beaches of a decisive battle",
         "in a wartime prisoner barracks"),
    ),
    "Western": (
        ("a lone gunslinger", "an aging sheriff", "a wanted outlaw", "a widowed rancher"),
        ("defends a frontier town from outlaws", "rides out for a showdown with a gunslinger",
         "drives cattle across the frontier", "hunts the outlaw who burned the ranch"),
        ("in a dusty frontier town", "on a lawless cattle ranch", "in a saloon at high noon",
         "across the wild west with a band of cowboys"),
    ),
}
# The signal words of each genre (lower-case whole words): what a text model should associate with the genre.
GENRE_WORDS: dict[str, frozenset[str]] = {
    genre: frozenset(words.split())
    for genre, words in {
        "Action": "commando mercenary mercenaries bodyguard shootout explosive explosives chase",
        "Adventure": "explorer treasure expedition quest voyage jungle uncharted",
        "Animation": "animated cartoon talking toy",
        "Children": "kid kids puppy schoolchildren family camp",
        "Comedy": "goofy wacky prank comedian hilarious hilariously slapstick",
        "Crime": "detective gangster safecracker mob heist robbery cartel crime",
        "Documentary": "documentary whistleblower filmmaker archival footage interviews candid witnesses",
        "Drama": "estranged grieving struggling struggles redemption grief heartfelt drama emotional",
        "Fantasy": "wizard wizards elf dragon dragons sorcerer prophecy magic enchanted",
        "Film-Noir": "private eye femme fatale nightclub noir double cross blackmail shadows smoky",
        "Horror": "possessed ghost slasher demon haunted zombie terrifying",
        "Musical": "singer broadway dancer dance choir sings song songs musical",
        "Mystery": "sleuth puzzle mystery clues whodunit disappearance riddle secret secrets",
        "Romance": "romantic lovers heartbroken sweetheart love romance wedding heartbreak",
        "Sci-Fi": "android starship cyborg astronaut alien wormhole galaxy spaceship planet",
        "Thriller": "paranoid assassin spy spies hostage conspiracy kidnapping suspense",
        "War": "soldier battle platoon wartime war troops frontline",
        "Western": "gunslinger sheriff outlaw outlaws rancher ranch frontier cattle saloon cowboys",
    }.items()
}

_TITLE_ADJECTIVES = (
    "Silent", "Crimson", "Broken", "Hidden", "Last", "Golden", "Distant", "Burning", "Frozen", "Midnight",
    "Lonely", "Wild", "Electric", "Forgotten", "Savage", "Velvet", "Hollow", "Iron", "Quiet", "Bitter",
    "Restless", "Endless", "Scarlet", "Shattered", "Wandering", "Pale", "Lucky", "Final", "Secret", "Northern",
)  # fmt: skip
_TITLE_NOUNS = (
    "Harbor", "River", "Promise", "Horizon", "Kingdom", "Garden", "Signal", "Crossing", "Witness", "Highway",
    "Letter", "Orchard", "Empire", "Stranger", "Summer", "Echo", "Lantern", "Frontier", "Tide", "Mirror",
    "Storm", "Bridge", "Season", "Island", "Covenant", "Hour", "Shadow", "Road", "Winter", "Crown",
)  # fmt: skip
_TITLE_PLACES = (
    "Paris", "Tokyo", "Cairo", "Montana", "Brooklyn", "Havana", "Berlin", "Alaska", "Marrakesh", "Dublin",
    "Nevada", "Lisbon", "Saigon", "the Yukon", "Chicago", "Vienna", "Bombay", "the Valley", "the North", "Avalon",
)  # fmt: skip


@dataclass(frozen=True)
class _Catalog:
    genres: np.ndarray  # (n_items, 3) int8 genre indices, -1 padded; the first is the main genre
    popularity: np.ndarray  # (n_items,) float64 base popularity (log-normal)
    quality: np.ndarray  # (n_items,) float64, standard normal, correlated with popularity
    release: np.ndarray  # (n_items,) float64 seconds relative to START (negative: back catalogue)


@dataclass(frozen=True)
class _People:
    female: np.ndarray  # (n_users,) bool
    age: np.ndarray  # (n_users,) index into AGE_BRACKETS
    occupation: np.ndarray  # (n_users,) index into OCCUPATIONS
    taste: np.ndarray  # (n_users, n_genres) float64 rows summing to 1, noise already mixed in


@dataclass(frozen=True)
class _Events:
    user: np.ndarray  # int32 user index; grouped by user, chronological within a user
    item: np.ndarray  # int32 item index
    timestamp: np.ndarray  # int64 unix seconds
    rating: np.ndarray  # int8 1..5


def demo_size(scale: float) -> tuple[int, int, int]:
    """(n_users, n_items, n_interactions) for a scale factor: 1 -> (1000, 1500, 50000), 200 -> (100k, 50k, 10M)."""
    if not scale > 0:
        raise ValueError(f"demo scale must be positive, got {scale}")
    n_users = max(1, round(BASE_USERS * scale**USER_GROWTH))
    n_items = max(MIN_ITEMS, round(BASE_ITEMS * scale**ITEM_GROWTH))
    # Tiny scales: keep within what generate_demo accepts (5 events per user up to the per-user cap).
    n_interactions = round(BASE_INTERACTIONS * scale)
    n_interactions = min(max(n_interactions, MIN_HISTORY * n_users), n_users * (n_items // HISTORY_CAP_SHARE))
    return n_users, n_items, n_interactions


def generate_demo(seed: int = 7, n_users: int = 1000, n_items: int = 1500, n_interactions: int = 50_000) -> SourceData:
    """Generate the demo data set (see the module docstring). Same arguments, same frames and hashes."""
    _check_sizes(n_users, n_items, n_interactions)
    rng = np.random.default_rng(seed)
    # Draw order matters: the catalogue and its texts come first, so they depend only on (seed, n_items).
    catalog = _make_catalog(rng, n_items)
    items = _items_frame(rng, catalog)
    people = _make_people(rng, n_users)
    events = _make_events(rng, catalog, people, n_interactions)

    source = f"demo://seed={seed},users={n_users},items={n_items},interactions={n_interactions}"
    return SourceData(
        interactions=_raw_table(
            _interactions_frame(events, n_users, n_items), INTERACTION_COLUMNS, f"{source}#interactions"
        ),
        items=_raw_table(items, ITEM_COLUMNS, f"{source}#items"),
        users=_raw_table(_users_frame(people), USER_COLUMNS, f"{source}#users"),
    )


def _check_sizes(n_users: int, n_items: int, n_interactions: int) -> None:
    if n_users < 1 or n_items < MIN_ITEMS:
        raise ValueError(f"demo needs at least 1 user and {MIN_ITEMS} items, got {n_users} users, {n_items} items")
    low, high = MIN_HISTORY * n_users, n_users * (n_items // HISTORY_CAP_SHARE)
    if not low <= n_interactions <= high:
        raise ValueError(
            f"demo with {n_users} users and {n_items} items needs between {low} and {high} interactions "
            f"(at least {MIN_HISTORY} per user, at most 1/{HISTORY_CAP_SHARE} of the catalogue each), "
            f"got {n_interactions}"
        )


# --- items and users -------------------------------------------------------------------------------------------------


def _make_catalog(rng: np.random.Generator, n_items: int) -> _Catalog:
    n_genres = len(GENRES)
    # Up to three distinct genres per item, common genres more likely: Gumbel top-3 on the log shares.
    ranked = np.argsort(-(np.log(GENRE_SHARE) + rng.gumbel(size=(n_items, n_genres))), axis=1)[:, :3]
    count = rng.choice(3, size=n_items, p=GENRE_COUNT_PROBS) + 1
    genres = np.where(np.arange(3) < count[:, None], ranked, -1).astype(np.int8)

    log_pop = rng.normal(0.0, 1.3, n_items)
    popularity = np.exp(log_pop)
    quality = 0.5 * log_pop / 1.3 + math.sqrt(0.75) * rng.normal(size=n_items)

    # Release kind per item: back catalogue (before the span), new (during it) or cold (in its last 5%).
    n_cold = max(1, round(COLD_SHARE * n_items))
    n_new = round(NEW_SHARE * n_items)
    kind = rng.permutation(np.repeat([0, 1, 2], [n_items - n_new - n_cold, n_new, n_cold]))
    release = np.select(
        [kind == 0, kind == 1],
        [rng.uniform(-2 * SPAN, 0, n_items), rng.uniform(0, COLD_RELEASE[0] * SPAN, n_items)],
        rng.uniform(COLD_RELEASE[0] * SPAN, COLD_RELEASE[1] * SPAN, n_items),
    )
    return _Catalog(genres=genres, popularity=popularity, quality=quality, release=release)


def _make_people(rng: np.random.Generator, n_users: int) -> _People:
    n_genres = len(GENRES)
    female = rng.random(n_users) < FEMALE_SHARE
    age = rng.choice(len(AGE_BRACKETS), size=n_users, p=AGE_SHARE)
    occupation = rng.choice(len(OCCUPATIONS), size=n_users, p=OCCUPATION_SHARE)

    # Favourite genres: 2 or 3 per user, drawn without replacement from the age-adjusted genre mix.
    prior = np.tile(GENRE_SHARE, (len(AGE_BRACKETS), 1))
    for bracket, boosts in AGE_GENRE_BOOST.items():
        for genre, factor in boosts.items():
            prior[AGE_BRACKETS.index(bracket), GENRES.index(genre)] *= factor
    rank = np.argsort(np.argsort(-(np.log(prior[age]) + rng.gumbel(size=(n_users, n_genres))), axis=1), axis=1)
    n_favourites = rng.integers(2, 4, n_users)
    alpha = np.where(rank < n_favourites[:, None], FAVOURITE_ALPHA, OTHER_ALPHA)
    # Dirichlet with per-user concentrations: normalised gammas. Tiny gammas can underflow to 0, hence the epsilon.
    taste = rng.gamma(alpha) + 1e-12
    taste /= taste.sum(axis=1, keepdims=True)
    noise = np.where(female, TASTE_NOISE["F"], TASTE_NOISE["M"])[:, None]
    taste = (1 - noise) * taste + noise * GENRE_SHARE
    return _People(female=female, age=age, occupation=occupation, taste=taste)


def _titles(rng: np.random.Generator, n_items: int) -> list[str]:
    a = rng.choice(_TITLE_ADJECTIVES, n_items)
    n = rng.choice(_TITLE_NOUNS, n_items)
    n2 = rng.choice(_TITLE_NOUNS, n_items)
    p = rng.choice(_TITLE_PLACES, n_items)
    template = rng.integers(0, 5, n_items)
    forms = (
        lambda i: f"The {a[i]} {n[i]}",
        lambda i: f"{a[i]} {n[i]}",
        lambda i: f"{n[i]} of {p[i]}",
        lambda i: f"The {n[i]} and the {n2[i]}" if n[i] != n2[i] else f"The {a[i]} {n[i]} of {p[i]}",
        lambda i: f"{a[i]} Nights in {p[i]}",
    )
    titles = pd.Series([forms[t](i) for i, t in enumerate(template)])
    # Repeated titles become sequels ("The Silent Harbor 2"), so titles are unique.
    sequel = titles.groupby(titles).cumcount()
    return [t if k == 0 else f"{t} {k + 1}" for t, k in zip(titles, sequel)]


def _descriptions(rng: np.random.Generator, genres: np.ndarray) -> list[str]:
    picks = rng.integers(0, 4, size=(len(genres), 3))
    out = []
    for row, pick in zip(genres.tolist(), picks.tolist()):
        names = [GENRES[g] for g in row if g >= 0]
        character = _PHRASES[names[0]][0][pick[0]]
        plot = _PHRASES[names[min(1, len(names) - 1)]][1][pick[1]]
        setting = _PHRASES[names[2] if len(names) == 3 else names[0]][2][pick[2]]
        out.append(f"{character[0].upper()}{character[1:]} {plot} {setting}.")
    return out


def _items_frame(rng: np.random.Generator, catalog: _Catalog) -> pd.DataFrame:
    n_items = len(catalog.genres)
    categories = ["|".join(GENRES[g] for g in row if g >= 0) for row in catalog.genres.tolist()]
    return pd.DataFrame(
        {
            "item_id": _labels("i", n_items),
            "title": _titles(rng, n_items),
            "categories": categories,
            "description": _descriptions(rng, catalog.genres),
        },
        dtype="str",
    )


def _users_frame(people: _People) -> pd.DataFrame:
    n_users = len(people.female)
    return pd.DataFrame(
        {
            "user_id": _labels("u", n_users),
            "gender": np.where(people.female, "F", "M"),
            "age_bracket": np.asarray(AGE_BRACKETS)[people.age],
            "occupation": np.asarray(OCCUPATIONS)[people.occupation],
        },
        dtype="str",
    )


# --- events ----------------------------------------------------------------------------------------------------------


def _make_events(rng: np.random.Generator, catalog: _Catalog, people: _People, n_interactions: int) -> _Events:
    n_users, n_items = len(people.female), len(catalog.genres)
    lengths = _history_lengths(rng, n_users, n_interactions, n_items // HISTORY_CAP_SHARE)
    user = np.repeat(np.arange(n_users, dtype=np.int32), lengths)
    first = np.cumsum(lengths) - lengths  # slot of each user's first event
    offset = _times(rng, user, lengths)
    bucket = (offset * N_BUCKETS // SPAN).astype(np.int64)

    # Genre of each event: a fresh draw from the user's taste, or (P_STAY) the genre of the user's previous event.
    fresh = _draw_rows(rng, np.cumsum(people.taste, axis=1), user)
    keep = rng.random(len(user)) < P_STAY
    keep[first] = False  # a history starts with a fresh genre, so runs never cross users
    run_start = np.maximum.accumulate(np.where(keep, 0, np.arange(len(user))))
    genre = fresh[run_start]

    sampler = _ItemSampler(catalog)
    item = sampler.draw(rng, bucket, genre)
    unique = _redraw_repeats(rng, sampler, user, bucket, genre, item, n_items)

    rating = _ratings(rng, catalog, people, user, item)
    return _Events(user=user[unique], item=item[unique], timestamp=START + offset[unique], rating=rating[unique])


def _history_lengths(rng: np.random.Generator, n_users: int, total: int, cap: int) -> np.ndarray:
    """Heavy-tailed lengths in [MIN_HISTORY, cap] summing exactly to `total`."""
    weight = rng.lognormal(0.0, 1.1, n_users)
    target, room = total - MIN_HISTORY * n_users, cap - MIN_HISTORY
    extra = np.zeros(n_users)
    # Share the events above the minimum by weight; users that hit the cap hand their excess to the others.
    while (open_ := extra < room).any() and target - extra.sum() > 0.5:
        extra[open_] += (target - extra.sum()) * weight[open_] / weight[open_].sum()
        extra = np.minimum(extra, room)
    lengths = np.floor(extra).astype(np.int64)
    # Hand the rounding remainder to the largest fractional parts (capped users have none).
    short = int(target - lengths.sum())
    lengths[np.argsort(lengths - extra, kind="stable")[:short]] += 1
    return lengths + MIN_HISTORY


def _times(rng: np.random.Generator, user: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Seconds since START per event: inside the user's activity window, strictly increasing within a user."""
    n_users = len(lengths)
    usable = SPAN - DAY  # room for the strictly-increasing nudge below
    end = np.where(rng.random(n_users) < STILL_ACTIVE_SHARE, 1.0, rng.uniform(0.1, 1.0, n_users))
    width = 0.1 + 0.9 * rng.beta(1.0, 1.5, n_users)
    begin = np.maximum(0.0, end - width)
    # Sorted uniforms per user: adding the user index keeps users apart, so one global sort does all users at once.
    frac = np.sort(user + rng.random(len(user))) - user
    seconds = ((begin[user] + frac * (end - begin)[user]) * usable).astype(np.int64)
    # Make ties strictly increasing: t[j] >= t[j-1] + 1 within a user, via a running max of t[j] - j per user.
    slot = np.arange(len(user), dtype=np.int64)
    apart = user.astype(np.int64) << 42  # larger than any t - j, so the running max never carries across users
    return np.maximum.accumulate(seconds - slot + apart) - apart + slot


def _draw_rows(rng: np.random.Generator, cdf_rows: np.ndarray, row: np.ndarray) -> np.ndarray:
    """One categorical draw per entry of `row` from that row's CDF, for all rows in one searchsorted."""
    n_rows, width = cdf_rows.shape
    cdf = cdf_rows / cdf_rows[:, -1:]
    # Row r's CDF shifted into (r, r + 1]: one sorted array. The 1 - 1e-9 keeps r + u below r + 1 despite rounding.
    flat = (cdf + np.arange(n_rows)[:, None]).ravel()
    pos = np.searchsorted(flat, row + rng.random(len(row)) * (1 - 1e-9), side="right")
    return (pos - row.astype(np.int64) * width).astype(np.int16)


class _ItemSampler:
    """Draws an item of a genre by its popularity at a time bucket (release boost, decay, not before release).

    Segment s < n_genres holds the items of genre s; the last segment holds all items (the fallback). For every
    (bucket, segment) the normalized CDF of item weights is stored shifted by the segment's key
    `bucket * n_segments + segment`, so all of them form one sorted array and one searchsorted serves every event.
    """

    def __init__(self, catalog: _Catalog):
        n_items, n_genres = len(catalog.genres), len(GENRES)
        self.n_segments = n_genres + 1
        members = [np.flatnonzero((catalog.genres == g).any(axis=1)) for g in range(n_genres)]
        members.append(np.arange(n_items))
        self.member = np.concatenate(members).astype(np.int32)
        segment = np.repeat(np.arange(self.n_segments), [len(m) for m in members])
        starts = np.cumsum([0] + [len(m) for m in members])[:-1]

        bucket_start = np.arange(N_BUCKETS)[:, None] * (SPAN / N_BUCKETS)
        age_days = (bucket_start - catalog.release) / DAY
        boost = FLOOR + (HYPE - FLOOR) * np.exp(-np.maximum(age_days, 0) / HYPE_DAYS)
        # Released by the start of the bucket, so every event comes after its item's release.
        weight = np.where(age_days >= 0, catalog.popularity * boost, 0.0)[:, self.member]  # (buckets, members)

        cum = np.cumsum(weight, axis=1)
        before = np.where(starts > 0, cum[:, np.maximum(starts - 1, 0)], 0.0)  # mass before each segment
        total = np.add.reduceat(weight, starts, axis=1)
        self.empty = total <= 0  # (buckets, segments): no item of the genre released yet
        with np.errstate(invalid="ignore", divide="ignore"):
            within = (cum - before[:, segment]) / total[:, segment]
        within[:, np.append(starts[1:], len(segment)) - 1] = 1.0  # exact segment ends keep the array sorted
        within[self.empty[:, segment]] = 1.0
        keys = np.arange(N_BUCKETS)[:, None] * self.n_segments + segment
        self.flat = (keys + np.clip(within, 0.0, 1.0)).ravel()

    def draw(self, rng: np.random.Generator, bucket: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """One item per event; a genre with no released item yet falls back to all items."""
        segment = np.where(self.empty[bucket, segment], self.n_segments - 1, segment)
        key = bucket * self.n_segments + segment
        pos = np.searchsorted(self.flat, key + rng.random(len(key)) * (1 - 1e-9), side="right")
        return self.member[pos - bucket * len(self.member)]


def _redraw_repeats(
    rng: np.random.Generator,
    sampler: _ItemSampler,
    user: np.ndarray,
    bucket: np.ndarray,
    genre: np.ndarray,
    item: np.ndarray,
    n_items: int,
    rounds: int = 12,
    genre_rounds: int = 8,
) -> np.ndarray:
    """Redraw (in place) events that repeat a (user, item) pair; returns the mask of events to keep.

    The first occurrence stays. Repeats are redrawn from the same genre and time for `genre_rounds` rounds, then
    from all items; whatever still repeats after `rounds` is dropped (rare: heavy users of small genres).
    """
    pair = user.astype(np.int64) * n_items + item
    kept, first = np.unique(pair, return_index=True)  # sorted distinct pairs, and where each first occurs
    repeat = np.ones(len(pair), dtype=bool)
    repeat[first] = False
    added = np.empty(0, dtype=np.int64)  # pairs accepted in later rounds (small, so re-sorting it is cheap)
    todo = np.flatnonzero(repeat)
    for round_ in range(rounds):
        if len(todo) == 0:
            break
        segment = genre[todo] if round_ < genre_rounds else np.full(len(todo), len(GENRES))
        item[todo] = sampler.draw(rng, bucket[todo], segment)
        new = user[todo].astype(np.int64) * n_items + item[todo]
        clash = _contains(kept, new) | _contains(added, new)
        _, first_new = np.unique(new, return_index=True)
        fresh = np.zeros(len(new), dtype=bool)
        fresh[first_new] = True
        fresh &= ~clash
        added = np.sort(np.concatenate([added, new[fresh]]))
        todo = todo[~fresh]
    keep = np.ones(len(pair), dtype=bool)
    keep[todo] = False
    return keep


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    if len(sorted_values) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def _ratings(
    rng: np.random.Generator, catalog: _Catalog, people: _People, user: np.ndarray, item: np.ndarray
) -> np.ndarray:
    """1..5: higher when the item's genres match the user's taste (relative to their favourite) and for quality."""
    n_genres = len(GENRES)
    taste = people.taste.ravel()
    top = people.taste.max(axis=1)
    match = np.zeros(len(user))
    count = np.zeros(len(user))
    for k in range(3):
        g = catalog.genres[item, k]
        has = g >= 0
        match += np.where(has, taste[user.astype(np.int64) * n_genres + np.maximum(g, 0)], 0.0)
        count += has
    match = match / count / top[user]
    score = 2.1 + 2.6 * match + 0.5 * catalog.quality[item] + rng.normal(0.0, 0.75, len(user))
    return np.clip(np.rint(score), 1, 5).astype(np.int8)


# --- frames ----------------------------------------------------------------------------------------------------------


def _labels(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, n + 1)]


def _take_strings(labels: list[str], index: np.ndarray) -> pd.Series:
    """labels[index] as a pandas string column, via Arrow (fast and compact for millions of rows)."""
    return pd.Series(pd.array(pa.array(labels).take(pa.array(index)), dtype="str"))


def _interactions_frame(events: _Events, n_users: int, n_items: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": _take_strings(_labels("u", n_users), events.user),
            "item_id": _take_strings(_labels("i", n_items), events.item),
            "timestamp": pd.Series(pd.array(pc.cast(pa.array(events.timestamp), pa.string()), dtype="str")),
            "rating": _take_strings(["1", "2", "3", "4", "5"], events.rating - 1),
        }
    )


def _raw_table(frame: pd.DataFrame, columns: list[str], source_file: str) -> RawTable:
    frame = frame[columns].assign(source_row=np.arange(1, len(frame) + 1, dtype=np.int64))
    frame[ERROR_COLUMN] = pd.Series([None] * len(frame), dtype=object)
    return RawTable(frame=frame, source_file=source_file, sha256=sha256_frame(frame))
