"""The fairness report: one markdown page and five figures that say, in plain words, whom each model serves well,
which items it shows, how the models that read a prompt react to a named sensitive attribute, and what the exposure
re-ranking buys at what cost; it ends with sample published explanations per model and their quality. Written to
`reports/fairness/<version>/` and shown inline in the asset's metadata.

Everything here reads tables the evaluation assets wrote and, for the explanations, the serving database as
published; nothing is re-scored.
"""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue, asset

from lmrec_assets.evaluation.fairness import lorenz_curve
from lmrec_assets.evaluation.fairness_assets import ALL, COUNTERFACTUAL_ATTRIBUTES, USER_ATTRIBUTES, content_version
from lmrec_assets.lineage import latest_artifacts, record_artifact, reuse_if_unchanged
from lmrec_assets.resources import ArtifactStoreResource, ServingResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL

CODE_VERSION = "3"  # 2: counterfactual section and figure for every model that reads a prompt; 3: explanations
PARENTS = ["fairness_metrics", "exposure_reranking", "published_recommendations"]
EXPLANATION_SAMPLES = 2  # published rows shown per model and explanation source
GOAL_DROP, GOAL_COST = 0.20, 0.05  # the target: Gini or worst gap down ≥ 20% at ≤ 5% NDCG@10 cost
K = 10  # every figure and sentence is at K = 10, like the leaderboard
FIGURES = {
    "group_ndcg.png": "NDCG@10 per user group",
    "lorenz.png": "How exposure is spread over the catalogue (Lorenz curves)",
    "popularity.png": "Popularity lift and long-tail share",
    "counterfactual.png": "Similarity of counterfactual-prompt recommendations to the neutral prompt's",
    "tradeoff.png": "Mitigation trade-off: accuracy against exposure concentration and group gap",
}


@dataclass(frozen=True)
class ReportData:
    metrics: pd.DataFrame  # each model's latest evaluation.fairness_metrics rows
    summary: pd.DataFrame  # evaluation.fairness_summary
    tradeoff: pd.DataFrame  # each model's latest evaluation.mitigation_tradeoff rows
    exposure: dict[str, np.ndarray]  # model -> top-K slots of every catalogue item (unshown items included, as 0)
    reranking: dict  # the exposure_reranking config that made `tradeoff` (from its lineage row)
    explanation_samples: pd.DataFrame  # a few published rows per model and explanation_source (empty: not published)
    explanation_quality: pd.DataFrame  # the published explanation_quality table (empty: not published)


def load_report_data(con: duckdb.DuckDBPyConnection, serving: ServingResource) -> ReportData:
    n_items = con.execute("select count(*) from marts.dim_items").fetchone()[0]
    slots = con.execute(
        "select model, item_id, count(*) as slots from recs.latest_recommendations where rank <= ? group by all", [K]
    ).df()
    return ReportData(
        metrics=con.execute(
            "select * from evaluation.fairness_metrics qualify evaluated_at = max(evaluated_at) over (partition by model)"
        ).df(),
        summary=con.execute("select * from evaluation.fairness_summary order by model").df(),
        tradeoff=con.execute(
            "select * from evaluation.mitigation_tradeoff "
            "qualify evaluated_at = max(evaluated_at) over (partition by model) order by model, split, lam"
        ).df(),
        exposure={model: np.concatenate([part.slots.to_numpy(dtype=float), np.zeros(n_items - len(part))])
                  for model, part in slots.groupby("model")},
        reranking=json.loads(con.execute(
            "select details from lineage.artifacts where asset_key = 'exposure_reranking' order by created_at desc limit 1"
        ).fetchone()[0]),
        **published_explanations(serving),
    )


def published_explanations(serving: ServingResource) -> dict[str, pd.DataFrame]:
    """Sample rows and the explanation_quality table as analysts see them in the serving database."""
    if not Path(serving.path).is_file():
        return {"explanation_samples": pd.DataFrame(), "explanation_quality": pd.DataFrame()}
    with serving.connect() as con:
        return {
            "explanation_samples": con.execute(
                "select model, user_id, rank, title, explanation_source, explanation from latest_recommendations "
                "qualify row_number() over (partition by model, explanation_source order by user_id, rank) <= ? "
                "order by model, explanation_source, user_id, rank",
                [EXPLANATION_SAMPLES],
            ).df(),
            "explanation_quality": con.execute("select * from explanation_quality order by model").df(),
        }


# --- figures ----------------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _plt().close(fig)


def plot_group_ndcg(metrics: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    rows = metrics[(metrics.side == "user") & (metrics.metric == "ndcg") & (metrics.k == K)]
    attributes = [a for a in USER_ATTRIBUTES if a in set(rows.attribute)]
    models = sorted(rows.model.unique())
    fig, axes = plt.subplots(len(attributes), 1, figsize=(12, 3.2 * len(attributes)), squeeze=False)
    for ax, attribute in zip(axes[:, 0], attributes):
        part = rows[rows.attribute == attribute]
        sizes = part.groupby("group").n_users.max().sort_values(ascending=False)
        groups = sizes.index.tolist()
        table = part.pivot_table(index="group", columns="model", values="value").reindex(groups)
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            ax.bar(np.arange(len(groups)) + i * width, table.get(model, np.nan), width, label=model)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
        ax.set_xticklabels([f"{g}\n(n={sizes[g]})" for g in groups], fontsize=7, rotation=45 if len(groups) > 8 else 0)
        ax.set_ylabel(f"NDCG@{K}")
        ax.set_title(f"by {attribute} (groups largest first)")
    axes[0, 0].legend(fontsize=7, ncol=min(len(models), 4))
    _save(fig, path)


def plot_lorenz(exposure: dict[str, np.ndarray], summary: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    gini = dict(zip(summary.model, summary[f"exposure_gini_at_{K}"]))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for model, counts in sorted(exposure.items()):
        x, y = lorenz_curve(counts)
        ax.plot(x, y, label=f"{model} (Gini {gini.get(model, np.nan):.2f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="every item shown equally")
    ax.set_xlabel("share of catalogue (least shown first)")
    ax.set_ylabel(f"share of top-{K} slots")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_popularity(summary: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, column, title in [(axes[0], f"popularity_lift_at_{K}", "popularity lift (0 = as popular as users' history)"),
                              (axes[1], f"long_tail_share_at_{K}", "share of slots given to long-tail items")]:
        ax.bar(summary.model, summary[column])
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    _save(fig, path)


def plot_counterfactual(metrics: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    rows = metrics[(metrics.side == "counterfactual") & (metrics.metric == "jaccard") & (metrics.k == K)]
    models = sorted(rows.model.unique())
    attributes = [a for a in COUNTERFACTUAL_ATTRIBUTES if a in set(rows.attribute)]
    # One row of panels per model, one column per attribute.
    n_rows, n_cols = max(len(models), 1), max(len(attributes), 1)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5 * n_cols, 3.8 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for (i, model), (j, attribute) in ((m, a) for m in enumerate(models) for a in enumerate(attributes)):
        ax = axes[i, j]
        ax.set_visible(True)
        part = rows[(rows.model == model) & (rows.attribute == attribute)].sort_values("value")
        summary = metrics[(metrics.model == model) & (metrics.attribute == attribute) & (metrics.group == ALL)
                          & (metrics.k == K)].set_index("metric").value
        ax.barh(part.group, part.value)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"Jaccard@{K} with the neutral prompt's list")
        ax.set_title(f"{model}: {attribute}\nSNSR {summary.get('snsr_jaccard', np.nan):.3f}, "
                     f"SNSV {summary.get('snsv_jaccard', np.nan):.3f}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    if not models:
        axes[0, 0].set_visible(True)
        axes[0, 0].text(0.5, 0.5, "no model that reads a prompt was evaluated", ha="center")
    _save(fig, path)


def plot_tradeoff(tradeoff: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    test = tradeoff[tradeoff.split == "test"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, x, label in [(axes[0], "exposure_gini", f"exposure Gini@{K} (lower = more even)"),
                         (axes[1], "worst_gap", f"worst user-group NDCG@{K} gap (lower = fairer)")]:
        for model, part in test.groupby("model"):
            line = ax.plot(part[x], part.ndcg, marker="o", markersize=3, label=model)[0]
            chosen = part[part.selected]
            ax.plot(chosen[x], chosen.ndcg, marker="*", markersize=14, color=line.get_color(), linestyle="none")
            for r in part.itertuples():
                ax.annotate(f"{r.lam:g}", (getattr(r, x), r.ndcg), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel(f"test NDCG@{K}")
    axes[0].legend(fontsize=7)
    axes[0].set_title("numbers are λ; ★ = λ chosen on the valid split", fontsize=9)
    _save(fig, path)


# --- the markdown page ------------------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _chance(p_value: float) -> str:
    if pd.isna(p_value):
        return ""
    verdict = "unlikely to be chance" if p_value <= 0.05 else "could well be chance"
    return f" ({verdict}: p = {p_value:.2f})"


def report_markdown(data: ReportData, image: Callable[[str], str]) -> str:
    """The report; `image(file name)` gives what goes inside ![..](..) (a relative path, or a data URI)."""
    metrics, summary, tradeoff = data.metrics, data.summary, data.tradeoff
    lines = [
        "# Fairness report",
        "",
        "This page checks three things for every recommendation model: whether some groups of users get worse "
        "recommendations than others, whether the recommendations spread attention over the catalogue or pile it on a "
        "few popular items, and whether the language-model recommenders (every model that reads a text prompt) change "
        "their suggestions when the prompt states the user's gender, age or occupation. It ends with a fix we tried: re-ranking to spread exposure, and what it costs.",
        "",
        f"All accuracy numbers are NDCG@{K} on the test split (each user's last interaction, ranked against the whole "
        "catalogue; 1 would mean it is always first, 0 that it is never in the top 10).",
        "",
        "## 1. Do some users get worse recommendations?",
        "",
        "For each attribute we compare groups with enough users to measure (small groups are shown in the figure but "
        "not compared). The *gap* is best group minus worst group; the *ratio* is worst ÷ best (1 = equal). The "
        "p-value says how often a gap this large appears when users are shuffled between groups at random.",
        "",
    ]
    for attribute in USER_ATTRIBUTES:
        gap_column = f"{attribute}_ndcg_gap_at_{K}"
        if summary[gap_column].isna().all():
            lines.append(f"- **{attribute}**: no two groups large enough to compare.")
            continue
        worst = summary.loc[summary[gap_column].idxmax()]
        lines.append(
            f"- **{attribute}**: the largest gap is for `{worst.model}`, whose worst group "
            f"*{worst[f'{attribute}_worst_group']}* gets {_fmt(worst[gap_column])} less NDCG@{K} than its best "
            f"(ratio {_fmt(worst[f'{attribute}_ndcg_ratio_at_{K}'], 2)}){_chance(worst[f'{attribute}_gap_p_value'])}."
        )
    lines += ["", "Worst group, its NDCG@10 gap to the best group, and the p-value, per model:", "",
              _gap_table(summary).to_markdown(index=False), "", f"![{FIGURES['group_ndcg.png']}]({image('group_ndcg.png')})", ""]

    lines += [
        "## 2. Which items get shown?",
        "",
        f"Measured on the published top-{K} lists. *Exposure Gini*: 0 = every catalogue item is shown equally often, "
        "1 = a single item takes every slot. *Coverage*: share of the catalogue shown to anyone. *Popularity lift*: how "
        "much more popular the recommended items are than what the users watched (0 = as popular; +0.5 = 50% more). "
        "*Long-tail share*: share of slots given to items outside the 20% most-watched.",
        "",
        summary[["model", *[f"{m}_at_{K}" for m in ("exposure_gini", "catalogue_coverage", "popularity_lift",
                                                    "long_tail_share")]]].round(3).to_markdown(index=False),
        "",
        f"![{FIGURES['lorenz.png']}]({image('lorenz.png')})",
        "",
        f"![{FIGURES['popularity.png']}]({image('popularity.png')})",
        "",
        "## 3. Does naming a sensitive attribute change the language models' suggestions?",
        "",
    ]
    counterfactual = metrics[metrics.side == "counterfactual"]
    if counterfactual.empty:
        lines.append("No model that reads a prompt was evaluated in this run.")
    else:
        n_users = int(counterfactual.n_users.max())
        probed = ", ".join(f"`{m}`" for m in sorted(counterfactual.model.unique()))
        lines += [
            f"Models that read a text prompt: {probed}. Each is probed through its own prompt template, with the "
            "same users and the same attribute values; the re-ranker's prompt only re-orders its retriever's "
            "candidates, so its list can move less.",
            "",
            f"Following FaiRLLM (Zhang et al., RecSys 2023), each of {n_users} sampled test users' prompts was "
            "re-written to start with, e.g., \"As a female viewer, ...\" — once for every value of gender, age bracket "
            f"and occupation — and the new top-{K} compared with the top-{K} of the neutral prompt (*Jaccard*: shared "
            "items ÷ all items; SERP* and PRAG* also weigh the order). Ideally every value moves the list equally: "
            "*SNSR* is the spread (most-similar minus least-similar value) and *SNSV* the standard deviation across "
            "values; 0 = every value treated alike.",
            "",
        ]
        for (model, attribute), part in counterfactual[(counterfactual.group != ALL) & (counterfactual.metric == "jaccard")
                                                       & (counterfactual.k == K)].groupby(["model", "attribute"]):
            low, high = part.loc[part.value.idxmin()], part.loc[part.value.idxmax()]
            lines.append(
                f"- `{model}`, **{attribute}**: naming *{low.group}* keeps {_fmt(low.value, 2)} of the neutral list "
                f"(Jaccard), naming *{high.group}* keeps {_fmt(high.value, 2)}."
            )
        wide = counterfactual[counterfactual.group == ALL].pivot_table(
            index=["model", "attribute"], columns=["metric", "k"], values="value")
        wide.columns = [f"{m}@{k}" for m, k in wide.columns]
        lines += ["", wide.round(3).reset_index().to_markdown(index=False), "",
                  f"![{FIGURES['counterfactual.png']}]({image('counterfactual.png')})", ""]

    test = tradeoff[tradeoff.split == "test"]
    lines += [
        "## 4. The fix: exposure-aware re-ranking",
        "",
        f"Each model's {int(test.n_candidates.min())} best unseen items per user are re-ranked, trading relevance "
        "against how often an item has already been shown (λ = 0: the model's own order; larger λ: more spreading). "
        f"λ is chosen on the validation split as the largest whose NDCG@{K} is at most "
        f"{data.reranking['max_ndcg_cost']:.0%} below λ = 0; the numbers below are on the test split, which played no "
        "part in the choice.",
        "",
    ]
    for r in test[test.selected].itertuples():
        lines.append(
            f"- `{r.model}`: λ = {r.lam:g} changes NDCG@{K} by {-r.ndcg_cost:+.1%}, exposure Gini by "
            f"{r.gini_change:+.1%} and the worst group gap by {_fmt_change(r.gap_change)} — the target (Gini or worst "
            f"gap down ≥ {GOAL_DROP:.0%} at ≤ {GOAL_COST:.0%} NDCG cost) is {'met' if goal_met(r) else 'not met'}."
        )
    lines += [
        "",
        test[["model", "lam", "ndcg", "ndcg_cost", "exposure_gini", "gini_change", "catalogue_coverage",
              "long_tail_share", "worst_gap", "worst_gap_attribute", "selected"]].round(4).to_markdown(index=False),
        "",
        f"![{FIGURES['tradeoff.png']}]({image('tradeoff.png')})",
        "",
        *explanation_section(data.explanation_samples, data.explanation_quality),
        "## How to read this with care",
        "",
        "- Groups with few users give noisy numbers; a gap with a large p-value may be chance.",
        "- A smaller group gap after re-ranking can come from the best group losing accuracy rather than the worst "
        "group gaining: check NDCG alongside the gap.",
        "- The counterfactual test covers the models that read a text prompt, on a sample of users; it measures how much "
        "the list moves, not whether the moved list is worse. A model whose list barely moves for every value (e.g. "
        "a re-ranker bound to its retriever's candidates) scores near 0 without having learnt to ignore the attribute.",
    ]
    return "\n".join(lines) + "\n"


def explanation_section(samples: pd.DataFrame, quality: pd.DataFrame) -> list[str]:
    """Section 5: how the published explanations were made, what the LM's were worth, and a few of them."""
    lines = ["## 5. Why each item is recommended: the published explanations", ""]
    if quality.empty:
        return [*lines, "Nothing has been published yet.", ""]
    return [
        *lines,
        "Every published recommendation carries a sentence saying why, and `explanation_source` says how it was made: "
        "*template* names only titles from the user's own history and the categories the item shares with them; "
        "*lm_generated* is written by a generative model about its own top recommendations, and is published only if "
        "it names at least one of the item's categories and none it lacks (a hallucination), and is not empty or "
        "looping; a rejected sentence is counted and the row gets the template instead. *USR*: share of distinct "
        "sentences; *FCR*: share of the "
        "catalogue's categories ever named; *DIV*: categories two explanations share on average (lower = more "
        "varied); *FMR*: how often the template explanation of a user's held-out item names one of its categories.",
        "",
        quality[["model", "n_explanations", "n_lm_generated", "n_lm_published", "n_hallucinations_rejected",
                 "n_ungrounded_rejected", "n_degenerate_rejected", "hallucination_rate_generated",
                 "hallucination_rate_published", "usr", "fcr", "div", "fmr"]].round(3).to_markdown(index=False),
        "",
        f"Samples (the first users' rows, up to {EXPLANATION_SAMPLES} per model and source):",
        "",
        samples.to_markdown(index=False),
        "",
    ]


def goal_met(row) -> bool:
    """The issue's target for one trade-off row (a namedtuple or Series with ndcg_cost, gini_change, gap_change)."""
    return bool(row.ndcg_cost <= GOAL_COST and (row.gini_change <= -GOAL_DROP or row.gap_change <= -GOAL_DROP))


def _gap_table(summary: pd.DataFrame) -> pd.DataFrame:
    """model × attribute cells such as "F: 0.020 (p 0.60)"."""
    table = pd.DataFrame({"model": summary.model})
    for a in USER_ATTRIBUTES:
        table[a] = [
            "–" if pd.isna(r[f"{a}_ndcg_gap_at_{K}"])
            else f"{r[f'{a}_worst_group']}: {r[f'{a}_ndcg_gap_at_{K}']:.3f} (p {r[f'{a}_gap_p_value']:.2f})"
            for r in summary.to_dict("records")
        ]
    return table


def _fmt_change(value: float) -> str:
    return "n/a (no gap at λ = 0)" if pd.isna(value) else f"{value:+.1%}"


def write_report(data: ReportData, folder: Path) -> str:
    """Write the figures and report.md into `folder`; return the markdown with the images inlined (for the UI)."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_group_ndcg(data.metrics, folder / "group_ndcg.png")
    plot_lorenz(data.exposure, data.summary, folder / "lorenz.png")
    plot_popularity(data.summary, folder / "popularity.png")
    plot_counterfactual(data.metrics, folder / "counterfactual.png")
    plot_tradeoff(data.tradeoff, folder / "tradeoff.png")
    (folder / "report.md").write_text(report_markdown(data, image=lambda name: name))
    return report_markdown(
        data, image=lambda name: f"data:image/png;base64,{base64.b64encode((folder / name).read_bytes()).decode()}"
    )


@asset(
    group_name="evaluation",
    deps=PARENTS,
    kinds={"python", "matplotlib"},
    owners=["team:ml"],
    description="A plain-language fairness report (report.md + PNG figures: NDCG per user group, exposure Lorenz "
    "curves, popularity lift, counterfactual-prompt similarity, mitigation trade-off; sample published explanations "
    "per model with their source and quality) → reports/fairness/<version>/, also shown inline here.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
)
def fairness_report(
    context: AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource,
    serving: ServingResource,
) -> MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        parents = latest_artifacts(con, PARENTS)
        version = content_version(CODE_VERSION, sorted(zip(parents["asset_key"], parents["version"])))
        if reused := reuse_if_unchanged(context, con, "fairness_report", version, "same evaluations"):
            return reused
        data = load_report_data(con, serving)
    folder = artifacts.reports_dir / "fairness" / version
    inline = write_report(data, folder)
    with warehouse.connect() as con:
        con.begin()
        record_artifact(con, asset_key="fairness_report", version=version, run_id=context.run_id,
                        code_version=CODE_VERSION, parent_keys=PARENTS, path=folder,
                        details={"models": sorted(data.summary.model)})
        con.commit()
    return MaterializeResult(data_version=DataVersion(version), metadata={
        "outcome": "written",
        "report": MetadataValue.md(inline),
        "report_path": MetadataValue.path(str(folder / "report.md")),
        "files": sorted(p.name for p in folder.iterdir()),
    })
