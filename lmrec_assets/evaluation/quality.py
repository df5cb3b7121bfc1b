"""Data-quality suites (Great Expectations Core 1.x) run as Dagster asset checks on raw tables, marts and recs.

Each check reads its tables with DuckDB, builds the frames the suite needs (helper frames such as per-list counts or
"is this item seen" flags are computed in SQL), validates them with GX and reports one markdown table of every
expectation. `great_expectations` is imported inside functions: it takes seconds to import and the code location
must stay fast to load; nothing here connects to anything at import.
"""

import copy
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    Config,
    MetadataValue,
    asset_check,
)

from lmrec_assets.ingestion.sources.base import AGE_BRACKETS
from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL

# Only for the type hint: GX is imported lazily. (No `from __future__ import annotations` in this module: Dagster
# must resolve the checks' Config annotations when they are decorated.)
if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

N_EXAMPLES = 3  # unexpected examples shown per expectation
SEVERITY_ENV_PREFIX = "LMREC_CHECK_SEVERITY_"
# Raw data and published recommendations gate what comes after them; mart issues are also covered by dbt tests.
DEFAULT_SEVERITIES: dict[str, AssetCheckSeverity] = {
    "raw_interactions_quality": AssetCheckSeverity.ERROR,
    "raw_items_quality": AssetCheckSeverity.ERROR,
    "raw_users_quality": AssetCheckSeverity.ERROR,
    "marts_quality": AssetCheckSeverity.WARN,
    "recommendations_quality": AssetCheckSeverity.ERROR,
}
_TABLE_COLUMNS = ["suite", "expectation", "column", "arguments", "success", "observed", "unexpected examples"]


# --- the generic runner ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationOutcome:
    suite: str
    expectation: str
    column: str
    arguments: str
    success: bool
    observed: str
    examples: str


@dataclass(frozen=True)
class SuiteOutcome:
    suite_name: str
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def n_expectations(self) -> int:
        return len(self.outcomes)

    @property
    def n_failed(self) -> int:
        return sum(not o.success for o in self.outcomes)

    @property
    def failed(self) -> list[str]:
        return [f"{o.suite}: {o.expectation}({o.column})" for o in self.outcomes if not o.success]

    @property
    def markdown(self) -> str:
        rows = [[_cell(value) for value in astuple(o)] for o in self.outcomes]
        return pd.DataFrame(rows, columns=_TABLE_COLUMNS).to_markdown(index=False)


def combine(suite_name: str, parts: Sequence[SuiteOutcome]) -> SuiteOutcome:
    """One outcome for a suite that validates several frames (e.g. a table and its per-list counts)."""
    return SuiteOutcome(suite_name, tuple(o for part in parts for o in part.outcomes))


def run_suite(
    frame: pd.DataFrame,
    suite_name: str,
    expectations: "list[Expectation]",
    id_columns: Sequence[str] = (),
) -> SuiteOutcome:
    """Validate `frame` against `expectations` in a fresh ephemeral GX context.

    `id_columns` are shown, next to the expectation's own columns, for the first few unexpected rows, so a failing
    flag column (e.g. `is_seen`) is reported as "model=ease, user_id=42, item_id=7" rather than "True".
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars would flood the Dagster compute logs
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("frames").add_dataframe_asset(suite_name)
    batch_definition = asset.add_batch_definition_whole_dataframe("all")
    # A RangeIndex makes GX's unexpected index list usable as positions into the frame.
    frame = frame.reset_index(drop=True)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    # A suite binds the Expectation objects it is given (it refuses ones already bound), so it gets copies and the
    # caller's list stays reusable. Ids are assigned when the suite is added to the context; results come back in
    # GX's own order, so the ids are what maps each result back to its expectation.
    copies = [copy.copy(e) for e in expectations]
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=copies))
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": N_EXAMPLES})
    by_id = {r.expectation_config.id: r for r in result.results}
    return SuiteOutcome(
        suite_name,
        tuple(_outcome(suite_name, by_id[e.id], frame, id_columns) for e in suite.expectations),
    )


def _outcome(suite_name: str, result: Any, frame: pd.DataFrame, id_columns: Sequence[str]) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    columns = [kwargs.pop(k) for k in ("column", "column_A", "column_B") if k in kwargs]
    columns += kwargs.pop("column_list", [])
    error = _error_message(result.exception_info)
    details = result.result or {}
    if error is not None:
        observed = f"error: {error}"
    elif "observed_value" in details:
        observed = str(details["observed_value"])
    elif "unexpected_count" in details:
        observed = f"{details['unexpected_count']} of {details['element_count']} unexpected"
    else:
        observed = ""
    return ExpectationOutcome(
        suite=suite_name,
        expectation=config.type,
        column=", ".join(columns),
        arguments=", ".join(f"{k}={v}" for k, v in kwargs.items()),
        success=bool(result.success) and error is None,
        observed=observed,
        examples=_examples(details, frame, [*id_columns, *(c for c in columns if c not in id_columns)]),
    )


def _error_message(info: dict | None) -> str | None:
    """GX reports a raised metric error either directly or as a dict of metric id -> error info."""
    if not info:
        return None
    if "raised_exception" in info:
        return info["exception_message"] if info["raised_exception"] else None
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(str(m) for m in messages) if messages else None


def _examples(details: dict, frame: pd.DataFrame, columns: list[str]) -> str:
    indices = details.get("partial_unexpected_index_list") or []
    present = [c for c in columns if c in frame.columns]
    if indices and present:
        rows = frame.loc[list(indices)[:N_EXAMPLES], present]
        return "; ".join(", ".join(f"{c}={v}" for c, v in row.items()) for row in rows.to_dict("records"))
    return ", ".join(str(v) for v in (details.get("partial_unexpected_list") or [])[:N_EXAMPLES])


def _cell(value: object) -> str:
    # A '|' or newline inside a cell would break the markdown table.
    return str(value).replace("|", "\\|").replace("\n", " ")


# --- suites ---------------------------------------------------------------------------------------------------------


def raw_interactions_suite(
    con: duckdb.DuckDBPyConnection, rating_min: float, rating_max: float, latest_ts: int
) -> SuiteOutcome:
    import great_expectations as gx

    frame = con.execute('select user_id, item_id, "timestamp", rating from raw.interactions').df()
    expect = gx.expectations
    return run_suite(frame, "raw.interactions", [
        expect.ExpectTableRowCountToBeBetween(min_value=1),
        expect.ExpectColumnValuesToNotBeNull(column="user_id"),
        expect.ExpectColumnValuesToNotBeNull(column="item_id"),
        expect.ExpectColumnValuesToNotBeNull(column="timestamp"),
        expect.ExpectColumnValuesToBeInTypeList(column="timestamp", type_list=["int64", "int32"]),
        # unix seconds from 1970 to a day past now: milliseconds or far-future dates fail here
        expect.ExpectColumnValuesToBeBetween(column="timestamp", min_value=0, max_value=latest_ts),
        # nulls are allowed (implicit feedback) and are skipped by this expectation
        expect.ExpectColumnValuesToBeBetween(column="rating", min_value=rating_min, max_value=rating_max),
        expect.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "item_id", "timestamp"]),
    ], id_columns=["user_id", "item_id", "timestamp"])


def raw_items_suite(con: duckdb.DuckDBPyConnection) -> SuiteOutcome:
    import great_expectations as gx

    frame = con.execute("select item_id, title from raw.items").df()
    expect = gx.expectations
    return run_suite(frame, "raw.items", [
        expect.ExpectTableRowCountToBeBetween(min_value=1),
        expect.ExpectColumnValuesToNotBeNull(column="item_id"),
        expect.ExpectColumnValuesToBeUnique(column="item_id"),
        expect.ExpectColumnValuesToNotBeNull(column="title"),
        expect.ExpectColumnValuesToMatchRegex(column="title", regex=r"\S"),
    ], id_columns=["item_id"])


def raw_users_suite(con: duckdb.DuckDBPyConnection, genders: Sequence[str]) -> SuiteOutcome:
    import great_expectations as gx

    # raw.users may be empty (sources without a users file): every expectation below holds on an empty table.
    frame = con.execute("select user_id, gender, age_bracket from raw.users").df()
    expect = gx.expectations
    return run_suite(frame, "raw.users", [
        expect.ExpectColumnValuesToNotBeNull(column="user_id"),
        expect.ExpectColumnValuesToBeUnique(column="user_id"),
        # attributes are optional: nulls are skipped by the set expectations
        expect.ExpectColumnValuesToBeInSet(column="gender", value_set=list(genders)),
        expect.ExpectColumnValuesToBeInSet(column="age_bracket", value_set=list(AGE_BRACKETS)),
    ], id_columns=["user_id"])


def marts_suite(con: duckdb.DuckDBPyConnection) -> SuiteOutcome:
    import great_expectations as gx

    expect = gx.expectations
    interactions = con.execute("select user_id, item_id, split from marts.fct_interactions").df()
    parts = [
        run_suite(interactions, "marts.fct_interactions", [
            expect.ExpectTableRowCountToBeBetween(min_value=1),
            expect.ExpectColumnValuesToNotBeNull(column="split"),
            expect.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "valid", "test"]),
        ], id_columns=["user_id", "item_id"]),
        run_suite(con.execute("select item_id, item_text from marts.dim_items").df(), "marts.dim_items", [
            expect.ExpectColumnValuesToBeUnique(column="item_id"),
            expect.ExpectColumnValuesToNotBeNull(column="item_text"),
            expect.ExpectColumnValueLengthsToBeBetween(column="item_text", min_value=1),
        ], id_columns=["item_id"]),
    ]
    for split in ("valid", "test"):
        frame = con.execute(f"select user_id from marts.split_{split}").df()
        parts.append(run_suite(frame, f"marts.split_{split}", [expect.ExpectColumnValuesToBeUnique(column="user_id")]))
    return combine("marts", parts)


# Per recommended row: flags computed in SQL that GX then expects to be false (or true).
_RECS_ROWS_SQL = """
select
    r.model, r.user_id, r.rank, r.item_id, r.score,
    coalesce(isfinite(r.score), false) as score_is_finite,
    coalesce(r.score > lag(r.score) over (partition by r.model, r.user_id order by r.rank), false) as score_rises,
    exists (select 1 from marts.fct_interactions f where f.user_id = r.user_id and f.item_id = r.item_id) as is_seen,
    exists (select 1 from marts.dim_items d where d.item_id = r.item_id) as in_catalogue
from recs.latest_recommendations r
"""
# Per (model, user) list: its size and rank range next to the K it must have (configured, or the model's max rank).
_RECS_LISTS_SQL = """
select
    model, user_id,
    count(*) as n_rows,
    count(distinct rank) as n_ranks,
    min(rank) as min_rank,
    max(rank) as max_rank,
    coalesce(?::integer, max(max(rank)) over (partition by model)) as k
from recs.latest_recommendations
group by model, user_id
"""


def recommendations_suite(con: duckdb.DuckDBPyConnection, k: int | None) -> SuiteOutcome:
    import great_expectations as gx

    expect = gx.expectations
    rows = con.execute(_RECS_ROWS_SQL).df()
    lists = con.execute(_RECS_LISTS_SQL, [k]).df()
    return combine("recommendations", [
        run_suite(rows, "recs.latest_recommendations", [
            expect.ExpectTableRowCountToBeBetween(min_value=1),
            expect.ExpectCompoundColumnsToBeUnique(column_list=["model", "user_id", "rank"]),
            expect.ExpectCompoundColumnsToBeUnique(column_list=["model", "user_id", "item_id"]),
            expect.ExpectColumnValuesToBeInSet(column="is_seen", value_set=[False]),
            expect.ExpectColumnValuesToBeInSet(column="in_catalogue", value_set=[True]),
            expect.ExpectColumnValuesToBeInSet(column="score_is_finite", value_set=[True]),
            expect.ExpectColumnValuesToBeInSet(column="score_rises", value_set=[False]),
        ], id_columns=["model", "user_id", "rank", "item_id"]),
        run_suite(lists, "recommendation lists", [
            expect.ExpectColumnPairValuesToBeEqual(column_A="n_rows", column_B="k"),
            expect.ExpectColumnPairValuesToBeEqual(column_A="n_ranks", column_B="k"),
            expect.ExpectColumnPairValuesToBeEqual(column_A="max_rank", column_B="k"),
            expect.ExpectColumnValuesToBeInSet(column="min_rank", value_set=[1]),
        ], id_columns=["model", "user_id"]),
    ])


# --- Dagster asset checks -------------------------------------------------------------------------------------------


def check_severity(check_name: str) -> AssetCheckSeverity:
    """`LMREC_CHECK_SEVERITY_<CHECK_NAME>=WARN|ERROR` overrides the default, read when the check runs."""
    value = os.environ.get(SEVERITY_ENV_PREFIX + check_name.upper())
    if value is None:
        return DEFAULT_SEVERITIES[check_name]
    try:
        return AssetCheckSeverity[value.strip().upper()]
    except KeyError:
        raise ValueError(f"{SEVERITY_ENV_PREFIX}{check_name.upper()}={value!r}: use WARN or ERROR") from None


@contextmanager
def _read(warehouse: WarehouseResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only where possible. DuckDB refuses a read-only connection to a file this process already holds open
    read-write ("different configuration"); then the check shares that configuration and only reads."""
    with ExitStack() as stack:
        try:
            con = stack.enter_context(warehouse.connect(read_only=True))
        except duckdb.ConnectionException as error:
            if "different configuration" not in str(error):
                raise
            con = stack.enter_context(warehouse.connect(read_only=False))
        yield con


def _result(check_name: str, outcome: SuiteOutcome, **extra: Any) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.passed,
        severity=check_severity(check_name),
        metadata={
            "expectations": MetadataValue.md(outcome.markdown),
            "n_expectations": outcome.n_expectations,
            "n_failed": outcome.n_failed,
            "failed": ", ".join(outcome.failed) or "none",
            **extra,
        },
    )


class RawInteractionsQualityConfig(Config):
    rating_min: float = 0.0
    rating_max: float = 10.0


class RawUsersQualityConfig(Config):
    genders: list[str] = ["F", "M"]


class RecommendationsQualityConfig(Config):
    k: int | None = None  # None: each model's list length is its largest rank


@asset_check(asset="raw_interactions", pool=WAREHOUSE_POOL,
             description="GX: ids present, unix-second timestamps in range, plausible ratings, no duplicate events.")
def raw_interactions_quality(config: RawInteractionsQualityConfig, warehouse: WarehouseResource) -> AssetCheckResult:
    latest_ts = int(time.time()) + 86_400
    with _read(warehouse) as con:
        outcome = raw_interactions_suite(con, config.rating_min, config.rating_max, latest_ts)
    return _result("raw_interactions_quality", outcome)


@asset_check(asset="raw_items", pool=WAREHOUSE_POOL, description="GX: item ids unique and present, titles non-blank.")
def raw_items_quality(warehouse: WarehouseResource) -> AssetCheckResult:
    with _read(warehouse) as con:
        outcome = raw_items_suite(con)
    return _result("raw_items_quality", outcome)


@asset_check(asset="raw_users", pool=WAREHOUSE_POOL,
             description="GX: user ids unique; gender and age bracket from the known values or null.")
def raw_users_quality(config: RawUsersQualityConfig, warehouse: WarehouseResource) -> AssetCheckResult:
    with _read(warehouse) as con:
        outcome = raw_users_suite(con, config.genders)
    return _result("raw_users_quality", outcome)


# The marts are built by one dbt step; the extra deps make the check wait for every mart it reads.
@asset_check(asset=AssetKey("fct_interactions"), additional_deps=["dim_items", "split_valid", "split_test"],
             pool=WAREHOUSE_POOL,
             description="GX: split labels valid, item_text present, one valid/test row per user, unique item ids.")
def marts_quality(warehouse: WarehouseResource) -> AssetCheckResult:
    with _read(warehouse) as con:
        outcome = marts_suite(con)
    return _result("marts_quality", outcome)


@asset_check(asset="recommendations", blocking=True, pool=WAREHOUSE_POOL,
             description="GX on each model's latest run: exactly K contiguous ranks per user, unseen catalogue "
             "items, finite scores that never rise with rank. Blocking: guards publishing.")
def recommendations_quality(config: RecommendationsQualityConfig, warehouse: WarehouseResource) -> AssetCheckResult:
    with _read(warehouse) as con:
        outcome = recommendations_suite(con, config.k)
        per_model = con.execute(
            """select model, max(rank) as max_rank, count(distinct user_id) as users
               from recs.latest_recommendations group by model order by model"""
        ).df()
    return _result("recommendations_quality", outcome, models=MetadataValue.md(per_model.to_markdown(index=False)))


quality_checks: list[AssetChecksDefinition] = [
    raw_interactions_quality, raw_items_quality, raw_users_quality, marts_quality, recommendations_quality,
]
