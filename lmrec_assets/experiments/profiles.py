"""What each experiment runs: domains, models with their budgets, fractions, seeds. A profile is chosen by name
(asset config `profile`, or `benchmarks/experiments.py --profile`), so the full grid and an affordable cut are the same
code with different settings.

- `full`: the issue's whole grid (every family, 1-100% of users, both domains, both transfer directions). Not run on
  the 2-core machine: estimated well above the 90-minute budget (about 70 LM fits).
- `reduced` (default): what was run and committed: ML-100K data efficiency at 5/25/100% for EASE, SASRec, zero-shot
  and LoRA with short budgets; buckets from those models; LoRA / full / prompt tuning efficiency; ML-100K → Toys
  transfer of LoRA (zero-shot and 10% few-shot), Toys evaluated on a sample of 1,000 users (full ranking kept);
  LM budgets 1 minute of training, SASRec 45 s (the shared machine's queue left about 30 minutes of CPU).
- `tiny`: the tests' end-to-end run on two differently-seeded demo data sets (seconds per model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def _models(lm_minutes: float, seq_minutes: float) -> dict[str, ModelSetup]:
    return {
        "ease": ModelSetup("ease", ID),
        "sasrec": ModelSetup("sasrec", ID, _seq(seq_minutes)),
        "hybrid": ModelSetup("hybrid_seq", TEXT_ID, _seq(seq_minutes)),
        "zero_shot": ModelSetup("zero_shot_prompt", LM),
        "lora": ModelSetup("lm_finetune", LM, _lm(lm_minutes)),
        "full_finetune": ModelSetup("lm_finetune", LM, _lm(lm_minutes, mode="full")),
        "prompt_tuning": ModelSetup("lm_prompt_tuning", LM, _lm(lm_minutes)),
    }


def _full() -> Profile:
    ml, toys = movielens_100k(), amazon_toys(eval_users=2000)
    return Profile(
        name="full",
        domains={"ml100k": ml, "toys": toys},
        models=_models(lm_minutes=3.0, seq_minutes=3.0),
        data_efficiency_domains=("ml100k", "toys"),
        data_efficiency_models=("ease", "sasrec", "hybrid", "zero_shot", "lora", "prompt_tuning"),
        fractions=(0.01, 0.05, 0.1, 0.25, 1.0),
        bucket_fraction=1.0,
        transfers=(TransferSetup("ml100k", "toys", ("lora", "prompt_tuning"), (0.01, 0.1)),
                   TransferSetup("toys", "ml100k", ("lora", "prompt_tuning"), (0.01, 0.1))),
        finetune_domain="ml100k",
        finetune_models=("lora", "full_finetune", "prompt_tuning"),
    )


def _reduced() -> Profile:
    ml, toys = movielens_100k(), amazon_toys(eval_users=1000)
    return Profile(
        name="reduced",
        domains={"ml100k": ml, "toys": toys},
        models=_models(lm_minutes=1.0, seq_minutes=0.75),
        data_efficiency_domains=("ml100k",),
        data_efficiency_models=("ease", "sasrec", "zero_shot", "lora"),
        fractions=(0.05, 0.25, 1.0),
        bucket_fraction=1.0,
        transfers=(TransferSetup("ml100k", "toys", ("lora",), (0.1,)),),
        finetune_domain="ml100k",
        finetune_models=("lora", "full_finetune", "prompt_tuning"),
    )


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
            "zero_shot": ModelSetup("zero_shot_prompt", LM),
            "lora": ModelSetup("lm_finetune", LM, tiny_lm),
            "prompt_tuning": ModelSetup("lm_prompt_tuning", LM, tiny_lm),
        },
        data_efficiency_domains=("demo_a",),
        data_efficiency_models=("ease", "sasrec", "zero_shot", "lora"),
        fractions=(0.25, 1.0),
        bucket_fraction=1.0,
        transfers=(TransferSetup("demo_a", "demo_b", ("lora",), (0.5,)),),
        finetune_domain="demo_a",
        finetune_models=("lora", "prompt_tuning"),
        isolate=False,
    )


PROFILES = {"full": _full, "reduced": _reduced, "tiny": _tiny}
DEFAULT_PROFILE = "reduced"


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown experiment profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]()
