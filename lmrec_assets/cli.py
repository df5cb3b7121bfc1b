"""`lmrec`: a small read-only command line over the serving database (and the warehouse for `summary`).

Output fits the terminal (`COLUMNS`, 100 when not a terminal): wide text columns (titles, explanations, meanings)
are cut with "…"; the full text is in the serving database.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap

import duckdb
import pandas as pd

from lmrec_assets.resources import serving_path, warehouse_path
from lmrec_assets.warehouse import quote_identifier

ALL_MODELS = "all"
DEFAULT_WIDTH = 100  # when stdout is not a terminal and COLUMNS is unset
MIN_WIDTH = 60
ELLIPSIS = "…"

EXAMPLE_QUERIES = {
    "Top-5 for one user from the champion model": (
        "select rank, item_id, title, round(score, 4) as score, explanation\n"
        "from champion_recommendations\n"
        "where user_id = (select min(user_id) from champion_recommendations) and rank <= 5\n"
        "order by rank"
    ),
    "The leaderboard (test split, full ranking, K = 10)": (
        "select model, round(hr_at_10, 4) as hr_at_10, round(ndcg_at_10, 4) as ndcg_at_10,\n"
        "       round(mrr_at_10, 4) as mrr_at_10, round(coverage, 4) as coverage\n"
        "from model_leaderboard"
    ),
}


def terminal_width() -> int:
    return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def _cut(value: object, width: int) -> object:
    if not isinstance(value, str) or len(value) <= width:
        return value
    return value[: max(width - 1, 0)] + ELLIPSIS


def fit(frame: pd.DataFrame, width: int | None = None, min_column: int = 8) -> str:
    """`frame.to_string(index=False)` with its widest text columns cut ("…") until every line fits `width`."""
    width = width or terminal_width()
    frame = frame.copy()
    floors = {c: max(min_column, len(str(c))) for c in frame.columns}
    while True:
        text = frame.to_string(index=False)
        excess = max(map(len, text.splitlines()), default=0) - width
        if excess <= 0:
            return text
        lengths = {c: int(frame[c].map(lambda v: len(v) if isinstance(v, str) else 0).max() or 0)
                   for c in frame.columns}
        shrinkable = {c: n for c, n in lengths.items() if n > floors[c]}
        if not shrinkable:
            return text  # nothing left to cut: numeric columns alone are wider than the terminal
        column = max(shrinkable, key=shrinkable.get)
        frame[column] = frame[column].map(lambda v: _cut(v, max(floors[column], shrinkable[column] - excess)))


def wrap(text: str, indent: str = "  ", width: int | None = None) -> str:
    return textwrap.fill(text, width=width or terminal_width(), initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False)


def _serving() -> tuple[str, duckdb.DuckDBPyConnection]:
    path = serving_path()
    try:
        return path, duckdb.connect(path, read_only=True)
    except duckdb.IOException:
        sys.exit(f"No serving database at {path}: run `make demo` (or materialize published_recommendations) first.")


def _relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [name for (name,) in con.execute("select table_name from information_schema.tables order by 1").fetchall()]


def champion(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The published champion (model, model_version, valid_ndcg_at_10, reason, chosen_at), or None when the serving
    database has none (published before champions existed, or no model had valid metrics)."""
    if "champion" not in _relations(con):
        return None
    frame = con.execute("select model, model_version, valid_ndcg_at_10, reason, chosen_at from champion").df()
    return None if frame.empty else frame.iloc[0].to_dict()


def published_models(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [m for (m,) in con.execute("select distinct model from recommendations order by model").fetchall()]


def _check_model(con: duckdb.DuckDBPyConnection, model: str, allow_all: bool = False) -> None:
    models = published_models(con)
    if model not in models and not (allow_all and model == ALL_MODELS):
        extra = f" (or '{ALL_MODELS}' for every model)" if allow_all else ""
        sys.exit(f"Unknown model {model!r}: it has no published recommendations. "
                 f"Valid models: {', '.join(models)}{extra}.")


def _check_user(con: duckdb.DuckDBPyConnection, user: str) -> None:
    if con.execute("select count(*) from recommendations where user_id = ?", [user]).fetchone()[0]:
        return
    n_users = con.execute("select count(distinct user_id) from recommendations").fetchone()[0]
    examples = [u for (u,) in con.execute(
        "select user_id from (select distinct user_id from recommendations) order by user_id limit 5"
    ).fetchall()]
    sys.exit(f"Unknown user {user!r}: no published recommendations for this user "
             f"({n_users:,} users have some, e.g. {', '.join(map(str, examples))}).")


def summary() -> None:
    warehouse = warehouse_path()
    path, con = _serving()
    width = terminal_width()
    print(f"\nPipeline warehouse:\n  {warehouse}\nServing database (analysts, read-only):\n  {path}\n")
    for name in _relations(con):
        print(f"  {name:28s} {con.execute(f'select count(*) from {quote_identifier(name)}').fetchone()[0]:>10,} rows")
    best = champion(con)
    print("\n-- The champion (what `lmrec recommend` shows when --model is left out)")
    if best is None:
        print(wrap("none published: no model had valid metrics, or this database predates champions.", width=width))
    else:
        print(wrap(f"{best['model']} (version {best['model_version']}), valid NDCG@10 {best['valid_ndcg_at_10']:.4f}",
                   width=width))
        print(wrap(f"why: {best['reason']}", width=width))
    for title, sql in EXAMPLE_QUERIES.items():
        if "champion_recommendations" in sql and best is None:
            continue
        print(f"\n-- {title}\n{sql};")
        print(fit(con.execute(sql).df(), width))
    print("\n-- What is published (select name, grain, meaning from catalogue)")
    for name, grain, meaning in con.execute("select name, grain, meaning from catalogue").fetchall():
        print(wrap(f"{name} [{grain}]", indent="  ", width=width))
        print(wrap(meaning, indent="      ", width=width))
    print("\nQuery it yourself (Python):")
    print("  import duckdb")
    print(f"  con = duckdb.connect(\n      {path!r},\n      read_only=True,\n  )")
    print("  print(con.sql('select * from champion_recommendations where rank <= 10'))")


def recommend(user: str, model: str | None, k: int, wide: bool = False) -> None:
    """A user's top-k from `model`, from the champion when `model` is None, or from every model with 'all'.
    `wide`: print whole titles and explanations instead of fitting the terminal."""
    if k < 1:
        sys.exit(f"--k {k}: ask for at least one recommendation.")
    _, con = _serving()
    width = terminal_width()
    if model is None:
        best = champion(con)
        if best is None:
            print(wrap("No champion is published (this database predates champions, or no model had valid "
                       "metrics): showing every model.", indent="", width=width))
            model = ALL_MODELS
        else:
            model = best["model"]
            print(wrap(f"Champion model: {model} (used because --model was left out; {best['reason']})",
                       indent="", width=width))
    _check_model(con, model, allow_all=True)
    _check_user(con, user)
    depth = con.execute("select max(rank) from recommendations where ? = ? or model = ?",
                        [model, ALL_MODELS, model]).fetchone()[0]
    frame = con.execute(
        "select model, rank, item_id, title, round(score, 4) as score, explanation from latest_recommendations "
        "where user_id = ? and rank <= ? and (? = ? or model = ?) order by model, rank",
        [user, k, model, ALL_MODELS, model],
    ).df()
    if frame.empty:
        sys.exit(f"Model {model!r} has no recommendations for user {user!r}.")
    print(frame.to_string(index=False) if wide else fit(frame, width))
    if k > depth:
        print(wrap(f"Note: --k {k} is above the stored depth: the serving database keeps the top {depth} per user "
                   f"and model, so at most {depth} rows per model are shown.", indent="", width=width))


def lineage(user: str, model: str) -> None:
    """Which raw batches, dbt models, model weights and code produced this user's recommendations from `model`."""
    _, con = _serving()
    _check_model(con, model)
    _check_user(con, user)
    frame = con.execute(
        "select depth, asset_key, version, code_version, run_id, coalesce(file_path, '') as file_path, "
        "coalesce(left(sha256, 12), '') as sha256 from recommendation_lineage "
        "where model = ? and user_id = ? order by depth, asset_key",
        [model, user],
    ).df()
    if frame.empty:
        sys.exit(f"No lineage for model {model!r} and user {user!r}")
    print(frame.to_string(index=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lmrec")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("summary", help="published tables, row counts, the champion and example queries")
    rec = commands.add_parser("recommend", help="a user's top-K from the published recommendations")
    rec.add_argument("--user", required=True)
    rec.add_argument("--model", help=f"a published model, or '{ALL_MODELS}'; default: the champion")
    rec.add_argument("--k", type=int, default=10, help="how many per model (up to the stored depth, 20 by default)")
    rec.add_argument("--wide", action="store_true", help="whole titles and explanations (may exceed the terminal)")
    lin = commands.add_parser("lineage", help="the artifacts behind a (model, user) recommendation list")
    lin.add_argument("--user", required=True)
    lin.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    if args.command == "summary":
        summary()
    elif args.command == "recommend":
        recommend(args.user, args.model, args.k, args.wide)
    else:
        lineage(args.user, args.model)


if __name__ == "__main__":
    main()
