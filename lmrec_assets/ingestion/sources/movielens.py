"""MovieLens 100K, 1M and latest-small in their original GroupLens layouts (read + decode only).

- 100K: u.data (TAB), u.item and u.user ('|'), latin-1.
- 1M: ratings.dat, movies.dat, users.dat ('::'), latin-1; ages and occupations are codes.
- latest-small: ratings.csv and movies.csv, UTF-8, CRLF, RFC-4180 quoted titles; no users file.

MovieLens has no item descriptions; the title already carries the year, so description stays None rather than
repeating it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from lmrec_assets.ingestion.sources.base import (
    AGE_BRACKETS,
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    USER_COLUMNS,
    RawTable,
    SourceData,
    SourceError,
    age_to_bracket,
)
from lmrec_assets.ingestion.sources.files import (
    Rows,
    make_raw,
    read_text_lines,
    require_columns,
    rows_to_frame,
    split_csv,
    split_plain,
)

# Per variant: the folder inside the GroupLens zip, the zip URL, the files the loader needs, and the zip's sha256.
# The sha256 values are None because they could not be fetched and checked when this was written (no network);
# download_movielens verifies a zip only against a known value and never against a guessed one.
_VARIANTS: dict[str, tuple[str, str, tuple[str, ...], str | None]] = {
    "movielens-100k": (
        "ml-100k", "https://files.grouplens.org/datasets/movielens/ml-100k.zip", ("u.data", "u.item", "u.user"), None,
    ),
    "movielens-1m": (
        "ml-1m", "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        ("ratings.dat", "movies.dat", "users.dat"), None,
    ),
    "movielens-latest-small": (
        "ml-latest-small", "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        ("ratings.csv", "movies.csv"), None,
    ),
}

# u.genre order: the 19 flags at the end of each u.item line. "unknown" is the absence of a genre, not a category.
_ML100K_GENRES = [
    None, "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]

# ML-1M README: users.dat age and occupation codes.
_ML1M_AGES = dict(zip(["1", "18", "25", "35", "45", "50", "56"], AGE_BRACKETS))
_ML1M_OCCUPATIONS = {str(code): name for code, name in enumerate([
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
])}


def _missing_fix(variant: str, folder: Path) -> str:
    zip_folder, url, needed, _ = _VARIANTS[variant]
    fix = (
        f"set LMREC_DATA_PATH (the dataset path) to the folder containing {', '.join(needed)} "
        f"(unzipped from {url}), or fetch it with download_movielens({variant!r}, dest)"
    )
    if (folder / zip_folder / needed[0]).is_file():
        fix += f"; {folder / zip_folder} has them"
    return fix


def _column(rows: Rows, index: int) -> list[str | None]:
    return [fields[index] if len(fields) > index else None for fields in rows.fields]


def _plain(variant: str, folder: Path, name: str, delimiter: str, n_fields: int) -> tuple[Rows, str, str]:
    path = folder / name
    text = read_text_lines(path, "latin-1", _missing_fix(variant, folder))
    return split_plain(text, path, delimiter, n_fields), str(path), text.sha256


def _interactions_plain(variant: str, folder: Path, name: str, delimiter: str) -> RawTable:
    rows, path, sha = _plain(variant, folder, name, delimiter, 4)
    values = {column: _column(rows, i) for i, column in enumerate(["user_id", "item_id", "rating", "timestamp"])}
    return make_raw(values, INTERACTION_COLUMNS, rows.source_rows, rows.errors, path, sha)


def _load_100k(folder: Path) -> SourceData:
    variant = "movielens-100k"
    interactions = _interactions_plain(variant, folder, "u.data", "\t")
    items, item_path, item_sha = _plain(variant, folder, "u.item", "|", 24)
    categories: list[str | None] = []
    for i, fields in enumerate(items.fields):
        flags = fields[5:24]
        if items.errors[i] is None and any(flag not in ("0", "1") for flag in flags):
            items.errors[i] = f"genre flags must be 0 or 1, got {'|'.join(flags)}"
        categories.append(
            "|".join(g for g, flag in zip(_ML100K_GENRES, flags) if flag == "1" and g) if len(flags) == 19 else None
        )
    item_table = make_raw(
        {"item_id": _column(items, 0), "title": _column(items, 1), "categories": categories},
        ITEM_COLUMNS, items.source_rows, items.errors, item_path, item_sha,
    )

    users, user_path, user_sha = _plain(variant, folder, "u.user", "|", 5)
    brackets: list[str | None] = []
    for i, age in enumerate(_column(users, 1)):
        if age is not None and age.strip().isdigit():
            brackets.append(age_to_bracket(int(age)))
        else:
            brackets.append(None)
            if users.errors[i] is None:
                users.errors[i] = f"age is not a whole number of years: {age!r}"
    user_table = make_raw(
        {"user_id": _column(users, 0), "gender": _column(users, 2), "age_bracket": brackets,
         "occupation": _column(users, 3)},
        USER_COLUMNS, users.source_rows, users.errors, user_path, user_sha,
    )
    return SourceData(interactions, item_table, user_table)


def _decode_code(users: Rows, index: int, codes: dict[str, str], what: str) -> list[str | None]:
    """Map a users.dat code to its label; an unknown code marks the row, since the label cannot be decoded."""
    labels: list[str | None] = []
    for i, code in enumerate(_column(users, index)):
        labels.append(codes.get(code or ""))
        if labels[-1] is None and users.errors[i] is None:
            users.errors[i] = f"unknown {what} code {code!r} (expected one of {', '.join(codes)})"
    return labels


def _load_1m(folder: Path) -> SourceData:
    variant = "movielens-1m"
    interactions = _interactions_plain(variant, folder, "ratings.dat", "::")
    items, item_path, item_sha = _plain(variant, folder, "movies.dat", "::", 3)
    item_table = make_raw(
        {"item_id": _column(items, 0), "title": _column(items, 1), "categories": _column(items, 2)},
        ITEM_COLUMNS, items.source_rows, items.errors, item_path, item_sha,
    )
    users, user_path, user_sha = _plain(variant, folder, "users.dat", "::", 5)
    user_table = make_raw(
        {"user_id": _column(users, 0), "gender": _column(users, 1),
         "age_bracket": _decode_code(users, 2, _ML1M_AGES, "age"),
         "occupation": _decode_code(users, 3, _ML1M_OCCUPATIONS, "occupation")},
        USER_COLUMNS, users.source_rows, users.errors, user_path, user_sha,
    )
    return SourceData(interactions, item_table, user_table)


def _csv(variant: str, folder: Path, name: str, wanted: dict[str, str]) -> tuple[dict[str, list], Rows, str, str]:
    path = folder / name
    text = read_text_lines(path, "utf-8", _missing_fix(variant, folder))
    header, rows = split_csv(text, path, ",", quoted=True)
    require_columns(header, wanted, list(wanted), path, ",", f"use the original {name} from the {variant} zip")
    frame = rows_to_frame(rows, header)
    return {canonical: frame[column].tolist() for canonical, column in wanted.items()}, rows, str(path), text.sha256


def _load_latest_small(folder: Path) -> SourceData:
    variant = "movielens-latest-small"
    values, rows, path, sha = _csv(
        variant, folder, "ratings.csv",
        {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"},
    )
    interactions = make_raw(values, INTERACTION_COLUMNS, rows.source_rows, rows.errors, path, sha)
    values, rows, path, sha = _csv(
        variant, folder, "movies.csv", {"item_id": "movieId", "title": "title", "categories": "genres"}
    )
    values["categories"] = ["" if g == "(no genres listed)" else g for g in values["categories"]]
    items = make_raw(values, ITEM_COLUMNS, rows.source_rows, rows.errors, path, sha)
    return SourceData(interactions, items, None)


def load_movielens(variant: str, path: str | Path) -> SourceData:
    """Read one MovieLens variant from the folder that holds its files (as unzipped from GroupLens)."""
    loaders = {"movielens-100k": _load_100k, "movielens-1m": _load_1m, "movielens-latest-small": _load_latest_small}
    if variant not in loaders:
        raise ValueError(f"unknown MovieLens variant {variant!r}; expected one of {sorted(loaders)}")
    return loaders[variant](Path(path))


def download_movielens(variant: str, dest: str | Path) -> Path:
    """Download and unzip a variant from files.grouplens.org into dest; returns the folder to pass to load_movielens.

    Does nothing when the files are already there. Mind the licences in each zip's README (no redistribution of
    100K/1M).
    """
    if variant not in _VARIANTS:
        raise ValueError(f"unknown MovieLens variant {variant!r}; expected one of {sorted(_VARIANTS)}")
    zip_folder, url, needed, expected_sha = _VARIANTS[variant]
    dest = Path(dest)
    target = dest / zip_folder
    if all((target / name).is_file() for name in needed):
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        zip_path = Path(tmp) / f"{zip_folder}.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(zip_path, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise SourceError(
                url, f"download failed ({exc})",
                f"check the network connection, or download the zip by hand and unzip it into {dest}",
            ) from exc
        if expected_sha is not None:
            actual = hashlib.sha256(zip_path.read_bytes()).hexdigest()
            if actual != expected_sha:
                raise SourceError(
                    url, f"checksum mismatch (expected sha256 {expected_sha}, got {actual})",
                    "retry the download; if it keeps failing, GroupLens changed the file: check it and update the pin",
                )
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(dest)  # zipfile drops absolute paths and '..' from member names
        except zipfile.BadZipFile as exc:
            raise SourceError(url, f"the download is not a zip file ({exc})", "retry the download") from exc
    return target
