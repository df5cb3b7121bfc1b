"""What each experiment runs: domains, models with their budgets, fractions, seeds. A profile is chosen by name
(asset config `profile`, or `benchmarks/experiments.py --profile`), so the full grid and an affordable cut are the same
code with different settings.

- `standard` (default): the issue's whole grid with short budgets, sized to the 90-minute budget on 2 cores: every
  family (EASE, SASRec, hybrid, zero-shot, LoRA, prompt tuning, and lm_rerank over the retrievers trained on the
  same users) at 1/5/10/25/100% of training users on ML-100K and
  on Amazon Toys; sparsity buckets of the 100% models; transfer ML-100K → Toys and Toys → ML-100K for LoRA and
  prompt tuning (zero-shot, few-shot at 1% and 10%); LoRA / full / prompt tuning efficiency. Cut to fit: one seed;
  1 minute of training per LM run and 45 s per SASRec / hybrid run (the leaderboard gives them 5-7 minutes); EASE's
  λ grid of 3 values; Toys evaluated on a seeded sample of 1,000 users (full ranking kept); the MovieLens source of
  the transfer is ML-100K alone (the issue: ML-100K + ml-latest-small).
- `full`: the same grid with 3 seeds, 3-minute budgets, EASE's whole λ grid and 2,000 Toys users: several hours on
  2 cores, not run.
- `low_data`: `standard` cut to ML-100K at 5% of the training users (the data-efficiency target), minutes.
- `tiny`: the tests' end-to-end run on two differently-seeded demo data sets (seconds per model).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lmrec_assets.experiments.domains import DomainSpec, amazon_toys, movielens_100k

# Families compared by the data-efficiency claim: ID-only models against models that read item text through the LM.
ID, LM, TEXT_ID = "id", "lm", "text+id"


@dataclass(frozen=True)
class ModelSetup:
    """A model of the MODELS registry with the params an experiment trains it with (on top of its defaults)."""

    registry: str
    family: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TransferSetup:
    source: str  # domain names
    target: str
    models: tuple[str, ...]  # model labels; LM-adapted models only (their adapter / prompt carries over)
    fractions: tuple[float, ...]  # few-shot: share of target training users


@dataclass(frozen=True)
class Profile:
    name: str
    domains: dict[str, DomainSpec]
    models: dict[str, ModelSetup]  # label -> setup
    data_efficiency_domains: tuple[str, ...]
    data_efficiency_models: tuple[str, ...]
    fractions: tuple[float, ...]
    bucket_fraction: float  # which data-efficiency models the sparsity buckets evaluate
    transfers: tuple[TransferSetup, ...]
    finetune_domain: str
    finetune_models: tuple[str, ...]
    isolate: bool = True  # finetune-vs-prompt runs each in a fresh process (their own peak RSS)
    seeds: tuple[int, ...] = (7,)


def _lm(minutes: float, epochs: int = 30, **extra) -> dict:
    # patience 3 on valid NDCG@10; epochs of a small fraction are a few steps, so the time budget binds at 100% only
    return {"examples_per_user": 2, "max_epochs": epochs, "max_minutes": minutes, "patience": 3, **extra}


def _seq(minutes: float) -> dict:
    return {"max_epochs": 60, "max_minutes": minutes, "patience": 4}


def _models(lm_minutes: float, seq_minutes: float, ease: dict | None = None) -> dict[str, ModelSetup]:
    return {
        "ease": ModelSetup("ease", ID, ease or {}),
        "sasrec": ModelSetup("sasrec", ID, _seq(seq_minutes)),
        "hybrid": ModelSetup("hybrid_seq", TEXT_ID, _seq(seq_minutes)),
        "zero_shot": ModelSetup("zero_shot_prompt", LM),
        "lora": ModelSetup("lm_finetune", LM, _lm(lm_minutes)),
        "full_finetune": ModelSetup("lm_finetune", LM, _lm(lm_minutes, mode="full")),
        "prompt_tuning": ModelSetup("lm_prompt_tuning", LM, _lm(lm_minutes)),
        # Two-stage: the LoRA ranker over the candidates of the ID / hybrid models trained on the same users
        # (`data_efficiency_models` lists it after them); a model with an LM ranker counts as LM-based.
        "rerank": ModelSetup("lm_rerank", LM, _lm(lm_minutes)),
    }


def _grid(name: str, models: dict[str, ModelSetup], toys_eval_users: int, seeds: tuple[int, ...]) -> Profile:
    """The issue's whole grid; profiles differ in budgets, seeds and how many Toys users are evaluated."""
    lm_models = ("lora", "prompt_tuning")
    return Profile(
        name=name,
        domains={"ml100k": movielens_100k(), "toys": amazon_toys(eval_users=toys_eval_users)},
        models=models,
        data_efficiency_domains=("ml100k", "toys"),
        data_efficiency_models=("ease", "sasrec", "hybrid", "zero_shot", "lora", "prompt_tuning", "rerank"),
        fractions=(0.01, 0.05, 0.1, 0.25, 1.0),
        bucket_fraction=1.0,
        transfers=(TransferSetup("ml100k", "toys", lm_models, (0.01, 0.1)),
                   TransferSetup("toys", "ml100k", lm_models, (0.01, 0.1))),
        finetune_domain="ml100k",
        finetune_models=("lora", "full_finetune", "prompt_tuning"),
        seeds=seeds,
    )


def _standard() -> Profile:
    return _grid("standard", _models(lm_minutes=1.0, seq_minutes=0.75, ease={"l2_grid": [50.0, 250.0, 1000.0]}),
                 toys_eval_users=1000, seeds=(7,))


def _full() -> Profile:
    return _grid("full", _models(lm_minutes=3.0, seq_minutes=3.0), toys_eval_users=2000, seeds=(7, 8, 9))


def _low_data() -> Profile:
    """The issue's data-efficiency target alone: ML-100K at 5% of the training users, standard budgets, every model
    of the data-efficiency comparison (minutes, where `standard` takes an hour and a half)."""
    standard = _standard()
    return replace(standard, name="low_data", domains={"ml100k": standard.domains["ml100k"]},
                   data_efficiency_domains=("ml100k",), fractions=(0.05,), bucket_fraction=0.05, transfers=(),
                   finetune_models=())


def _tiny() -> Profile:
    """Two demo data sets with different seeds stand in for two domains (their catalogues and texts differ)."""
    tiny_lm = {"examples_per_user": 1, "max_epochs": 1, "max_steps": 2, "max_minutes": 0.2, "eval_batch_size": 64}
    tiny_seq = {"max_epochs": 1, "max_minutes": 0.1}
    return Profile(
        name="tiny",
        domains={"demo_a": DomainSpec("demo_a", "demo", seed=7, scale=0.05),
                 "demo_b": DomainSpec("demo_b", "demo", seed=11, scale=0.05, eval_users=30)},
        models={
            "ease": ModelSetup("ease", ID, {"l2_grid": [100.0]}),
            "sasrec": ModelSetup("sasrec", ID, tiny_seq),
            "hybrid": ModelSetup("hybrid_seq", TEXT_ID, tiny_seq),
            "zero_shot": ModelSetup("zero_shot_prompt", LM),
            "lora": ModelSetup("lm_finetune", LM, tiny_lm),
            "prompt_tuning": ModelSetup("lm_prompt_tuning", LM, tiny_lm),
            "rerank": ModelSetup("lm_rerank", LM, {"examples_per_user": 1, "max_epochs": 1, "max_steps": 2,
                                                   "max_minutes": 0.2, "candidates": 20}),
        },
        data_efficiency_domains=("demo_a",),
        data_efficiency_models=("ease", "sasrec", "hybrid", "zero_shot", "lora", "rerank"),
        fractions=(0.25, 1.0),
        bucket_fraction=1.0,
        transfers=(TransferSetup("demo_a", "demo_b", ("lora",), (0.5,)),
                   TransferSetup("demo_b", "demo_a", ("prompt_tuning",), (0.5,))),
        finetune_domain="demo_a",
        finetune_models=("lora", "prompt_tuning"),
        isolate=False,
    )


PROFILES = {"standard": _standard, "full": _full, "low_data": _low_data, "tiny": _tiny}
DEFAULT_PROFILE = "standard"


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown experiment profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]()
