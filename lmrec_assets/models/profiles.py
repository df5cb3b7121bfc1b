"""Training profiles: which hyperparameters and how much training time the model assets use, chosen by configuration.

Profiles
- `demo`: every Params class's defaults (demo-sized, so `make demo` stays within minutes on 2 cores).
- `nightly`: the model module's `QUALITY` dict over those defaults: the MovieLens-sized setting. The benchmarks
  (benchmarks/leaderboard.py) and the model assets both get their params from `training_params`, so what the
  leaderboard measures is what the nightly refresh trains.

Which profile: the `training` resource's `profile` (`LMREC_PROFILE`, or `resources: {training: {config: {profile:
nightly}}}` in a run's config). Empty (the default) means `demo` when the dataset (`LMREC_DATASET`) is the bundled
synthetic `demo`, `nightly` for every other source (`default_profile`).

Precedence of a model's params, highest first:
1. values the user set in the model asset's run config (`ops: {<model>: {config: ...}}` in the launchpad, a `-c`
   file or a schedule): every key present there wins, even when its value equals the demo default (`ensemble: 1`
   under `nightly` trains one member). The keys are read from the run's own config (`DagsterRun.run_config`), because
   the config object Dagster builds cannot tell them apart (it drops values equal to the default). Hence a launchpad
   config scaffolded with every default pins all of them: delete the keys you do not mean to set;
2. the run budget's cap on `max_minutes` (skipped when the user set `max_minutes`);
3. the profile's settings (`QUALITY` under `nightly`, none under `demo`);
4. the Params defaults.

Run budget (`budget_shares`). `LMREC_TRAINING_BUDGET_MINUTES` / the resource's `budget_minutes` is the training time
of the whole run, B (default: 45 under `nightly`, none under `demo`; 0 = none). It is shared by the models trained
against a clock, i.e. those whose `QUALITY` sets `max_minutes` (sasrec, hybrid_seq, lm_finetune, lm_prompt_tuning,
generative_p5, lm_rerank); closed-form and untrained models (popularity, EASE, zero-shot) get no share. Model m's
weight is w_m = max_minutes_m × ensemble_m under the profile (`ensemble` members train one after another, each with
max_minutes; 1 when the model has no ensemble), its share s_m = B · w_m / Σ w, rounded down to 0.01 min, so
Σ s_m ≤ B. Shares are computed over every model in MODELS, whether or not the run selects it, so a model's params
(and its version) do not depend on the selection. The model trains with max_minutes = min(profile max_minutes,
s_m / ensemble), rounded down to 0.01 min: a budget never lengthens training. The budget caps the training clocks
only: valid-split scoring at the end of fit, evaluation and the other assets come on top, and a clock is read after
each optimizer step, so a model can overshoot by one step and its final evaluation.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from lmrec_assets.models.base import ModelParams

DEMO, NIGHTLY = "demo", "nightly"
PROFILES = (DEMO, NIGHTLY)
DEMO_DATASET = "demo"  # DatasetResource.source of the bundled synthetic data
NIGHTLY_BUDGET_MINUTES = 45.0  # default run budget under `nightly`


def default_profile(dataset_source: str) -> str:
    """`demo` for the bundled synthetic data, `nightly` for every other dataset."""
    return DEMO if dataset_source == DEMO_DATASET else NIGHTLY


def resolve_profile(profile: str | None, dataset_source: str) -> str:
    """The configured profile, or the dataset's default when it is empty."""
    profile = (profile or "").strip().lower()
    if not profile:
        return default_profile(dataset_source)
    if profile not in PROFILES:
        raise ValueError(f"Unknown training profile {profile!r} (LMREC_PROFILE); choose one of {', '.join(PROFILES)}, "
                         "or leave it empty for the dataset's default")
    return profile


def run_budget(profile: str, budget_minutes: float | None) -> float | None:
    """Minutes of training for the whole run: the configured value, 45 under `nightly` when unset, None = no budget."""
    if budget_minutes is None:
        return NIGHTLY_BUDGET_MINUTES if profile == NIGHTLY else None
    return float(budget_minutes) if budget_minutes > 0 else None


def quality(model_class: type) -> dict[str, Any]:
    """The model module's `QUALITY` dict (the MovieLens-sized setting), {} when it has none."""
    return dict(getattr(sys.modules[model_class.__module__], "QUALITY", {}))


def profile_settings(model_class: type, profile: str) -> dict[str, Any]:
    """What the profile sets over the Params defaults."""
    if profile not in PROFILES:
        raise ValueError(f"Unknown training profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return quality(model_class) if profile == NIGHTLY else {}


def budgeted(model_class: type) -> bool:
    """Whether the model trains against a clock and so takes a share of the run budget (its QUALITY sets max_minutes)."""
    return "max_minutes" in quality(model_class)


def _floor(minutes: float) -> float:
    return math.floor(minutes * 100 + 1e-9) / 100


def budget_shares(model_classes: Mapping[str, type], profile: str, budget_minutes: float | None) -> dict[str, float]:
    """{model: minutes of the run budget} for the budgeted models (rule in the module docstring); {} without a budget."""
    if budget_minutes is None:
        return {}
    weights = {}
    for name, model_class in model_classes.items():
        if budgeted(model_class):
            params = training_params(model_class, profile)
            weights[name] = params.max_minutes * getattr(params, "ensemble", 1)
    total = sum(weights.values())
    if total <= 0:
        return {}
    return {name: _floor(budget_minutes * weight / total) for name, weight in weights.items()}


def training_params(
    model_class: type, profile: str, overrides: Mapping[str, Any] | None = None, *, budget_share: float | None = None
) -> ModelParams:
    """The params a model trains with: Params defaults < profile settings < budget cap < `overrides` (the values a
    user set). The one function the model assets and the benchmarks call."""
    overrides = dict(overrides or {})
    settings = profile_settings(model_class, profile) | overrides
    params = model_class.Params(**settings)
    if budget_share is not None and "max_minutes" not in overrides:
        cap = _floor(budget_share / max(1, getattr(params, "ensemble", 1)))
        if cap < params.max_minutes:
            params = model_class.Params(**settings | {"max_minutes": cap})
    return params


def user_set(config: ModelParams, run_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values the user set (precedence 1 above): the keys of the asset's `run_config` (its `ops.<name>.config`
    mapping as submitted), and the fields set explicitly on `config` whose value differs from the default, with
    `config`'s validated values.

    The default check is needed because Dagster builds the config object with every enum field set explicitly (a
    `Literal` field such as lm_rerank's `ranker` arrives in `model_fields_set` though nobody set it), which would
    otherwise pin the demo default over the profile: the first measured nightly run trained lm_rerank's LoRA ranker
    instead of QUALITY's soft prompt for that reason. A value the user really set equal to the default is still in
    the submitted `run_config`."""
    fields = type(config).model_fields
    explicit = {k for k in config.model_fields_set if getattr(config, k) != fields[k].get_default(call_default_factory=True)}
    keys = explicit | {k for k in (run_config or {}) if k in fields}
    return config.model_dump(include=keys)


def op_run_config(run_config: Mapping[str, Any] | None, op_name: str) -> dict[str, Any]:
    """`ops.<op_name>.config` of a run's config as submitted ({} when absent)."""
    op = ((run_config or {}).get("ops") or {}).get(op_name) or {}
    return dict(op.get("config") or {}) if isinstance(op, Mapping) else {}
