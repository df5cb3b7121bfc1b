"""Small helpers for writing DataFrames into the DuckDB warehouse safely (identifiers are allow-listed)."""

from __future__ import annotations

import re

import duckdb
import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

# All pipeline writers share this Dagster concurrency pool: DuckDB allows one writing process per file.
WAREHOUSE_POOL = "duckdb_warehouse"
SCHEMAS = ("raw", "staging", "intermediate", "marts", "models", "recs", "evaluation", "lineage", "experiments")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def qualified(name: str) -> str:
    """Validate `schema.table` against the allow-list and return it quoted. Config never reaches SQL unchecked."""
    schema, _, table = name.partition(".")
    if schema not in SCHEMAS or not _IDENTIFIER.match(table):
        raise ValueError(f"Refusing unexpected table name {name!r}")
    return f'"{schema}"."{table}"'


def quote_identifier(name: str) -> str:
    """Quote any identifier DuckDB gave us (e.g. a catalog named after a configured file), escaping embedded quotes."""
    return '"' + name.replace('"', '""') + '"'


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, where: str = "", params: tuple = ()) -> None:
    """Delete the rows matching `where` (all rows when empty) and insert `frame`; create the table on first use.

    Call inside a transaction so readers see the old rows or the new ones, never a mix.
    """
    target = qualified(table)
    con.execute(f'create schema if not exists "{table.split(".")[0]}"')
    con.register("_incoming", frame)
    try:
        con.execute(f"create table if not exists {target} as select * from _incoming limit 0")
        con.execute(f"delete from {target}" + (f" where {where}" if where else ""), params)
        con.execute(f"insert into {target} by name select * from _incoming")
    finally:
        con.unregister("_incoming")


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, _, name = table.partition(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchone()[0]
    )


def frame_metadata(frame: pd.DataFrame, preview_rows: int = 5) -> dict:
    """Row count, column schema and a preview: what the Dagster UI shows for every table an asset writes."""
    schema = TableSchema(columns=[TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()])
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": schema,
        "preview": MetadataValue.md(frame.head(preview_rows).to_markdown(index=False)),
    }


def relation_metadata(con: duckdb.DuckDBPyConnection, table: str, preview_rows: int = 5) -> dict:
    """The same metadata for a `schema.table` in the warehouse (allow-listed like every name), without reading it all."""
    relation = qualified(table)
    preview_rows = int(preview_rows)
    columns = con.execute(f"describe {relation}").fetchall()
    return {
        "dagster/row_count": con.execute(f"select count(*) from {relation}").fetchone()[0],
        "dagster/column_schema": TableSchema(columns=[TableColumn(name=c[0], type=c[1]) for c in columns]),
        "preview": MetadataValue.md(con.execute(f"select * from {relation} limit {preview_rows}").df().to_markdown(index=False)),
    }
