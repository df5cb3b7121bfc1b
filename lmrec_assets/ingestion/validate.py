"""Turn a loader's raw rows into typed, accepted rows plus rejected rows with a reason each.

Every row read ends up in exactly one of the two frames (n_read == accepted + rejected, asserted). A row is rejected
for the first failing check, in the order of REASONS; a loader error (`_error`, e.g. "undecodable text (expected
latin-1)") comes before all of them and is passed through as the reason verbatim.

Ids are kept as the source gave them, only stripped of surrounding whitespace ("0042" stays "0042"), so they join
across files exactly. All checks are vectorized; only the JSON `record` of rejected rows is built row by row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lmrec_assets.ingestion.sources.base import (
    ERROR_COLUMN,
    RawTable,
)

# Exact reason strings (what rejected.reason holds) -> what they mean; "[min, max]" stands for the configured range,
# e.g. "rating outside [1, 5]". Loader errors are not listed: they are free text from the loader and pass through
# unchanged (e.g. "field larger than 131072 characters", "expected 4 comma-separated fields, got 3").
REASONS: dict[str, str] = {
    "missing user_id": "user_id is absent or blank",
    "missing item_id": "item_id is absent or blank",
    "missing title": "the item's title is absent or blank",
    "unparseable timestamp": "timestamp is absent, or neither unix seconds (integer or decimal) nor an ISO-8601 "
    "date/datetime (a datetime without offset is read as UTC)",
    "timestamp out of range": "timestamp is before 1970-01-01 or more than one day after validation time "
    "(milliseconds instead of seconds land here)",
    "unparseable rating": "rating is present but not a finite number (an absent rating is fine: implicit feedback)",
    "rating outside [min, max]": "rating is a number outside the source's declared range, bounds included (checked "
    "only when one is set: FilesSpec.rating_range)",
    "unknown item_id": "the interaction's item_id is not among the accepted items",
    "already loaded": "an incremental (landing folder) interaction identical in user_id, item_id and timestamp to one "
    "already in the warehouse: appending it again would duplicate it",
    "unknown user_id": "the interaction's user_id is not among the accepted users (checked only when the source "
    "has a users table)",
    "exact duplicate row": "an earlier accepted interaction has the same user_id, item_id, timestamp and rating",
    "duplicate item_id": "an earlier accepted row has the same item_id; the first one is kept",
    "duplicate user_id": "an earlier accepted row has the same user_id; the first one is kept",
}

REJECTED_COLUMNS = ["entity", "source_file", "batch_id", "source_row", "reason", "record"]
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass
class Validated:
    accepted: pd.DataFrame  # typed canonical columns + source_row, in source order
    rejected: pd.DataFrame  # REJECTED_COLUMNS
    n_read: int


class _Verdicts:
    """The first rejection reason of each row; rows without one are still accepted."""

    def __init__(self, raw: RawTable):
        errors = raw.frame[ERROR_COLUMN]
        # copies: pandas may hand out read-only views, and both arrays are written below
        self.reason = errors.astype(object).where(errors.notna(), None).to_numpy(dtype=object, copy=True)
        self.open = errors.isna().to_numpy(dtype=bool, copy=True)

    def reject(self, mask: np.ndarray | pd.Series, reason: str) -> None:
        hit = self.open & np.asarray(mask, dtype=bool)
        self.reason[hit] = reason
        self.open &= ~hit


def _text(series: pd.Series) -> pd.Series:
    """Values as stripped strings (pandas string dtype); absent or blank -> NA."""
    stripped = series.astype("string").str.strip()
    return stripped.where(stripped != "")


def _objects(series: pd.Series) -> pd.Series:
    """A string column as plain Python str / None (what the rest of the pipeline and DuckDB expect)."""
    return series.astype(object).where(series.notna(), None)


def _as_index(ids: set[str] | pd.Index) -> pd.Index:
    return ids if isinstance(ids, pd.Index) else pd.Index(list(ids), dtype=object)


def _json_value(value: object) -> object:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _finish(entity: str, raw: RawTable, verdicts: _Verdicts, accepted: pd.DataFrame) -> Validated:
    """Split into accepted / rejected frames and check that every row landed in exactly one of them."""
    frame = raw.frame
    rejected_rows = ~verdicts.open
    raw_columns = [c for c in frame.columns if c not in ("source_row", ERROR_COLUMN)]
    bad = frame.loc[rejected_rows, raw_columns]
    records = [
        json.dumps({c: _json_value(v) for c, v in zip(raw_columns, values)}, ensure_ascii=False)
        for values in bad.itertuples(index=False, name=None)
    ]
    rejected = pd.DataFrame(
        {
            "entity": pd.Series([entity] * len(bad), dtype=object),
            "source_file": pd.Series([raw.source_file] * len(bad), dtype=object),
            "batch_id": pd.Series([raw.batch_id] * len(bad), dtype=object),
            "source_row": frame["source_row"].to_numpy(dtype=np.int64)[rejected_rows],
            "reason": pd.Series(verdicts.reason[rejected_rows], dtype=object),
            "record": pd.Series(records, dtype=object),
        },
        columns=REJECTED_COLUMNS,
    )
    accepted = accepted.loc[verdicts.open].reset_index(drop=True)
    accepted["source_row"] = frame["source_row"].to_numpy(dtype=np.int64)[verdicts.open]
    validated = Validated(accepted, rejected, len(frame))
    assert validated.n_read == len(accepted) + len(rejected), "validation lost or duplicated rows"
    return validated


def _numbers(text: pd.Series) -> np.ndarray:
    """Strings as float64, NaN where absent or not a number."""
    try:
        # Arrow's cast is ~30x faster than pd.to_numeric, but all-or-nothing: fall back when some value is no number.
        return pc.cast(pa.array(text.array), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return pd.to_numeric(text, errors="coerce").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _number_text(value: float) -> str:
    """A range bound as written in a reason: 1.0 -> "1", 0.5 -> "0.5"."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_timestamps(text: pd.Series) -> np.ndarray:
    """Unix seconds as float64 (NaN where unparseable): numbers first, then ISO-8601 for the rest."""
    seconds = _numbers(text).copy()
    seconds[~np.isfinite(seconds)] = np.nan  # "inf" parses as a number but is no time
    try_iso = np.isnan(seconds) & text.notna().to_numpy()
    if try_iso.any():
        parsed = pd.to_datetime(text[try_iso], format="ISO8601", utc=True, errors="coerce")
        seconds[try_iso] = ((parsed - _EPOCH) // pd.Timedelta(1, "s")).to_numpy(dtype="float64", na_value=np.nan)
    return seconds


def validate_interactions(
    raw: RawTable, known_items: set[str] | pd.Index, known_users: set[str] | pd.Index | None
) -> Validated:
    frame = raw.frame
    verdicts = _Verdicts(raw)
    user = _text(frame["user_id"])
    item = _text(frame["item_id"])
    verdicts.reject(user.isna(), "missing user_id")
    verdicts.reject(item.isna(), "missing item_id")

    seconds = _parse_timestamps(_text(frame["timestamp"]))
    verdicts.reject(np.isnan(seconds), "unparseable timestamp")
    latest = time.time() + 86_400
    with np.errstate(invalid="ignore"):  # NaN comparisons: those rows are already rejected
        verdicts.reject((seconds < 0) | (seconds > latest), "timestamp out of range")

    rating_text = _text(frame["rating"])
    rating = _numbers(rating_text)
    verdicts.reject(rating_text.notna().to_numpy() & ~np.isfinite(rating), "unparseable rating")
    if raw.rating_range is not None:
        low, high = raw.rating_range
        with np.errstate(invalid="ignore"):  # NaN (absent or unparseable) compares False: not rejected here
            outside = (rating < low) | (rating > high)
        verdicts.reject(outside, f"rating outside [{_number_text(low)}, {_number_text(high)}]")

    verdicts.reject(~item.isin(_as_index(known_items)).to_numpy(dtype=bool), "unknown item_id")
    if known_users is not None:
        verdicts.reject(~user.isin(_as_index(known_users)).to_numpy(dtype=bool), "unknown user_id")

    timestamp = np.where(verdicts.open, np.floor(np.nan_to_num(seconds)), 0).astype(np.int64)
    accepted = pd.DataFrame(
        {"user_id": _objects(user), "item_id": _objects(item), "timestamp": timestamp, "rating": rating}
    )
    _first_only(verdicts, accepted, "exact duplicate row")
    return _finish("interactions", raw, verdicts, accepted)


def _first_only(verdicts: _Verdicts, keys: pd.Series | pd.DataFrame, reason: str) -> None:
    """Reject later rows whose key repeats an earlier row's key. Only rows that passed every other check take
    part, so a rejected row never hides a good one."""
    candidates = np.flatnonzero(verdicts.open)
    repeated = keys.iloc[candidates].duplicated(keep="first").to_numpy()
    duplicate = np.zeros(len(keys), dtype=bool)
    duplicate[candidates[repeated]] = True
    verdicts.reject(duplicate, reason)


def validate_items(raw: RawTable) -> Validated:
    frame = raw.frame
    verdicts = _Verdicts(raw)
    item = _text(frame["item_id"])
    title = _text(frame["title"])
    verdicts.reject(item.isna(), "missing item_id")
    verdicts.reject(title.isna(), "missing title")
    _first_only(verdicts, item, "duplicate item_id")
    accepted = pd.DataFrame(
        {
            "item_id": _objects(item),
            "title": _objects(title),
            "categories": _objects(_text(frame["categories"]).fillna("")),
            "description": _objects(_text(frame["description"])),
        }
    )
    return _finish("items", raw, verdicts, accepted)


def validate_users(raw: RawTable) -> Validated:
    frame = raw.frame
    verdicts = _Verdicts(raw)
    user = _text(frame["user_id"])
    verdicts.reject(user.isna(), "missing user_id")
    _first_only(verdicts, user, "duplicate user_id")
    accepted = pd.DataFrame(
        {
            "user_id": _objects(user),
            "gender": _objects(_text(frame["gender"])),
            "age_bracket": _objects(_text(frame["age_bracket"])),
            "occupation": _objects(_text(frame["occupation"])),
        }
    )
    return _finish("users", raw, verdicts, accepted)
