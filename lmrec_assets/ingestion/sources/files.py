"""The generic source: a data team points lmrec at its own interaction / item / user exports.

Formats come from the file extension: .csv, .tsv, .jsonl (one JSON object per line) and .parquet. Interactions may
also be a sequence file ("user item item item ..." per line, oldest first), the layout of the Amazon / P5 benchmarks.

This module also holds the text readers that the MovieLens loader shares: files are read as bytes and split into
lines here, so that one undecodable or mis-split line becomes one row with `_error` set instead of killing the file
or vanishing (pandas' on_bad_lines would silently drop it). A field longer than the csv module's field size limit
likewise costs its record, not the file.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
# Delimiters a header-first file without a configured one is sniffed among, and how many lines are looked at.
_SNIFFED_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_LINES = 20

# csv.field_size_limit is process-wide: lifted only while a file is split, one file at a time.
_FIELD_LIMIT_LOCK = threading.Lock()


@contextmanager
def _unlimited_csv_fields() -> Iterator[int]:
    """Lift the csv module's field size limit for a while; yields the limit that was in force (131072 by default)."""
    with _FIELD_LIMIT_LOCK:
        limit = csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the largest a C long holds on every platform
        try:
            yield limit
        finally:
            csv.field_size_limit(limit)


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


def _other_delimiter(line: str, expected: str) -> str | None:
    """The delimiter a one-field line seems to use instead of the expected one, if any."""
    return next((d for d in _DELIMITER_NAMES if d != expected and d in line), None)


def _delimiter_hint(line: str, expected: str) -> str:
    """Name the delimiter a one-field line seems to use instead of the expected one."""
    other = _other_delimiter(line, expected)
    if other is None:
        return ""
    expected_name = _DELIMITER_NAMES.get(expected, repr(expected))
    return f"; it looks like it is not {expected_name}-separated (found {_DELIMITER_NAMES[other]} in the line)"


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
    its lines is. A field longer than csv.field_size_limit() (N) costs only its record: it gets the error "field
    larger than N characters" and its fields are cut to N characters. Only a double quote left open up to the end of
    the file, which swallows every line after it into one field, still fails the file.
    """
    name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    lines = text.lines
    any_line_error = any(e is not None for e in text.errors)
    header: list[str] | None = None
    fields, source_rows, errors = [], [], []
    consumed = 0
    # The limit is lifted while splitting so that a long field does not stop the reader; it is applied per record.
    with _unlimited_csv_fields() as limit:
        reader = csv.reader(
            (line + "\n" for line in lines),
            delimiter=delimiter,
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        )
        try:
            for record in reader:
                start, consumed = consumed + 1, reader.line_num
                line_error = next((e for e in text.errors[start - 1 : consumed] if e), None) if any_line_error else None
                if line_error is None and not any(value.strip() for value in record):
                    continue  # blank line
                long_lines = consumed > start or len(lines[start - 1]) > limit  # cheap test first
                too_long = long_lines and max(map(len, record), default=0) > limit
                if too_long and quoted and consumed == len(lines) and _quote_left_open(lines[start - 1 :], delimiter):
                    raise SourceError(
                        path,
                        f"a double quote opened on line {start} is never closed, so lines {start}-{consumed} read as "
                        "one field",
                        f"look for an unbalanced double quote on line {start} (a quote inside a quoted field is "
                        'written "")',
                    )
                if header is None:
                    if line_error is not None:
                        raise SourceError(path, f"the header line is {line_error}", "save the file as UTF-8")
                    if too_long:
                        raise SourceError(
                            path, f"the header line has a field larger than {limit} characters",
                            "look for an unbalanced double quote in the header line",
                        )
                    header = [column.strip() for column in record]
                    continue
                if too_long:
                    record = [value[:limit] for value in record]  # what could be read, within the limit
                    span = f" (lines {start}-{consumed})" if consumed > start else ""
                    line_error = line_error or f"field larger than {limit} characters{span}"
                if line_error is None and len(record) != len(header):
                    line_error = f"expected {len(header)} {name}-separated fields, got {len(record)}"
                fields.append(record)
                source_rows.append(start)
                errors.append(line_error)
        except csv.Error as exc:
            raise SourceError(
                path, f"cannot split the file near line {reader.line_num} ({exc})",
                "look for an unbalanced double quote",
            ) from exc
    if header is None:
        raise SourceError(path, "file is empty", "re-export the file, or point the source at a copy that has rows")
    if not fields:
        raise SourceError(path, "file has a header line but no data rows", "re-export the file with its rows")
    return header, Rows(fields, source_rows, errors)


def _quote_left_open(lines: list[str], delimiter: str) -> bool:
    """Whether the record starting at lines[0] ends the file inside a quoted field (call with the limit lifted)."""
    try:
        for _ in csv.reader((line + "\n" for line in lines), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def sniff_delimiter(text: TextLines, default: str, quoted: bool) -> str:
    """The delimiter of a header-first text file: `default` when it splits the header line into several columns;
    else the one among , ; TAB | that does and splits the next lines into as many fields most often (then: into the
    most columns). `default` again when none splits the header: the column check then names the problem."""
    head = text.lines[:_SNIFF_LINES]
    best, best_score = default, (-1.0, 0)
    with _unlimited_csv_fields():
        for candidate in dict.fromkeys((default, *_SNIFFED_DELIMITERS)):
            reader = csv.reader(
                (line + "\n" for line in head),
                delimiter=candidate,
                quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
            )
            try:
                records = [record for record in reader if any(value.strip() for value in record)]
            except csv.Error:
                continue
            if not records or len(records[0]) < 2:
                continue
            if candidate == default:
                return default  # what the extension says works: never second-guess it
            width, rest = len(records[0]), records[1:]
            score = (sum(len(r) == width for r in rest) / len(rest) if rest else 1.0, width)
            if score > best_score:
                best, best_score = candidate, score
    return best


def rows_to_frame(rows: Rows, columns: list[str]) -> pd.DataFrame:
    """Name the fields positionally; a record with too few fields gets None for the rest ("what could be read")."""
    n = len(columns)
    padded = [r if len(r) == n else (r + [None] * (n - len(r)))[:n] for r in rows.fields]
    return pd.DataFrame(padded, columns=columns, dtype=object)


def make_raw(
    values: dict[str, Any],
    canonical: list[str],
    source_rows: Any,
    errors: list[str | None],
    source_file: str,
    sha: str,
    rating_range: tuple[float, float] | None = None,
) -> RawTable:
    """Assemble a RawTable: canonical columns (str or None; absent ones all None), source_row, _error."""
    n = len(errors)
    frame = pd.DataFrame({name: pd.Series(values.get(name, [None] * n), dtype=object) for name in canonical})
    frame["source_row"] = np.asarray(source_rows, dtype=np.int64)
    frame[ERROR_COLUMN] = pd.Series(errors, dtype=object)
    return RawTable(frame, str(source_file), sha, rating_range)


def require_columns(
    found: list[str],
    wanted: dict[str, str],
    required: list[str],
    path: str | Path,
    delimiter: str | None,
    fix: str,
    delimiter_fix: Callable[[str], str] | None = None,
) -> None:
    """Raise when a required canonical column has no column in the file. `wanted` maps canonical -> file name.

    When the header is one column holding another delimiter, the fix is `delimiter_fix(that delimiter)` if given.
    """
    for canonical in required:
        if wanted[canonical] in found:
            continue
        other = _other_delimiter(found[0], delimiter) if delimiter and len(found) == 1 else None
        if other is not None:
            problem = f"the header has a single column {found[0]!r}{_delimiter_hint(found[0], delimiter)}"
            raise SourceError(path, problem, delimiter_fix(other) if delimiter_fix else fix)
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
    delimiter: str | None = None  # field separator of .csv/.tsv files; None: sniffed per file among , ; TAB |
    rating_range: tuple[float, float] | None = None  # [min, max], bounds included; ratings outside are quarantined

    def __post_init__(self) -> None:
        delimiter = self.delimiter
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'):
            raise ValueError(
                f'FilesSpec.delimiter must be one character other than a quote or line break, e.g. ";" or "\\t" '
                f"(TAB), got {delimiter!r}"
            )
        if self.rating_range is not None:
            bounds = self.rating_range
            numbers = isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds
            )
            if not numbers or not float(bounds[0]) <= float(bounds[1]):  # `not <=` also catches NaN
                raise ValueError(
                    f"FilesSpec.rating_range must be [min, max] with min <= max, e.g. [1, 5]; got {bounds!r}"
                )
            object.__setattr__(self, "rating_range", (float(bounds[0]), float(bounds[1])))  # JSON gives a list


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


def _read_table(path_text: str, role: str, delimiter: str | None = None) -> _Table:
    """Read one file; `delimiter` (.csv/.tsv only) is sniffed when not given."""
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
    quoted = suffix == ".csv"
    delimiter = delimiter or sniff_delimiter(text, "\t" if suffix == ".tsv" else ",", quoted)
    header, rows = split_csv(text, path, delimiter, quoted)
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


def _delimiter_fix(found: str) -> str:
    """The fix when a header does not split: name the delimiter it seems to use, as FilesSpec.delimiter."""
    if len(found) == 1:
        return f'set "delimiter": {json.dumps(found)} in LMREC_FILES_SPEC (FilesSpec.delimiter)'
    return "re-export the file separated by comma, ';', TAB or '|' (FilesSpec.delimiter takes one character)"


def _interactions(spec: FilesSpec) -> RawTable:
    if spec.sequence_format:
        return _sequence_interactions(spec.interactions)
    table = _read_table(spec.interactions, "interactions", spec.delimiter)
    wanted = _canonical_names(INTERACTION_COLUMNS, spec.column_map)
    found = [str(c) for c in table.frame.columns]
    if "rating" not in spec.column_map and "rating" not in found and "weight" in found:
        wanted["rating"] = "weight"  # implicit-feedback exports often call it weight
    required = ["user_id", "item_id", "timestamp"]
    require_columns(
        found, wanted, required, spec.interactions, table.delimiter, _map_fix("interactions"), _delimiter_fix
    )
    values = {name: _column_text(table.frame[col]) for name, col in wanted.items() if col in found}
    return make_raw(
        values, INTERACTION_COLUMNS, table.source_rows, table.errors, spec.interactions, table.sha256,
        spec.rating_range,
    )


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
    table = _read_table(spec.items, "items", spec.delimiter)
    wanted = _canonical_names(ITEM_COLUMNS, spec.column_map)
    found = [str(c) for c in table.frame.columns]
    require_columns(found, wanted, ["item_id", "title"], spec.items, table.delimiter, _map_fix("items"), _delimiter_fix)
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


def _users(path: str, column_map: dict[str, str], delimiter: str | None) -> RawTable:
    table = _read_table(path, "users", delimiter)
    wanted = _canonical_names(USER_COLUMNS, column_map)
    found = [str(c) for c in table.frame.columns]
    require_columns(found, wanted, ["user_id"], path, table.delimiter, _map_fix("users"), _delimiter_fix)
    values = {name: _column_text(table.frame[col]) for name, col in wanted.items() if col in found}
    return make_raw(values, USER_COLUMNS, table.source_rows, table.errors, path, table.sha256)


def load_files(spec: FilesSpec) -> SourceData:
    """Read a data team's exports into canonical, unvalidated tables (see base.py for the contract)."""
    return SourceData(
        interactions=_interactions(spec),
        items=_items(spec),
        users=_users(spec.users, spec.column_map, spec.delimiter) if spec.users else None,
    )


def load_interactions_file(path: str | Path, column_map: dict[str, str] | None = None) -> RawTable:
    """One interactions file on its own: how the landing folder's incremental drops are read."""
    return _interactions(FilesSpec(interactions=str(path), items="", column_map=column_map or {}))
