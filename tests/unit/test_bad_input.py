"""Malformed inputs: each either raises a SourceError that names the file, the problem and the fix, or becomes
rejected rows with a documented reason, and every row read is accounted for (read = accepted + rejected)."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from lmrec_assets.ingestion.sources.base import SourceData, SourceError
from lmrec_assets.ingestion.sources.files import FilesSpec, load_files
from lmrec_assets.ingestion.sources.movielens import download_movielens, load_movielens
from lmrec_assets.ingestion.validate import (
    REASONS,
    REJECTED_COLUMNS,
    Validated,
    validate_interactions,
    validate_items,
    validate_users,
)
from lmrec_assets.resources import DatasetResource

ITEMS_CSV = "item_id,title,categories\n1,Toy Story (1995),Animation|Comedy\n2,Heat (1995),Action\n"
USERS_CSV = "user_id,gender\nu1,F\nu2,M\n"


def write(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def counted(validated: Validated) -> Validated:
    assert validated.n_read == len(validated.accepted) + len(validated.rejected)
    assert list(validated.rejected.columns) == REJECTED_COLUMNS
    return validated


def validate_all(data: SourceData) -> tuple[Validated, Validated, Validated | None]:
    items = counted(validate_items(data.items))
    users = counted(validate_users(data.users)) if data.users is not None else None
    interactions = counted(
        validate_interactions(
            data.interactions,
            set(items.accepted["item_id"]),
            set(users.accepted["user_id"]) if users is not None else None,
        )
    )
    return interactions, items, users


def load_interactions(tmp_path: Path, interactions: str | bytes, users: bool = False, **options: object) -> SourceData:
    """Load an interactions file beside ITEMS_CSV; `options` are further FilesSpec fields (delimiter, rating_range)."""
    spec = FilesSpec(
        interactions=write(tmp_path / "interactions.csv", interactions),
        items=write(tmp_path / "items.csv", ITEMS_CSV),
        users=write(tmp_path / "users.csv", USERS_CSV) if users else None,
        **options,
    )
    return load_files(spec)


def load_items(tmp_path: Path, name: str, content: str, users: str | None = None) -> SourceData:
    """Load an items file (with one interaction beside it, which the tests do not look at)."""
    spec = FilesSpec(
        interactions=write(tmp_path / "x.csv", "user_id,item_id,timestamp\nu1,1,5\n"),
        items=write(tmp_path / name, content),
        users=write(tmp_path / "users.csv", users) if users is not None else None,
    )
    return load_files(spec)


def reasons(validated: Validated) -> dict[int, str]:
    return dict(zip(validated.rejected["source_row"], validated.rejected["reason"]))


# ---------------------------------------------------------------------------------------------- whole-file errors


def test_missing_file_names_path_problem_and_fix(tmp_path: Path) -> None:
    spec = FilesSpec(interactions=str(tmp_path / "nope.csv"), items=write(tmp_path / "items.csv", ITEMS_CSV))
    with pytest.raises(SourceError) as raised:
        load_files(spec)
    message = str(raised.value)
    assert str(tmp_path / "nope.csv") in message and "file not found" in message
    assert "FilesSpec.interactions" in raised.value.fix


def test_missing_movielens_folder_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as raised:
        load_movielens("movielens-100k", tmp_path)
    assert raised.value.problem == "file not found"
    assert "LMREC_DATA_PATH" in raised.value.fix and "u.data" in raised.value.fix


def test_empty_file(tmp_path: Path) -> None:
    spec = FilesSpec(interactions=write(tmp_path / "interactions.csv", ""), items=write(tmp_path / "i.csv", ITEMS_CSV))
    with pytest.raises(SourceError, match="interactions.csv: file is empty. Fix: re-export"):
        load_files(spec)


def test_header_without_rows(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="header line but no data rows"):
        load_interactions(tmp_path, "user_id,item_id,timestamp\r\n")


def test_wrong_delimiter_in_movielens_file(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "196,242,3,881250949\n186,302,3,891717742\n")
    with pytest.raises(SourceError) as raised:
        load_movielens("movielens-100k", tmp_path)
    assert raised.value.path == str(tmp_path / "u.data")
    assert "not TAB-separated (found comma" in raised.value.problem
    assert "files" in raised.value.fix


def test_wrong_delimiter_in_csv_header(tmp_path: Path) -> None:
    # a configured delimiter is taken at its word; the fix names the one the header seems to use
    with pytest.raises(SourceError, match="not comma-separated \\(found TAB") as raised:
        load_interactions(tmp_path, "user_id\titem_id\ttimestamp\nu1\t1\t5\n", delimiter=",")
    assert raised.value.fix == 'set "delimiter": "\\t" in LMREC_FILES_SPEC (FilesSpec.delimiter)'


def test_semicolon_export_is_sniffed(tmp_path: Path) -> None:
    content = "user_id;item_id;timestamp;rating\nu1;1;100;5\nu1;2;200\nu2;2;300;4\n"
    interactions, _, _ = validate_all(load_interactions(tmp_path, content))
    assert reasons(interactions) == {3: "expected 4 ';'-separated fields, got 3"}
    accepted = interactions.accepted[["user_id", "item_id", "rating"]].values.tolist()
    assert accepted == [["u1", "1", 5.0], ["u2", "2", 4.0]]


def test_tab_separated_csv_is_sniffed(tmp_path: Path) -> None:
    interactions, _, _ = validate_all(load_interactions(tmp_path, "user_id\titem_id\ttimestamp\nu1\t1\t5\n"))
    assert interactions.accepted[["user_id", "item_id", "timestamp"]].values.tolist() == [["u1", "1", 5]]


def test_sniffing_keeps_a_working_comma_header(tmp_path: Path) -> None:
    # ';' inside values does not win over the comma the header splits on
    _, items, _ = validate_all(load_items(tmp_path, "items.csv", "item_id,title\n1,A;B\n2,C;D;E\n"))
    assert items.accepted["title"].tolist() == ["A;B", "C;D;E"]


def test_wrong_configured_delimiter_suggests_delimiter_not_column_map(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as raised:
        load_interactions(tmp_path, "user_id;item_id;timestamp\nu1;1;5\n", delimiter=",")
    assert "not comma-separated (found ';' in the line)" in raised.value.problem
    assert raised.value.fix == 'set "delimiter": ";" in LMREC_FILES_SPEC (FilesSpec.delimiter)'
    assert "column_map" not in raised.value.fix


def test_unsplittable_header_suggests_delimiter(tmp_path: Path) -> None:
    # not one of , ; TAB | splits the header: the fix names what the line holds
    with pytest.raises(SourceError) as raised:
        load_interactions(tmp_path, "user_id item_id timestamp\nu1 1 5\n")
    assert "not comma-separated (found space" in raised.value.problem
    assert raised.value.fix == 'set "delimiter": " " in LMREC_FILES_SPEC (FilesSpec.delimiter)'


def test_delimiter_and_rating_range_from_files_spec_json(tmp_path: Path) -> None:
    write(tmp_path / "interactions.csv", "user_id|item_id|timestamp|rating\nu1|1|100|5\nu1|2|100|-7\n")
    write(tmp_path / "items.csv", "item_id|title\n1|A\n2|B\n")
    spec = {"interactions": "interactions.csv", "items": "items.csv", "delimiter": "|", "rating_range": [1, 5]}
    data = DatasetResource(source="files", path=str(tmp_path), files_spec=json.dumps(spec)).load()
    interactions, items, _ = validate_all(data)
    assert items.accepted["title"].tolist() == ["A", "B"]
    assert reasons(interactions) == {3: "rating outside [1, 5]"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delimiter": "::"}, "FilesSpec.delimiter must be one character"),
        ({"delimiter": '"'}, "FilesSpec.delimiter must be one character"),
        ({"rating_range": [5, 1]}, "FilesSpec.rating_range must be \\[min, max\\] with min <= max"),
        ({"rating_range": [1]}, "FilesSpec.rating_range must be"),
        ({"rating_range": "1-5"}, "FilesSpec.rating_range must be"),
    ],
)
def test_bad_files_spec_options_are_named(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FilesSpec(interactions="x.csv", items="i.csv", **options)


def test_missing_required_column_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as raised:
        load_interactions(tmp_path, "customer,item_id,timestamp\nu1,1,5\n")
    assert "missing required column 'user_id'" in raised.value.problem
    assert "customer" in raised.value.problem  # the columns that were found
    assert "column_map" in raised.value.fix


def test_unknown_extension(tmp_path: Path) -> None:
    spec = FilesSpec(interactions=write(tmp_path / "x.xlsx", "a"), items=write(tmp_path / "i.csv", ITEMS_CSV))
    with pytest.raises(SourceError, match="unknown file type '.xlsx'"):
        load_files(spec)


# ---------------------------------------------------------------------------------------------- per-row problems


def test_undecodable_bytes_in_utf8_csv_reject_only_that_row(tmp_path: Path) -> None:
    content = b"user_id,item_id,timestamp\nu1,1,100\nu\xe9,2,200\nu2,2,300\n"  # \xe9 is latin-1, not UTF-8
    interactions, _, _ = validate_all(load_interactions(tmp_path, content))
    assert reasons(interactions) == {3: "undecodable text (expected utf-8)"}
    assert list(interactions.accepted["user_id"]) == ["u1", "u2"]
    assert json.loads(interactions.rejected["record"][0])["user_id"] == "u\ufffd"  # what could be read


def test_undecodable_latin1_line_in_movielens(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t1\t5\t881250949\n")
    write(tmp_path / "u.user", "1|24|M|technician|85711\n")
    genres = "|".join(["0"] * 18 + ["1"])
    item = f"|01-Jan-1995||http://x|{genres}\n"
    write(tmp_path / "u.item", ("1|Good (1995)" + item).encode("latin-1") + b"2|Bad \x92 (1995)" + item.encode())
    _, items, _ = validate_all(load_movielens("movielens-100k", tmp_path))
    assert reasons(items) == {2: "undecodable text (expected latin-1)"}
    assert items.accepted["categories"].tolist() == ["Western"]


def test_wrong_field_count_row(tmp_path: Path) -> None:
    data = load_interactions(tmp_path, "user_id,item_id,timestamp,rating\nu1,1,100,5\nu1,2,200\nu2,2,300,4\n")
    interactions, _, _ = validate_all(data)
    assert reasons(interactions) == {3: "expected 4 comma-separated fields, got 3"}
    assert interactions.n_read == 3


def test_wrong_field_count_row_in_movielens(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t1\t5\t881250949\n1\t2\t881250949\n")
    write(tmp_path / "u.user", "1|24|M|technician|85711\n")
    write(tmp_path / "u.item", "1|A (1995)|01-Jan-1995||x|" + "|".join(["0"] * 19) + "\n")
    interactions, items, users = validate_all(load_movielens("movielens-100k", tmp_path))
    assert reasons(interactions) == {2: "expected 4 TAB-separated fields, got 3"}
    assert items.accepted["categories"].tolist() == [""]  # no genre flag set
    assert users.accepted["age_bracket"].tolist() == ["18-24"]


def test_timestamps_parse_or_are_rejected(tmp_path: Path) -> None:
    content = (
        "user_id,item_id,timestamp\n"
        "u1,1,881250949\n"  # 2: unix seconds
        "u1,2,881250949.7\n"  # 3: decimal seconds, floored
        "u2,1,1998-01-02\n"  # 4: ISO date
        "u2,2,1998-01-02T03:04:05+01:00\n"  # 5: ISO datetime with offset
        "u1,2,yesterday\n"  # 6
        "u2,1,\n"  # 7: absent
        "u1,1,-5\n"  # 8: before 1970
        "u1,1,881250949000\n"  # 9: milliseconds
    )
    interactions, _, _ = validate_all(load_interactions(tmp_path, content))
    assert reasons(interactions) == {
        6: "unparseable timestamp",
        7: "unparseable timestamp",
        8: "timestamp out of range",
        9: "timestamp out of range",
    }
    assert interactions.accepted["timestamp"].tolist() == [881250949, 881250949, 883699200, 883706645]
    assert interactions.accepted["timestamp"].dtype == "int64"


def test_missing_ids_and_unparseable_rating(tmp_path: Path) -> None:
    content = "user_id,item_id,timestamp,rating\n ,1,100,5\nu1, ,100,5\nu1,1,100,five\nu1,2,100,\n"
    interactions, _, _ = validate_all(load_interactions(tmp_path, content))
    assert reasons(interactions) == {2: "missing user_id", 3: "missing item_id", 4: "unparseable rating"}
    assert interactions.accepted["rating"].isna().tolist() == [True]  # absent rating = implicit feedback


def test_unknown_item(tmp_path: Path) -> None:
    interactions, _, _ = validate_all(load_interactions(tmp_path, "user_id,item_id,timestamp\nu1,1,100\nu1,99,100\n"))
    assert reasons(interactions) == {3: "unknown item_id"}


def test_unknown_user(tmp_path: Path) -> None:
    data = load_interactions(tmp_path, "user_id,item_id,timestamp\nu1,1,100\nghost,1,100\n", users=True)
    interactions, _, _ = validate_all(data)
    assert reasons(interactions) == {3: "unknown user_id"}


def test_exact_duplicate_row_keeps_the_first(tmp_path: Path) -> None:
    content = "user_id,item_id,timestamp,rating\nu1,1,100,5\nu1,1,100,5.0\nu1,1,100,4\nu1,1,101,5\n"
    interactions, _, _ = validate_all(load_interactions(tmp_path, content))
    assert reasons(interactions) == {3: "exact duplicate row"}  # 5 and 5.0 are the same rating
    assert interactions.accepted["source_row"].tolist() == [2, 4, 5]


def test_duplicate_item_id_and_missing_title(tmp_path: Path) -> None:
    items_csv = 'item_id,title\n1,"A, The (1995)"\n2,   \n1,Another A\n2,B\n'
    _, items, _ = validate_all(load_items(tmp_path, "items.csv", items_csv))
    assert reasons(items) == {3: "missing title", 4: "duplicate item_id"}
    # the first item 2 had no title, so the later one is the first acceptable one and is kept
    assert items.accepted[["item_id", "title"]].values.tolist() == [["1", "A, The (1995)"], ["2", "B"]]


def test_duplicate_user_id(tmp_path: Path) -> None:
    _, _, users = validate_all(load_items(tmp_path, "items.csv", ITEMS_CSV, users="user_id\nu1\nu1\n"))
    assert reasons(users) == {3: "duplicate user_id"}


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"item_id": 1, "title": "Gloom", "categories": [["Toys", "Games"], ["Toys", "Cards"]]}),
        '{"item_id": 2, "title": "broken"',
        "[1, 2]",
        json.dumps({"item_id": 3, "title": "Catan &amp; Friends"}),
    ]
    _, items, _ = validate_all(load_items(tmp_path, "items.jsonl", "\n".join(lines) + "\n"))
    rejected = reasons(items)
    assert rejected[2].startswith("invalid JSON") and rejected[3] == "line is a JSON list, not an object"
    assert items.accepted["item_id"].tolist() == ["1", "3"]  # JSON integers become exact strings
    assert items.accepted["categories"].tolist() == ["Toys|Games|Cards", ""]  # category paths flattened


def test_html_entities_in_titles_are_unescaped(tmp_path: Path) -> None:
    data = load_items(tmp_path, "items.csv", "item_id,title\n1,Barbie &amp; Ken&#39;s House\n")
    assert data.items.frame["title"].tolist() == ["Barbie & Ken's House"]


def test_column_map_and_weight(tmp_path: Path) -> None:
    spec = FilesSpec(
        interactions=write(tmp_path / "events.tsv", "customer\tsku\tts\tweight\n c1 \t0042\t2024-05-01T10:00:00Z\t2\n"),
        items=write(tmp_path / "catalog.csv", "sku,name,brand\n0042,Lamp,Acme\n"),
        column_map={"user_id": "customer", "item_id": "sku", "timestamp": "ts", "title": "name"},
        item_text_columns=("brand",),
    )
    interactions, items, _ = validate_all(load_files(spec))
    row = interactions.accepted.iloc[0]
    assert (row["user_id"], row["item_id"], row["timestamp"], row["rating"]) == ("c1", "0042", 1714557600, 2.0)
    assert items.accepted["description"].tolist() == ["brand: Acme"]


def test_sequence_format_positions_become_timestamps(tmp_path: Path) -> None:
    spec = FilesSpec(
        interactions=write(tmp_path / "sequential.txt", "1 10 11 12\n2 11\n3\n"),
        items=write(tmp_path / "items.csv", "item_id,title\n10,A\n11,B\n12,C\n"),
        sequence_format=True,
    )
    interactions, _, _ = validate_all(load_files(spec))
    accepted = interactions.accepted
    assert accepted[["user_id", "item_id", "timestamp"]].values.tolist() == [
        ["1", "10", 0], ["1", "11", 1], ["1", "12", 2], ["2", "11", 0],
    ]
    assert reasons(interactions) == {5: "sequence line has a user but no items"}


def test_parquet_ids_become_exact_strings(tmp_path: Path) -> None:
    path = tmp_path / "interactions.parquet"
    frame = pd.DataFrame({"user_id": pd.array([7, None], dtype="Int64"), "item_id": [1, 2], "timestamp": [100, 200]})
    frame.to_parquet(path)
    spec = FilesSpec(interactions=str(path), items=write(tmp_path / "items.csv", ITEMS_CSV))
    interactions, _, _ = validate_all(load_files(spec))
    assert interactions.accepted[["user_id", "item_id"]].values.tolist() == [["7", "1"]]
    assert reasons(interactions) == {2: "missing user_id"}


def test_quoted_newline_and_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    items_csv = 'item_id,title,description\r\n1,A,"two\r\nlines"\r\n\r\n2,B,\r\n'
    _, items, _ = validate_all(load_items(tmp_path, "items.csv", items_csv))
    assert items.accepted["source_row"].tolist() == [2, 5]
    assert items.accepted["description"].tolist() == ["two\nlines", None]


def test_rating_range_quarantines_ratings_outside_it(tmp_path: Path) -> None:
    content = (
        "user_id,item_id,timestamp,rating\n"
        "u1,1,100,-7\n"  # 2
        "u1,2,100,1\n"  # 3: bounds are included
        "u2,1,100,5.0\n"  # 4
        "u2,2,100,5.5\n"  # 5
        "u3,1,100,\n"  # 6: absent rating = implicit feedback, still fine
        "u3,2,100,five\n"  # 7: not a number comes first
    )
    interactions, _, _ = validate_all(load_interactions(tmp_path, content, rating_range=[1, 5]))
    assert reasons(interactions) == {2: "rating outside [1, 5]", 5: "rating outside [1, 5]", 7: "unparseable rating"}
    assert interactions.accepted["source_row"].tolist() == [3, 4, 6]
    half_stars = validate_all(load_interactions(tmp_path, content, rating_range=(0.5, 5)))[0]
    assert set(reasons(half_stars).values()) == {"rating outside [0.5, 5]", "unparseable rating"}


def test_no_rating_range_keeps_any_rating(tmp_path: Path) -> None:
    interactions, _, _ = validate_all(load_interactions(tmp_path, "user_id,item_id,timestamp,rating\nu1,1,100,-7\n"))
    assert (reasons(interactions), interactions.accepted["rating"].tolist()) == ({}, [-7.0])


# ---------------------------------------------------------------------------------------------- oversized fields


def test_field_over_the_csv_limit_rejects_only_its_row(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    huge = "x" * (limit + 1)
    items_csv = f'item_id,title,description\n1,A,short\n2,B,"{huge}"\n3,C,{huge}\n4,D,"{huge[:limit]}"\n5,E,\n'
    _, items, _ = validate_all(load_items(tmp_path, "items.csv", items_csv))
    assert reasons(items) == {3: f"field larger than {limit} characters", 4: f"field larger than {limit} characters"}
    assert items.accepted["item_id"].tolist() == ["1", "4", "5"]  # a field of exactly the limit is fine
    assert items.n_read == 5
    record = json.loads(items.rejected["record"][0])
    assert (record["item_id"], len(record["description"])) == ("2", limit)  # what could be read, cut to the limit
    assert csv.field_size_limit() == limit  # the process-wide limit is put back


def test_field_over_the_csv_limit_in_tsv_and_multiline_quotes(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    huge = "y" * limit
    _, items, _ = validate_all(load_items(tmp_path, "items.tsv", f"item_id\ttitle\n1\t{huge}z\n2\tB\n"))
    assert (reasons(items), items.accepted["item_id"].tolist()) == ({2: f"field larger than {limit} characters"}, ["2"])
    interactions_csv = f'user_id,item_id,timestamp,note\nu1,1,100,"{huge}\n{huge}"\nu2,2,200,ok\n'
    interactions, _, _ = validate_all(load_interactions(tmp_path, interactions_csv))
    assert reasons(interactions) == {2: f"field larger than {limit} characters (lines 2-3)"}
    assert interactions.accepted["source_row"].tolist() == [4]


def test_quote_left_open_to_the_end_of_the_file_still_fails_it(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    rows = "".join(f"u{i},1,{100 + i}\n" for i in range(limit // 8))  # over `limit` characters in all
    with pytest.raises(SourceError) as raised:
        load_interactions(tmp_path, f'user_id,item_id,timestamp\nu0,1,"100\n{rows}')
    assert "a double quote opened on line 2 is never closed" in raised.value.problem
    assert "unbalanced double quote on line 2" in raised.value.fix
    assert csv.field_size_limit() == limit


def test_every_reason_is_documented() -> None:
    used = {
        "missing user_id", "missing item_id", "missing title", "unparseable timestamp", "timestamp out of range",
        "unparseable rating", "rating outside [min, max]", "duplicate item_id", "duplicate user_id",
        "exact duplicate row", "unknown item_id", "unknown user_id",
        "already loaded",  # landing-folder increments (ingestion/assets.py)
    }
    assert used == set(REASONS)


def test_movielens_1m_codes_and_an_unknown_age_code(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::1::5::978300760\n2::1::3::978300761\n")
    write(tmp_path / "movies.dat", "1::Misérables, Les (1995)::Drama|Musical\n".encode("latin-1"))
    write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::7::16::70072\n")
    interactions, items, users = validate_all(load_movielens("movielens-1m", tmp_path))
    assert items.accepted[["title", "categories"]].values.tolist() == [["Misérables, Les (1995)", "Drama|Musical"]]
    assert users.accepted.drop(columns="source_row").values.tolist() == [["1", "F", "under 18", "K-12 student"]]
    assert reasons(users) == {2: "unknown age code '7' (expected one of 1, 18, 25, 35, 45, 50, 56)"}
    assert reasons(interactions) == {2: "unknown user_id"}  # the rejected user's ratings follow it


def test_download_offline_raises_source_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SourceError, match="ml-100k.zip: download failed") as raised:
        download_movielens("movielens-100k", tmp_path)
    assert "download the zip by hand" in raised.value.fix


def test_download_unzips_into_dest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n")
        zipped.writestr("ml-latest-small/movies.csv", 'movieId,title,genres\r\n1,"Toy Story, The (1995)",Comedy\r\n')
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive.getvalue()))
    folder = download_movielens("movielens-latest-small", tmp_path)
    interactions, items, _ = validate_all(load_movielens("movielens-latest-small", folder))
    assert (len(interactions.accepted), items.accepted["title"].tolist()) == (1, ["Toy Story, The (1995)"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-latest-small"]  # the zip itself is not left behind
