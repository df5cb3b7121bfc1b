"""`lmrec`: a small command line over the warehouse (read-only)."""

from __future__ import annotations

import argparse
import sys

import duckdb

from lmrec_assets.resources import default_resources

EXAMPLE_QUERIES = {
    "Top-5 for one user from every model": (
        "select r.model, r.rank, r.item_id, i.title, round(r.score, 4) as score "
        "from recs.latest_recommendations as r join marts.dim_items as i using (item_id) "
        "where r.user_id = (select min(user_id) from marts.dim_users) and r.rank <= 5 order by r.model, r.rank"
    ),
    "Test leaderboard at K=10": (
        "select model, round(hr, 4) as hr_at_10, round(ndcg, 4) as ndcg_at_10, round(mrr, 4) as mrr_at_10, "
        "round(coverage, 4) as coverage from evaluation.evaluation_metrics where split = 'test' and k = 10 "
        "qualify evaluated_at = max(evaluated_at) over (partition by model) order by ndcg desc"
    ),
    "Rows quarantined at ingestion, by reason": (
        "select entity, reason, count(*) as n_rows from raw.rejected_rows group by all order by n_rows desc"
    ),
}


def _connect() -> tuple[str, duckdb.DuckDBPyConnection]:
    path = str(default_resources()["warehouse"].path)
    return path, duckdb.connect(path, read_only=True)


def summary() -> None:
    path, con = _connect()
    print(f"\nWarehouse: {path}\n")
    tables = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema in ('raw', 'marts', 'models', 'recs', 'evaluation') order by 1"
    ).fetchall()
    for (name,) in tables:
        print(f"  {name:40s} {con.execute(f'select count(*) from {name}').fetchone()[0]:>10,} rows")
    for title, sql in EXAMPLE_QUERIES.items():
        print(f"\n-- {title}\n{sql};")
        print(con.execute(sql).df().to_string(index=False))
    print(f"\nQuery it yourself (read-only): .venv/bin/python -c \"import duckdb; print(duckdb.connect('{path}', read_only=True).sql('select * from recs.latest_recommendations limit 5'))\"")


def recommend(user: str, model: str | None, k: int) -> None:
    _, con = _connect()
    frame = con.execute(
        "select model, model_version, rank, item_id, title, round(score, 4) as score "
        "from recs.latest_recommendations join marts.dim_items using (item_id) "
        "where user_id = ? and rank <= ? and (? is null or model = ?) order by model, rank",
        [user, k, model, model],
    ).df()
    if frame.empty:
        sys.exit(f"No recommendations for user {user!r}" + (f" and model {model!r}" if model else ""))
    print(frame.to_string(index=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lmrec")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("summary", help="tables, row counts and example queries")
    rec = commands.add_parser("recommend", help="a user's top-K from the latest run")
    rec.add_argument("--user", required=True)
    rec.add_argument("--model")
    rec.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "summary":
        summary()
    else:
        recommend(args.user, args.model, args.k)


if __name__ == "__main__":
    main()
