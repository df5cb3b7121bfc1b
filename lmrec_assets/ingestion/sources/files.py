"""The generic source: a data team points lmrec at its own interaction / item / user exports.

Formats come from the file extension: .csv, .tsv, .jsonl (one JSON object per line) and .parquet. Interactions may
also be a sequence file ("user item item item ..." per line, oldest first), the layout of the Amazon / P5 benchmarks.

This module also holds the text readers that the MovieLens loader shares: files are read as bytes and split into
lines here, so that one undecodable or mis-split line becomes one row with `_error` set instead of killing the file
or vanishing (pandas' on_bad_lines would silently drop it).
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmrec_assets.ingestion.sources.base import (
    ERROR_COLUMN,
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    USER_COLUMNS,
    RawTable,
    SourceData,
    SourceError,
    sha256_file,
)

# Bytes that never occur in latin-1 *text*: NUL and the C1 control codes. Every byte "decodes" as latin-1, so this
# is the only way to notice a line that is really UTF-16, Windows-1252 curly quotes or binary garbage.
_NOT_LATIN1_TEXT = re.compile(rb"[\x00\x80-\x9f]")

# Delimiters looked for when a file splits into a single field per line (used only to word the error message).
_DELIMITER_NAMES = {"\t": "TAB", ",": "comma", "|": "'|'", ";": "';'", "::": "'::'", " ": "space"}


@dataclass(frozen=True)
class TextLines:
    """A text file's physical lines, decoded one by one."""

    lines: list[str]  # without the line ending; an undecodable line holds its text decoded with U+FFFD replacements
    errors: list[str | None]  # per line: None, or why the line could not be decoded
    sha256: str  # of the file bytes


def read_text_lines(path: str | Path, encoding: str, missing_fix: str) -> TextLines:
    """Read a text file as bytes and decode it line by line, so a bad line costs one row and not the file."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(path, "file not found", missing_fix)
    data = path.read_bytes()
    if not data.strip():
        raise SourceError(path, "file is empty", "re-export the file, or point the source at a copy that has rows")
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":  # a final newline ends the last line; it does not start another one
        raw_lines.pop()
    undecodable = f"undecodable text (expected {encoding})"
    check_latin1 = encoding == "latin-1" and _NOT_LATIN1_TEXT.search(data) is not None
    try:
        if check_latin1:
            raise UnicodeError  # some line holds non-text bytes: go line by line to find which
        lines = data.decode(encoding).split("\n")  # fast path: the whole file decodes ("\n" is one byte in both)
        if lines[-1] == "":
            lines.pop()
        errors: list[str | None] = [None] * len(lines)
    except UnicodeError:
        lines, errors = [], []
        for raw in raw_lines:
            bad = check_latin1 and _NOT_LATIN1_TEXT.search(raw) is not None
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                bad = True
                text = raw.decode(encoding, errors="replace")
            lines.append(text)
            errors.append(undecodable if bad else None)
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]  # CRLF files (ml-latest-small)
    if lines and lines[0].startswith("\ufeff"):  # byte-order mark written by some spreadsheet exports
        lines[0] = lines[0][1:]
    return TextLines(lines, errors, hashlib.sha256(data).hexdigest())


def _delimiter_hint(line: str, expected: str) -> str:
    """Name the delimiter a one-field line seems to use instead of the expected one."""
    expected_name = _DELIMITER_NAMES.get(expected, repr(expected))
    for delimiter, name in _DELIMITER_NAMES.items():
        if delimiter != expected and delimiter in line:
            return f"; it looks like it is not {expected_name}-separated (found {name} in the line)"
    return ""


@dataclass(frozen=True)
class Rows:
    """Records split into fields, before they are given canonical names."""

    fields: list[list[str]]  # one list per record (shorter or longer than expected when `errors` says so)
    source_rows: list[int]  # 1-based line number where each record starts
    errors: list[str | None]


def split_plain(text: TextLines, path: str | Path, delimiter: str, n_fields: int) -> Rows:
    """Split lines on a delimiter that is never quoted (MovieLens .dat / u.* files). Blank lines hold no record."""
    name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    fields, source_rows, errors = [], [], []
    n_right = 0
    for number, (line, error) in enumerate(zip(text.lines, text.errors), start=1):
        if error is None and not line.strip():
            continue
        parts = line.split(delimiter)
        if error is None and len(parts) != n_fields:
            error = f"expected {n_fields} {name}-separated fields, got {len(parts)}"
        n_right += len(parts) == n_fields
        fields.append(parts)
        source_rows.append(number)
        errors.append(error)
    if fields and n_right == 0:
        # Not one line splits right: the file has another layout, which is a whole-file problem.
        hint = _delimiter_hint(text.lines[source_rows[0] - 1], delimiter) if all(len(f) == 1 for f in fields) else ""
        raise SourceError(
            path,
            f"no line has the expected {n_fields} {name}-separated fields (line {source_rows[0]} has "
            f"{len(fields[0])}){hint}",
            f"use the original file, which is {name}-separated with {n_fields} fields per line, or load a converted "
            "file through the 'files' source (FilesSpec), which reads .csv/.tsv/.jsonl/.parquet",
        )
    return Rows(fields, source_rows, errors)


def split_csv(text: TextLines, path: str | Path, delimiter: str, quoted: bool) -> tuple[list[str], Rows]:
    """Split a file with a header line into records with the csv module (RFC-4180 quotes when `quoted`).

    A quoted field may span lines; the record then starts at its first line, and is marked undecodable when any of
    its lines is.
    """
    name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    reader = csv.reader(
        (line + "\n" for line in text.lines),
        delimiter=delimiter,
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
    )
    any_line_error = any(e is not None for e in text.errors)
    header: list[str] | None = None
    fields, source_rows, errors = [], [], []
    consumed = 0
    try:
        for record in reader:
            start, consumed = consumed + 1, reader.line_num
            line_error = next((e for e in text.errors[start - 1 : consumed] if e), None) if any_line_error else None
            if line_error is None and not any(value.strip() for value in record):
                continue  # blank line
            if header is None:
                if line_error is not None:
                    raise SourceError(path, f"the header line is {line_error}", "save the file as UTF-8")
                header = [column.strip() for column in record]
                continue
            if line_error is None and len(record) != len(header):
                line_error = f"expected {len(header)} {name}-separated fields, got {len(record)}"
            fields.append(record)
            source_rows.append(start)
            errors.append(line_error)
    except csv.Error as exc:
        raise SourceError(
            path, f"cannot split the file near line {reader.line_num} ({exc})", "look for an unbalanced double quote"
        ) from exc
    if header is None:
        raise SourceError(path, "file is empty", "re-export the file, or point the source at a copy that has rows")
    if not fields:
        raise SourceError(path, "file has a header line but no data rows", "re-export the file with its rows")
    return header, Rows(fields, source_rows, errors)


def rows_to_frame(rows: Rows, columns: list[str]) -> pd.DataFrame:
    """Name the fields positionally; a record with too few fields gets None for the rest ("what could be read")."""
    n = len(columns)
    padded = [r if len(r) == n else (r + [None] * (n - len(r)))[:n] for r in rows.fields]
    return pd.DataFrame(padded, columns=columns, dtype=object)


def make_raw(
    values: dict[str, Any], canonical: list[str], source_rows: Any, errors: list[str | None], source_file: str, sha: str
) -> RawTable:
    """Assemble a RawTable: canonical columns (str or None; absent ones all None), source_row, _error."""
    n = len(errors)
    frame = pd.DataFrame({name: pd.Series(values.get(name, [None] * n), dtype=object) for name in canonical})
    frame["source_row"] = np.asarray(source_rows, dtype=np.int64)
    frame[ERROR_COLUMN] = pd.Series(errors, dtype=object)
    return RawTable(frame, str(source_file), sha)


def require_columns(
    found: list[str], wanted: dict[str, str], required: list[str], path: str | Path, delimiter: str | None, fix: str
) -> None:
    """Raise when a required canonical column has no column in the file. `wanted` maps canonical -> file name."""
    for canonical in required:
        if wanted[canonical] in found:
            continue
        hint = _delimiter_hint(found[0], delimiter) if delimiter and len(found) == 1 else ""
        if hint:
            problem = f"the header has a single column {found[0]!r}{hint}"
        else:
            mapped = f" (for {canonical})" if wanted[canonical] != canonical else ""
            problem = f"missing required column {wanted[canonical]!r}{mapped}; columns found: {found}"
        raise SourceError(path, problem, fix)


# ----------------------------------------------------------------------------------------------------------------
# The generic files source


@dataclass(frozen=True)
class FilesSpec:
    interactions: str  # path to .csv / .tsv / .parquet / .jsonl (format from the extension)
    items: str
    users: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)  # canonical name -> name in the file
    item_text_columns: tuple[str, ...] = ()  # extra item columns appended to description as "col: value; ..."
    sequence_format: bool = False  # interactions are "user item item ..." lines, oldest first; position = timestamp


_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")


def _missing_fix(role: str) -> str:
    return f"check FilesSpec.{role} (relative paths are resolved from {Path.cwd()})"


@dataclass(frozen=True)
class _Table:
    """A file's records under the file's own column names, before mapping to canonical names."""

    frame: pd.DataFrame  # object columns: str, None, or (JSONL/parquet) other Python values
    source_rows: Any
    errors: list[str | None]
    sha256: str
    delimiter: str | None  # for text tables: used to spot a wrong delimiter in the header


def _read_table(path_text: str, role: str) -> _Table:
    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise SourceError(path, f"unknown file type {suffix!r}", f"use one of {', '.join(_FORMATS)}")
    if suffix == ".parquet":
        if not path.is_file():
            raise SourceError(path, "file not found", _missing_fix(role))
        try:
            frame = pd.read_parquet(path, dtype_backend="numpy_nullable")  # keeps integer ids with nulls integral
        except Exception as exc:  # pyarrow raises several types for a corrupt or non-parquet file
            raise SourceError(path, f"cannot read parquet ({exc})", "re-export the file as parquet") from exc
        if frame.empty:
            raise SourceError(path, "file has no rows", "re-export the file with its rows")
        n = len(frame)
        return _Table(frame.reset_index(drop=True), np.arange(1, n + 1), [None] * n, sha256_file(path), None)
    text = read_text_lines(path, "utf-8", _missing_fix(role))
    if suffix == ".jsonl":
        return _jsonl_table(text, path)
    delimiter = "\t" if suffix == ".tsv" else ","
    header, rows = split_csv(text, path, delimiter, quoted=suffix == ".csv")
    return _Table(rows_to_frame(rows, header), rows.source_rows, rows.errors, text.sha256, delimiter)


def _jsonl_table(text: TextLines, path: Path) -> _Table:
    records: list[dict[str, Any]] = []
    source_rows, errors = [], []
    for number, (line, error) in enumerate(zip(text.lines, text.errors), start=1):
        if error is None and not line.strip():
            continue
        record: Any = {}
        if error is None:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                error, record = f"invalid JSON ({exc.msg} at column {exc.colno})", {}
            if not isinstance(record, dict):
                error, record = f"line is a JSON {type(record).__name__}, not an object", {}
        records.append(record)
        source_rows.append(number)
        errors.append(error)
    if all(error is not None for error in errors):
        raise SourceError(path, f"no line holds a JSON object (line {source_rows[0]}: {errors[0]})",
                          "write one JSON object per line (JSON Lines), UTF-8")
    # object dtype keeps JSON integers exact: a column of ints with some nulls would otherwise turn into floats
    return _Table(pd.DataFrame(records, dtype=object), source_rows, errors, text.sha256, None)


def _text(value: Any) -> str | None:
    """One value as text: ints stay exact ("42", not "42.0"); nested values become JSON."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if pd.isna(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return str(value)


def _categories_text(value: Any) -> str | None:
    """Categories as "a|b": a list, or a list of category paths (Amazon), flattened keeping first occurrences."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        return _text(value)
    flat: list[str] = []
    stack = list(reversed(value))
    while stack:
        entry = stack.pop()
        if isinstance(entry, np.ndarray):
            entry = entry.tolist()
        if isinstance(entry, (list, tuple)):
            stack.extend(reversed(entry))
        elif entry is not None and str(entry) not in flat:
            flat.append(str(entry))
    return "|".join(flat)


def _column_text(series: pd.Series) -> list[str | None]:
    """A column as str / None values; vectorized for the common all-text and numeric columns."""
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series.astype(object).where(series.notna(), None).tolist()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(str).astype(object).where(series.notna(), None).tolist()
    return [_text(value) for value in series.astype(object)]


def _canonical_names(canonical: list[str], column_map: dict[str, str]) -> dict[str, str]:
    return {name: column_map.get(name, name) for name in canonical}


def _map_fix(entity: str) -> str:
    return (
        f"rename the column in the {entity} file, or map it with FilesSpec.column_map, e.g. "
        "column_map={'user_id': 'customer', 'timestamp': 'ts'}"
    )


def _interactions(spec: FilesSpec) -> RawTable:
    if spec.sequence_format:
        return _sequence_interactions(spec.interactions)
    table = _read_table(spec.interactions, "interactions")
    wanted = _canonical_names(INTERACTION_COLUMNS, spec.column_map)
    found = [str(c) for c in table.frame.columns]
    if "rating" not in spec.column_map and "rating" not in found and "weight" in found:
        wanted["rating"] = "weight"  # implicit-feedback exports often call it weight
    required = ["user_id", "item_id", "timestamp"]
    require_columns(found, wanted, required, spec.interactions, table.delimiter, _map_fix("interactions"))
    values = {name: _column_text(table.frame[col]) for name, col in wanted.items() if col in found}
    return make_raw(values, INTERACTION_COLUMNS, table.source_rows, table.errors, spec.interactions, table.sha256)


def _sequence_interactions(path: str) -> RawTable:
    """One row per (user, item) occurrence; the item's position in its line is the timestamp (0, 1, 2, ...).

    source_row counts rows through the file (1, 2, 3, ...), so it stays unique and in file order.
    """
    text = read_text_lines(path, "utf-8", _missing_fix("interactions"))
    users: list[str | None] = []
    items: list[str | None] = []
    positions: list[str | None] = []
    errors: list[str | None] = []
    for line, error in zip(text.lines, text.errors):
        tokens = line.split()
        if error is None and not tokens:
            continue
        if error is None and len(tokens) >= 2:
            users.extend([tokens[0]] * (len(tokens) - 1))
            items.extend(tokens[1:])
            positions.extend(str(p) for p in range(len(tokens) - 1))
            errors.extend([None] * (len(tokens) - 1))
        else:  # an undecodable line, or a user with no items, is still one row so the counts add up
            users.append(tokens[0] if tokens else None)
            items.append(None)
            positions.append(None)
            errors.append(error or "sequence line has a user but no items")
    values = {"user_id": users, "item_id": items, "timestamp": positions}
    return make_raw(values, INTERACTION_COLUMNS, np.arange(1, len(errors) + 1), errors, path, text.sha256)


def _unescape(values: list[str | None]) -> list[str | None]:
    return [html.unescape(v) if v is not None and "&" in v else v for v in values]


def _items(spec: FilesSpec) -> RawTable:
    table = _read_table(spec.items, "items")
    wanted = _canonical_names(ITEM_COLUMNS, spec.column_map)
    found = [str(c) for c in table.frame.columns]
    require_columns(found, wanted, ["item_id", "title"], spec.items, table.delimiter, _map_fix("items"))
    missing_extra = [c for c in spec.item_text_columns if c not in found]
    if missing_extra:
        raise SourceError(
            spec.items, f"item_text_columns {missing_extra} are not in the file; columns found: {found}",
            "fix FilesSpec.item_text_columns",
        )
    values: dict[str, Any] = {
        "item_id": _column_text(table.frame[wanted["item_id"]]),
        "title": _unescape(_column_text(table.frame[wanted["title"]])),
    }
    if wanted["categories"] in found:
        values["categories"] = [_categories_text(v) for v in table.frame[wanted["categories"]].astype(object)]
    n = len(table.errors)
    description = (
        _unescape(_column_text(table.frame[wanted["description"]])) if wanted["description"] in found else [None] * n
    )
    if spec.item_text_columns:
        extras = {c: _column_text(table.frame[c]) for c in spec.item_text_columns}
        for i in range(n):
            parts = [description[i]] if description[i] else []
            parts += [f"{c}: {extras[c][i]}" for c in spec.item_text_columns if extras[c][i] not in (None, "")]
            description[i] = "; ".join(parts) or None
    values["description"] = description
    return make_raw(values, ITEM_COLUMNS, table.source_rows, table.errors, spec.items, table.sha256)


def _users(path: str, column_map: dict[str, str]) -> RawTable:
    table = _read_table(path, "users")
    wanted = _canonical_names(USER_COLUMNS, column_map)
    found = [str(c) for c in table.frame.columns]
    require_columns(found, wanted, ["user_id"], path, table.delimiter, _map_fix("users"))
    values = {name: _column_text(table.frame[col]) for name, col in wanted.items() if col in found}
    return make_raw(values, USER_COLUMNS, table.source_rows, table.errors, path, table.sha256)


def load_files(spec: FilesSpec) -> SourceData:
    """Read a data team's exports into canonical, unvalidated tables (see base.py for the contract)."""
    return SourceData(
        interactions=_interactions(spec),
        items=_items(spec),
        users=_users(spec.users, spec.column_map) if spec.users else None,
    )


def load_interactions_file(path: str | Path, column_map: dict[str, str] | None = None) -> RawTable:
    """One interactions file on its own: how the landing folder's incremental drops are read."""
    return _interactions(FilesSpec(interactions=str(path), items="", column_map=column_map or {}))
