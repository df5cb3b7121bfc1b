"""`lmrec`: a small read-only command line over the serving database (and the warehouse for `summary`)."""

from __future__ import annotations

import argparse
import sys

import duckdb

from lmrec_assets.resources import serving_path, warehouse_path
from lmrec_assets.warehouse import quote_identifier

EXAMPLE_QUERIES = {
    "Top-5 for one user from every model": (
        "select model, rank, item_id, title, round(score, 4) as score from latest_recommendations "
        "where user_id = (select min(user_id) from recommendations) and rank <= 5 order by model, rank"
    ),
    "The leaderboard (test split, full ranking, K = 10)": (
        "select model, round(hr_at_10, 4) as hr_at_10, round(ndcg_at_10, 4) as ndcg_at_10, "
        "round(mrr_at_10, 4) as mrr_at_10, round(coverage, 4) as coverage from model_leaderboard"
    ),
    "What is published (the analyst catalogue)": "select name, grain, meaning from catalogue",
}


def _serving() -> tuple[str, duckdb.DuckDBPyConnection]:
    path = serving_path()
    try:
        return path, duckdb.connect(path, read_only=True)
    except duckdb.IOException:
        sys.exit(f"No serving database at {path}: run `make demo` (or materialize published_recommendations) first.")


def summary() -> None:
    warehouse = warehouse_path()
    path, con = _serving()
    print(f"\nPipeline warehouse: {warehouse}\nServing database (analysts, read-only): {path}\n")
    for (name,) in con.execute("select table_name from information_schema.tables order by 1").fetchall():
        print(f"  {name:28s} {con.execute(f'select count(*) from {quote_identifier(name)}').fetchone()[0]:>10,} rows")
    for title, sql in EXAMPLE_QUERIES.items():
        print(f"\n-- {title}\n{sql};")
        print(con.execute(sql).df().to_string(index=False))
    print(f"\nQuery it yourself: .venv/bin/python -c \"import duckdb; "
          f"print(duckdb.connect('{path}', read_only=True).sql('select * from model_leaderboard'))\"")


def recommend(user: str, model: str | None, k: int) -> None:
    _, con = _serving()
    frame = con.execute(
        "select model, rank, item_id, title, round(score, 4) as score, explanation from latest_recommendations "
        "where user_id = ? and rank <= ? and (? is null or model = ?) order by model, rank",
        [user, k, model, model],
    ).df()
    if frame.empty:
        sys.exit(f"No recommendations for user {user!r}" + (f" and model {model!r}" if model else ""))
    print(frame.to_string(index=False))


def lineage(user: str, model: str) -> None:
    """Which raw batches, dbt models, model weights and code produced this user's recommendations from `model`."""
    _, con = _serving()
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
    commands.add_parser("summary", help="published tables, row counts and example queries")
    rec = commands.add_parser("recommend", help="a user's top-K from the published recommendations")
    rec.add_argument("--user", required=True)
    rec.add_argument("--model")
    rec.add_argument("--k", type=int, default=10)
    lin = commands.add_parser("lineage", help="the artifacts behind a (model, user) recommendation list")
    lin.add_argument("--user", required=True)
    lin.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    if args.command == "summary":
        summary()
    elif args.command == "recommend":
        recommend(args.user, args.model, args.k)
    else:
        lineage(args.user, args.model)


if __name__ == "__main__":
    main()
