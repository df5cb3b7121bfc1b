"""What every data source hands to ingestion: three tables of *unvalidated* rows plus where they came from.

Loaders only read and decode. They never coerce types and never drop a row: a line that cannot be decoded or split
keeps its place with the problem written in `_error`, so validation can send it to `raw.rejected_rows` and the
counts always add up (read = accepted + rejected). A file that cannot be read at all raises `SourceError`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# Canonical column names. Values in a RawTable frame are str or None (pandas object/string dtype), except
# `source_row` (int, 1-based line/record number in the source file: the tie-break order for equal timestamps).
INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "rating"]  # rating may be None (implicit feedback)
ITEM_COLUMNS = ["item_id", "title", "categories", "description"]  # categories joined by "|"; description may be None
USER_COLUMNS = ["user_id", "gender", "age_bracket", "occupation"]  # all but user_id may be None
ERROR_COLUMN = "_error"  # None, or why the loader could not read this row (e.g. "undecodable text: not latin-1")

# Age brackets shared by every source (MovieLens-1M's buckets), so fairness groups mean the same thing everywhere.
AGE_BRACKETS = ["under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]


def age_to_bracket(age: int) -> str:
    """Map an age in years to the shared bracket label."""
    for upper, label in ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55")):
        if age < upper:
            return label
    return "56+"


class SourceError(Exception):
    """A whole file cannot be used. The message names the file, the problem and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{path}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class RawTable:
    """One entity's rows as read from one source file (or a generator), before validation."""

    frame: pd.DataFrame  # canonical columns + "source_row" + ERROR_COLUMN
    source_file: str  # path, or "demo://seed=..." for generated data
    sha256: str  # of the file bytes (or of the generated content): identifies the batch
    rating_range: tuple[float, float] | None = None  # valid ratings [min, max] the source declares; None: no check

    @property
    def batch_id(self) -> str:
        return self.sha256[:16]


@dataclass(frozen=True)
class SourceData:
    interactions: RawTable
    items: RawTable
    users: RawTable | None  # sources without user attributes give None


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_frame(frame: pd.DataFrame) -> str:
    """Content hash of a generated frame (stable across runs for the same content)."""
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes() + ",".join(frame.columns).encode()).hexdigest()


def empty_errors(n: int) -> list[None]:
    return [None] * n
