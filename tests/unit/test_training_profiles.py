"""Training profiles (models/profiles.py): the default per dataset, nightly = QUALITY, the user's run config wins, the
run budget's split, and the benchmark and the model assets getting their params from the same function."""

import importlib.util
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterInstance, asset, materialize

from lmrec_assets.models import lm_finetune, lm_rerank, profiles, sasrec
from lmrec_assets.models.assets import MODELS, resolve_training
from lmrec_assets.models.lm_finetune import LMFinetune
from lmrec_assets.models.lm_rerank import LMRerank
from lmrec_assets.models.sasrec import SASRec, SASRecParams
from lmrec_assets.resources import TrainingProfileResource, default_resources

ROOT = Path(__file__).resolve().parents[2]
CLASSES = {name: cls for name, (cls, _) in MODELS.items()}


def leaderboard():
    spec = importlib.util.spec_from_file_location("leaderboard_under_test", ROOT / "benchmarks" / "leaderboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("source", "expected"), [
    ("demo", "demo"), ("movielens-100k", "nightly"), ("movielens-1m", "nightly"),
    ("movielens-latest-small", "nightly"), ("files", "nightly"),
])
def test_default_profile_follows_the_dataset(source, expected):
    assert profiles.default_profile(source) == expected
    assert profiles.resolve_profile("", source) == expected
    assert profiles.resolve_profile(None, source) == expected


def test_configured_profile_beats_the_dataset_default_and_typos_fail():
    assert profiles.resolve_profile("nightly", "demo") == "nightly"
    assert profiles.resolve_profile(" Demo ", "movielens-100k") == "demo"
    with pytest.raises(ValueError, match="nightly"):
        profiles.resolve_profile("nighty", "demo")


def test_env_vars_and_run_config_reach_the_training_resource(monkeypatch):
    seen = []

    @asset
    def probe(training: TrainingProfileResource) -> None:
        seen.append((training.profile, training.budget_minutes))

    def run(run_config=None):
        materialize([probe], resources={"training": default_resources()["training"]}, run_config=run_config,
                    instance=DagsterInstance.ephemeral(), raise_on_error=True)
        return seen[-1]

    monkeypatch.delenv("LMREC_PROFILE", raising=False)
    monkeypatch.delenv("LMREC_TRAINING_BUDGET_MINUTES", raising=False)
    assert run() == ("", None)
    monkeypatch.setenv("LMREC_PROFILE", "nightly")
    monkeypatch.setenv("LMREC_TRAINING_BUDGET_MINUTES", "30")
    assert run() == ("nightly", 30.0)
    # Per run, in the launchpad: the resource's config beats the environment.
    assert run({"resources": {"training": {"config": {"profile": "demo", "budget_minutes": 5}}}}) == ("demo", 5.0)


@pytest.mark.parametrize(("model_class", "module"), [(SASRec, sasrec), (LMFinetune, lm_finetune), (LMRerank, lm_rerank)])
def test_nightly_params_are_quality(model_class, module):
    params = profiles.training_params(model_class, "nightly")
    assert params.model_dump() == model_class.Params(**module.QUALITY).model_dump()
    assert {k: params.model_dump()[k] for k in module.QUALITY} == module.QUALITY
    assert profiles.training_params(model_class, "demo").model_dump() == model_class.Params().model_dump()


def test_every_model_quality_is_applied_under_nightly():
    for model_class in CLASSES.values():
        dumped = profiles.training_params(model_class, "nightly").model_dump()
        assert {k: dumped[k] for k in profiles.quality(model_class)} == profiles.quality(model_class)


def test_values_the_user_set_in_run_config_win():
    """Through real Dagster run config: every key the user set beats the profile and the budget cap, even one equal to
    the demo default (Dagster drops those from the config object; the run's own config still has them)."""
    seen = []

    @asset
    def probe(context: AssetExecutionContext, config: SASRecParams) -> None:
        typed = profiles.op_run_config(context.run.run_config, context.op_execution_context.op.name)
        seen.append(profiles.training_params(SASRec, "nightly", profiles.user_set(config, typed), budget_share=1.0))

    def run(op_config):
        materialize([probe], run_config={"ops": {"probe": {"config": op_config}}}, instance=DagsterInstance.ephemeral(),
                    raise_on_error=True)
        return seen[-1]

    params = run({"max_epochs": 2, "ensemble": 1})  # ensemble 1 is SASRec's default: still the user's choice
    assert (params.max_epochs, params.ensemble) == (2, 1)
    assert (params.window_stride, params.label_smoothing, params.patience) == (10, 0.1, 6)  # QUALITY's
    assert params.max_minutes == 1.0  # QUALITY's 5.0 capped by the budget share (one member)
    params = run({"max_minutes": 0.75})  # a max_minutes the user set beats the cap and QUALITY
    assert (params.max_minutes, params.ensemble, params.max_epochs) == (0.75, 3, 60)
    params = run({})
    assert params.model_dump() == profiles.training_params(SASRec, "nightly", budget_share=1.0).model_dump()
    assert params.max_minutes == pytest.approx(0.33)  # 1 minute shared by QUALITY's 3 members, rounded down


def test_enum_fields_dagster_fills_in_are_not_user_set():
    """Dagster sets every Literal (enum) field on the config object (lm_rerank's `ranker`, lm_finetune's `mode`); only
    a submitted value may beat the profile, else a QUALITY that sets one would be silently ignored."""
    from lmrec_assets.models.lm_rerank import LMRerankParams

    seen = []

    @asset
    def probe(context: AssetExecutionContext, config: LMRerankParams) -> None:
        assert "ranker" in config.model_fields_set  # what Dagster does (the reason for the check)
        seen.append(profiles.user_set(config, profiles.op_run_config(context.run.run_config, context.op_execution_context.op.name)))

    for op_config, user_set in [({}, {}), ({"ranker": "lora"}, {"ranker": "lora"}),
                                ({"ranker": "zero_shot", "candidates": 20}, {"ranker": "zero_shot", "candidates": 20})]:
        materialize([probe], run_config={"ops": {"probe": {"config": op_config}}}, instance=DagsterInstance.ephemeral(),
                    raise_on_error=True)
        assert seen[-1] == user_set  # {}: the profile decides; "lora" (the default) set by the user: kept


def test_user_set_reads_the_submitted_op_config():
    run_config = {"ops": {"sasrec": {"config": {"ensemble": 1, "unknown": 2}}, "ease": {"config": {"seed": 3}}}}
    typed = profiles.op_run_config(run_config, "sasrec")
    assert profiles.user_set(SASRecParams(), typed) == {"ensemble": 1}
    assert profiles.user_set(SASRecParams(max_epochs=4), {}) == {"max_epochs": 4}
    assert profiles.op_run_config(None, "sasrec") == {} and profiles.op_run_config({"ops": {}}, "sasrec") == {}


def test_demo_profile_keeps_the_run_config_exactly():
    config = SASRecParams(max_epochs=1, max_minutes=0.25)
    params, info = resolve_training("sasrec", config, TrainingProfileResource(), "demo")
    assert params.model_dump() == config.model_dump()
    assert info == {"profile": "demo", "budget_minutes": None, "budget_share_minutes": None}


@pytest.mark.parametrize("budget", [0.05, 1.0, 10.0, 45.0, 76.0, 500.0])
@pytest.mark.parametrize("profile", ["demo", "nightly"])
def test_budget_split_sums_to_at_most_the_total(budget, profile):
    shares = profiles.budget_shares(CLASSES, profile, budget)
    assert set(shares) == {n for n, cls in CLASSES.items() if profiles.budgeted(cls)}
    assert {"sasrec", "hybrid_seq", "lm_finetune", "lm_prompt_tuning", "generative_p5", "lm_rerank"} <= set(shares)
    assert not {"popularity", "zero_shot_prompt"} & set(shares)
    assert sum(shares.values()) <= budget + 1e-9
    spent = 0.0
    for name, share in shares.items():
        params = profiles.training_params(CLASSES[name], profile, budget_share=share)
        uncapped = profiles.training_params(CLASSES[name], profile)
        assert params.max_minutes <= uncapped.max_minutes  # a budget never lengthens training
        spent += params.max_minutes * getattr(params, "ensemble", 1)
    assert spent <= budget + 1e-9


def test_budget_shares_are_proportional_to_nightly_minutes_times_ensemble():
    shares = profiles.budget_shares(CLASSES, "nightly", 45.0)
    weight = lambda name: profiles.quality(CLASSES[name])["max_minutes"] * profiles.quality(CLASSES[name]).get("ensemble", 1)  # noqa: E731
    total = sum(weight(name) for name in shares)
    for name, share in shares.items():
        assert share == pytest.approx(45.0 * weight(name) / total, abs=0.01)
    sasrec_params = profiles.training_params(SASRec, "nightly", budget_share=shares["sasrec"])
    assert sasrec_params.max_minutes == pytest.approx(shares["sasrec"] / 3, abs=0.01)  # per member of the ensemble


def test_nightly_budget_defaults_to_45_minutes_and_demo_has_none():
    assert profiles.run_budget("nightly", None) == 45.0
    assert profiles.run_budget("demo", None) is None
    assert profiles.run_budget("nightly", 0) is None
    assert profiles.run_budget("demo", 12) == 12.0
    params, info = resolve_training("sasrec", SASRecParams(), TrainingProfileResource(), "movielens-100k")
    assert info["profile"] == "nightly" and info["budget_minutes"] == 45.0
    assert info["budget_share_minutes"] == profiles.budget_shares(CLASSES, "nightly", 45.0)["sasrec"]
    assert params.window_stride == sasrec.QUALITY["window_stride"]


def test_leaderboard_and_model_asset_call_the_same_function(monkeypatch):
    calls = []
    original = profiles.training_params

    def spy(model_class, profile, overrides=None, **kwargs):
        calls.append((model_class.name, profile))
        return original(model_class, profile, overrides, **kwargs)

    monkeypatch.setattr(profiles, "training_params", spy)
    board = leaderboard()
    for name in MODELS:
        calls.clear()
        asset_params, _ = resolve_training(name, CLASSES[name].Params(), TrainingProfileResource(profile="nightly",
                                                                                                   budget_minutes=0), "demo")
        assert (name, "nightly") in calls
        calls.clear()
        bench_params = board.benchmark_params(name, {"ensemble": 1, "not_a_param": 3})
        assert calls == [(name, "nightly")]
        expected = original(CLASSES[name], "nightly", {"ensemble": 1} if "ensemble" in CLASSES[name].Params.model_fields else {})
        assert bench_params.model_dump() == expected.model_dump()
        if "ensemble" not in CLASSES[name].Params.model_fields:
            assert bench_params.model_dump() == asset_params.model_dump()
    # With the same budget, the benchmark trains exactly what the nightly asset trains.
    nightly, _ = resolve_training("sasrec", SASRecParams(), TrainingProfileResource(budget_minutes=45), "movielens-100k")
    assert board.benchmark_params("sasrec", {}, 45.0).model_dump() == nightly.model_dump()
    assert "benchmark_params(name, override, budget_minutes)" in (ROOT / "benchmarks" / "leaderboard.py").read_text()
