"""Two-stage recommendation (LlamaRec / TALLRec paradigm): a retriever proposes candidates, an adapted LM ranks them.

Retriever: one of the registered models (EASE, SASRec, the hybrid, ...), handed over fitted by the asset factory
(`attach_retrievers`); `retriever="auto"` keeps the one with the best valid NDCG@10. Its top-`candidates` unseen items
per user are the candidate list; its recall@N on valid is the reranker's ceiling and is reported.

Ranker: the user's recent titles through the prompt template, encoded once by the LM adapted with LoRA
(`ranker="lora"`), with a trainable soft prompt on the frozen LM (`ranker="prompt_tuning"`), or not adapted at all
(`ranker="zero_shot"`, the baseline row). Each candidate is scored against that one encoding: cosine to the
candidate's item-text vector / temperature + a per-item bias (late interaction).
Why not a cross-encoder over (prompt, candidate text) pairs: on 2 CPU cores MiniLM reads a ~80-token pair in
9.6 ms forward and 35 ms forward + backward (`benchmarks/results/lm_rerank_cost.md`), so on ML-100K 50 candidates ×
943 users is 451 s per scoring pass (over the 5-minute budget) and a training epoch over 4 cut points per user
about 109 minutes; the late-interaction ranker costs one prompt pass per user (8 s to score everyone, 82 s an
epoch), at the price of candidates never attending to the prompt's tokens.

Training: cut points among the last `recent_positions` of every train sequence; the retriever's own top-N for the
prefix are the hard negatives (the true next item replaces the last candidate when the retriever missed it); the
loss is softmax cross-entropy over each candidate list (listwise, as LlamaRec's verbalizer). Early stopping on the
valid NDCG@10 of the final ranking.

Final ranking: candidates by (1 - a) · ranker log-softmax + a · retriever log-softmax over the list (a chosen on
valid from `blend_grid`; a = 1 is the retriever alone), then every other item in retriever order, so metrics stay
full-ranking over the catalogue.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import ClassVar, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lmrec_assets.models.base import FitReport, ModelParams, Recommender, SplitData
from lmrec_assets.models.costs import (
    SEQUENCE_SECONDS_PER_USER,
    Cost,
    DataSize,
    lm_bytes,
    prompt_scoring_seconds,
    scoring_bytes,
    scoring_cells_seconds,
)
from lmrec_assets.models.ease import EASEParams
from lmrec_assets.models.lm_finetune import LMFinetune, LMFinetuneParams
from lmrec_assets.models.lm_training import (
    LMNextItemParams,
    NextItemLM,
    history_prompts,
    history_similarity,
    recent_items,
)
from lmrec_assets.models.prompt_tuning import LMPromptTuning, LMPromptTuningParams
from lmrec_assets.models.ranking import evaluate, mask_seen, top_k
from lmrec_assets.models.text import BUNDLED_LM, encode_texts

log = logging.getLogger(__name__)

RETRIEVERS = ("ease", "sasrec", "hybrid_seq")  # the registered models a retriever is picked from ("auto")
# The nightly / benchmark setting for ML-100K (benchmarks/leaderboard.py reads it), with the default LoRA ranker. The
# leaderboard (2026-12-02, shared machine) had the soft prompt a hair ahead on valid (NDCG@10 0.1415 vs 0.1405, within
# noise); the measured nightly refresh (benchmarks/results/nightly_ml100k.md: 7.1-minute share of the 45-minute run
# budget) trained the LoRA ranker: valid 0.1437, test 0.1209 over SASRec's candidates, the run's champion. Keeping
# LoRA keeps that run's model version (same params) as what the nightly trains.
QUALITY = {"examples_per_user": 4, "max_epochs": 8, "max_minutes": 12.0}


class LMRerankParams(ModelParams):
    # A registered model name, several joined by "+" (their mean log-softmax, `RetrieverBlend`), or "auto": the best on
    # valid NDCG@10 of each attached model and of the blend of the two best.
    retriever: str = "auto"
    candidates: int = 50
    ranker: Literal["lora", "prompt_tuning", "zero_shot"] = "lora"
    lm: str = BUNDLED_LM
    template: str = "history_v1"
    max_history_items: int = 5  # titles in the prompt (its LM pass is the cost)
    history_items: int = 20  # recent items each candidate is compared with (cached item vectors: nearly free)
    max_length: int = 128
    lora_r: int = 8
    lora_alpha: int = 16
    num_virtual_tokens: int = 16
    examples_per_user: int = 2
    recent_positions: int = 16
    batch_size: int = 32
    lr: float | None = None  # None: the adapted LM's own default (LoRA 2e-3, soft prompt 3e-2)
    head_lr: float = 1e-2
    temperature: float = 0.05
    # Share of the retriever in the blend: (1 - a) · ranker + a · retriever log-softmax over the list. 1.0 is the
    # retriever alone, so on valid the reranker never does worse than its retriever (the demo's 1-minute ranker did).
    blend_grid: list[float] = [0.0, 0.2, 0.33, 0.5, 0.67, 0.8, 0.9, 1.0]
    bf16: bool = True
    max_epochs: int = 1  # demo-sized; see QUALITY
    max_minutes: float = 1.0


class RankerHead(nn.Module):
    """Scores a candidate list from one prompt encoding: a · cos(prompt, candidate) + c · max over the user's recent
    items of cos(history item, candidate) + item bias. All vectors are the LM's item-text embeddings; a and c start
    at 1 / temperature (the zero-shot ranker), the bias at 0 (the retriever already knows popularity)."""

    def __init__(self, item_vectors: torch.Tensor, temperature: float) -> None:
        super().__init__()
        self.register_buffer("item_vectors", item_vectors)
        self.bias = nn.Parameter(torch.zeros(len(item_vectors)))
        self.prompt_scale = nn.Parameter(torch.tensor(1.0 / temperature))
        self.history_scale = nn.Parameter(torch.tensor(1.0 / temperature))

    def forward(self, users: torch.Tensor, recent: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users (B, d) prompt vectors; recent (B, k) item indices, -1 = none; items (B, N) candidates → (B, N)."""
        candidates = self.item_vectors[items]  # (B, N, d)
        prompt = torch.einsum("bd,bnd->bn", users, candidates)
        history = history_similarity(self.item_vectors, recent, candidates)
        return self.prompt_scale * prompt + self.history_scale * history + self.bias[items]


class RetrieverBlend:
    """Several fitted retrievers as one candidate model: the mean of their log-softmax over the catalogue, i.e. the
    mean of their logits up to a per-user constant. Sequence models trained on different inputs (SASRec on ids, the
    hybrid on ids + item text) err on different users, so their average proposes better candidates than either."""

    def __init__(self, members: dict[str, Recommender]) -> None:
        self.members = dict(members)
        self.name = "+".join(self.members)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        total = None
        for member in self.members.values():
            logp = torch.log_softmax(torch.from_numpy(np.asarray(member.score(users, histories), dtype=np.float32)), 1)
            total = logp if total is None else total + logp
        return (total / len(self.members)).numpy()

    def save(self, path: Path) -> None:
        for name, member in self.members.items():
            (path / name).mkdir()
            member.save(path / name)

    @classmethod
    def load(cls, name: str, path: Path) -> Recommender:
        """A saved retriever by its name: one model in `path`, or a blend ("a+b") with one folder per member."""
        from lmrec_assets.models.registry import load_model

        names = name.split("+")
        if len(names) == 1:
            return load_model(name, str(path))
        return cls({n: load_model(n, str(path / n)) for n in names})


def _user_lm(p: LMRerankParams) -> NextItemLM:
    """The prompt encoder, built by the same code as lm_finetune / lm_prompt_tuning (only its `embed` is used)."""
    shared = {k: getattr(p, k) for k in LMNextItemParams.model_fields if k in LMRerankParams.model_fields}
    shared["eval_batch_size"] = 128
    if p.ranker == "prompt_tuning":
        return LMPromptTuning(LMPromptTuningParams(**shared, num_virtual_tokens=p.num_virtual_tokens))
    # zero_shot: LoRA adapters whose B = 0, never trained: exactly the pre-trained LM.
    return LMFinetune(LMFinetuneParams(**shared, lora_r=p.lora_r, lora_alpha=p.lora_alpha))


class LMRerank:
    name = "lm_rerank"
    code_version = "3"  # 3: "auto" also weighs the blend of the two best retrievers
    kind = "pytorch"
    upstream: ClassVar[tuple[str, ...]] = ("item_embeddings", *RETRIEVERS)
    Params = LMRerankParams

    def __init__(self, params: LMRerankParams | None = None) -> None:
        self.params = params or self.Params()
        self.user_lm = _user_lm(self.params)
        self.device = self.user_lm.device  # LMREC_DEVICE (resolved by the prompt encoder); not part of the version
        self.retrievers: dict[str, Recommender] = {}
        self.retriever: Recommender | RetrieverBlend | None = None
        self.retriever_name = ""
        self.head: RankerHead | None = None
        self.blend = 0.0
        self.item_titles: list[str] = []

    @classmethod
    def cost(cls, params: LMRerankParams, size: DataSize) -> Cost:
        """The clock counts from the start of fit, so it covers choosing the retriever (one valid pass of each), its
        recall and the untrained blend unless those alone outlast it; then the last epoch's blend and the check pass.
        A pass scores the catalogue with the retriever (a 3-member SASRec at most) and encodes one prompt per user.
        Memory: the LM, the retrievers' artifacts (EASE's dense k × k weights the largest), full-catalogue scores
        and their retriever order for one batch."""
        retriever = scoring_cells_seconds(size) + 3 * SEQUENCE_SECONDS_PER_USER * size.n_eval_users
        scoring = retriever + prompt_scoring_seconds(size)
        before_training = (len(RETRIEVERS) + 1) * retriever + retriever + scoring  # each, the best two blended
        ease_items = min(size.n_items, size.n_interactions, EASEParams().max_items)
        peak = lm_bytes(size) + 4 * ease_items**2 + 2 * scoring_bytes(size)
        return Cost(seconds=max(params.max_minutes * 60, before_training) + 2 * scoring, scoring_seconds=scoring,
                    peak_bytes=int(peak), basis=f"{params.max_minutes:g}-min clock (from the retriever choice on) + 2 "
                    "valid passes; a pass = retriever scoring + one LM prompt per user")

    def attach_retrievers(self, retrievers: dict[str, Recommender]) -> None:
        """Fitted candidate models (the factory loads the registered ones; benchmarks pass their own)."""
        self.retrievers = dict(retrievers)

    # --- candidates -------------------------------------------------------------------------------------------------

    def candidates(self, users: np.ndarray, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(retriever scores users × items with history masked, candidate items users × N best first, their
        retriever log-softmax over the list)."""
        scores = mask_seen(np.asarray(self.retriever.score(users, histories), dtype=np.float32), users, histories)
        items, values = top_k(scores, self.params.candidates)
        return scores, items, torch.log_softmax(torch.from_numpy(values.astype(np.float32)), dim=1).numpy()

    # --- ranker -----------------------------------------------------------------------------------------------------

    def user_prompts(self, users: np.ndarray, histories: list[np.ndarray]) -> list[str]:
        """The prompt the ranker encodes for each user (`base.PromptRecommender`)."""
        return history_prompts(histories, users, self.item_titles, self.params.template, self.params.max_history_items)

    def ranker_logits(self, vectors: torch.Tensor, histories: list[np.ndarray], items: np.ndarray) -> torch.Tensor:
        """(len(histories), N) ranker logits of each history's candidate list, from its prompt vector (`vectors`,
        row-aligned: `user_lm.embed` when training, `user_lm.prompt_vectors` when scoring)."""
        recent = recent_items(histories, self.params.history_items).to(self.device)
        return self.head(vectors, recent, torch.from_numpy(items).to(self.device))

    def rerank_scores(self, users: np.ndarray, histories: list[np.ndarray], blend: float | None = None,
                      prompts: list[str] | None = None) -> np.ndarray:
        """Full-catalogue scores: candidates by (1 - blend) · ranker + blend · retriever, above every other item in
        retriever order.
        `prompts` (one per row of `users`): what the ranker's LM reads instead of the users' own prompts; the
        retriever's candidates and the recent items still come from `histories`."""
        blend = self.blend if blend is None else blend
        scores, items, retriever_logp = self.candidates(users, histories)
        rows = [histories[u] for u in users]
        vectors = self.user_lm.prompt_vectors(self.user_prompts(users, histories) if prompts is None else prompts)
        with torch.no_grad():
            logits = torch.cat([self.ranker_logits(vectors[i : i + 128], rows[i : i + 128], items[i : i + 128])
                                for i in range(0, len(users), 128)])
        final = (1.0 - blend) * torch.log_softmax(logits, dim=1).cpu().numpy() + blend * retriever_logp
        # Others keep the retriever's order, strictly below every candidate (seen items stay -inf: the caller masks).
        order = np.argsort(-scores, axis=1, kind="stable")
        below = np.empty_like(scores)
        np.put_along_axis(below, order, -np.arange(scores.shape[1], dtype=np.float32)[None, :], axis=1)
        out = below + (final.min() - 1.0)
        np.put_along_axis(out, items, final.astype(np.float32), axis=1)
        return out

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self.rerank_scores(users, histories)

    def score_prompts(self, users: np.ndarray, histories: list[np.ndarray], prompts: list[str]) -> np.ndarray:
        """`score` with the ranker reading `prompts` (`base.PromptRecommender`): only the order within the
        retriever's candidates can change."""
        return self.rerank_scores(users, histories, prompts=prompts)

    # --- fit --------------------------------------------------------------------------------------------------------

    def fit(self, data: SplitData) -> FitReport:
        p = self.params
        torch.manual_seed(p.seed)
        started = time.perf_counter()
        self.user_lm.weights_digest = None  # training changes the weights
        self.item_titles = list(data.item_titles)
        report: dict = {}
        self.retriever_name, retriever_valid = self.choose_retriever(data)
        self.retriever = self.retriever_model(self.retriever_name)
        report |= {"retriever": self.retriever_name, "retriever_valid_ndcg_at_10": retriever_valid,
                   "retriever_recall_at_n_valid": self.recall_at_n(data, "valid")}
        log.info(f"{self.name}: retriever {self.retriever_name} (valid NDCG@10 {retriever_valid:.4f}), "
                 f"recall@{p.candidates} on valid {report['retriever_recall_at_n_valid']:.4f}")

        item_vectors, _ = encode_texts(data.item_text, p.lm)
        self.head = RankerHead(torch.from_numpy(item_vectors), p.temperature).to(self.device)
        self.user_lm.encoder = self.user_lm.build_encoder().to(self.device)
        curve = []
        best = self.choose_blend(data) + (0, self.trainable_state())
        curve.append({"epoch": 0, "loss": math.nan, "valid_ndcg_at_10": best[1], "blend": best[0]})
        if p.ranker != "zero_shot":
            best, curve = self.train(data, best, curve, started)
        self.blend, ndcg, best_epoch, state = best
        self.load_trainable(state)
        self.user_lm.encoder.eval()
        self.user_lm.finalise()
        n_lm = sum(q.numel() for q in self.user_lm.encoder.parameters() if q.requires_grad) if p.ranker != "zero_shot" else 0
        report = {**p.model_dump(), **report, "blend": self.blend, "best_epoch": best_epoch, "trainable_lm_parameters": n_lm,
                   "valid_ndcg_at_10_check": float(evaluate(self, data, "valid", ks=(10,)).loc[0, "ndcg"])}
        return FitReport(params=report, valid_ndcg_at_10=ndcg, curve=curve,
                         trainable_parameters=n_lm + (data.n_items if p.ranker != "zero_shot" else 0))

    def retriever_model(self, name: str) -> Recommender | RetrieverBlend:
        names = name.split("+")
        return self.retrievers[name] if len(names) == 1 else RetrieverBlend({n: self.retrievers[n] for n in names})

    def choose_retriever(self, data: SplitData) -> tuple[str, float]:
        if not self.retrievers:
            raise ValueError(f"{self.name} needs a fitted retriever: materialize one of {', '.join(RETRIEVERS)} first")
        auto = self.params.retriever == "auto"
        names = list(self.retrievers) if auto else [self.params.retriever]
        missing = [n for part in names for n in part.split("+") if n not in self.retrievers]
        if missing:
            raise ValueError(f"{self.name}: retriever {missing[0]!r} is not trained; available: {sorted(self.retrievers)}")
        valid_ndcg = lambda name: float(evaluate(self.retriever_model(name), data, "valid", ks=(10,)).loc[0, "ndcg"])  # noqa: E731
        valid = {n: valid_ndcg(n) for n in names}
        if auto and len(valid) > 1:
            best_two = sorted(valid, key=valid.get, reverse=True)[:2]
            valid["+".join(best_two)] = valid_ndcg("+".join(best_two))
        name = max(valid, key=valid.get)  # the first wins ties: a single model before the blend
        log.info(f"{self.name}: retrievers on valid NDCG@10 {valid}")
        return name, valid[name]

    def recall_at_n(self, data: SplitData, split: Literal["valid", "test"]) -> float:
        """Share of the split's users whose held-out item is among the candidates: the reranker's ceiling."""
        users = data.evaluation_users(split)
        histories = data.histories(data.conditioning(split))
        hits = 0
        for start in range(0, len(users), 1024):
            chunk = users[start : start + 1024]
            _, items, _ = self.candidates(chunk, histories)
            hits += int((items == data.targets(split)[chunk][:, None]).any(axis=1).sum())
        return hits / max(len(users), 1)

    def choose_blend(self, data: SplitData) -> tuple[float, float]:
        """(retriever share, valid NDCG@10) of the best point of `blend_grid` (the first wins ties).

        The ranker and the retriever are each run once; a grid point only re-sorts the candidate lists. A target
        outside the candidates ranks below N ≥ 10, so it adds nothing to NDCG@10 whatever the weight.
        """
        users = data.evaluation_users("valid")
        histories = data.histories("train")
        targets = data.targets("valid")[users]
        ranker, retriever, position = [], [], []
        for start in range(0, len(users), 512):
            chunk = users[start : start + 512]
            _, items, retriever_logp = self.candidates(chunk, histories)
            with torch.no_grad():
                vectors = self.user_lm.prompt_vectors(self.user_prompts(chunk, histories))
                ranker.append(torch.log_softmax(self.ranker_logits(vectors, [histories[u] for u in chunk], items), dim=1).cpu().numpy())
            retriever.append(retriever_logp)
            hit = items == targets[start : start + 512, None]
            position.append(np.where(hit.any(axis=1), hit.argmax(axis=1), -1))
        ranker, retriever, position = np.concatenate(ranker), np.concatenate(retriever), np.concatenate(position)
        found = position >= 0
        best = (0.0, -1.0)
        for weight in self.params.blend_grid:
            final = (1.0 - weight) * ranker[found] + weight * retriever[found]
            target = final[np.arange(found.sum()), position[found]][:, None]
            ranks = 1 + (final > target).sum(axis=1)
            ndcg = float(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0).sum() / max(len(users), 1))
            if ndcg > best[1]:
                best = (weight, ndcg)
        self.blend = best[0]
        return best

    def trainable_state(self) -> dict:
        lm = {n: q.detach().clone() for n, q in self.user_lm.encoder.named_parameters() if q.requires_grad}
        return {"lm": lm, "head": copy.deepcopy(self.head.state_dict())}

    def load_trainable(self, state: dict) -> None:
        assert not self.user_lm.encoder.load_state_dict(state["lm"], strict=False).unexpected_keys
        self.head.load_state_dict(state["head"])

    def train(self, data: SplitData, best: tuple, curve: list[dict], started: float) -> tuple[tuple, list[dict]]:
        from lmrec_assets.models.lm_training import budget_clock, next_item_examples, optimizer_epoch

        p = self.params
        rng = np.random.default_rng(p.seed)
        lm_lr = p.lr if p.lr is not None else self.user_lm.default_lr
        optimizer = torch.optim.AdamW([
            {"params": [q for q in self.user_lm.encoder.parameters() if q.requires_grad], "lr": lm_lr},
            {"params": list(self.head.parameters()), "lr": p.head_lr},
        ], weight_decay=0.0)
        # The clock counts from the start of fit (retriever choice and the untrained blend included).
        out_of_budget = budget_clock(p.max_minutes - (time.perf_counter() - started) / 60, p.max_steps)
        steps = 0
        for epoch in range(1, p.max_epochs + 1):
            if out_of_budget(steps):
                break
            self.user_lm.encoder.train()
            rows = next_item_examples(data.train_sequences, p.examples_per_user, p.recent_positions, rng)
            losses, steps = optimizer_epoch(rows, p.batch_size, lambda batch: self.batch_loss(data, batch), optimizer,
                                            out_of_budget, steps)
            self.user_lm.encoder.eval()
            blend, ndcg = self.choose_blend(data)
            curve.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid_ndcg_at_10": ndcg, "blend": blend})
            log.info(f"{self.name} epoch {epoch}: {steps} steps, {time.perf_counter() - started:.0f}s, {curve[-1]}")
            if ndcg > best[1]:
                best = (blend, ndcg, epoch, self.trainable_state())
            elif epoch - best[2] >= p.patience:
                break
        return best, curve

    def batch_loss(self, data: SplitData, rows: np.ndarray) -> torch.Tensor:
        """Listwise softmax cross-entropy over each prefix's retriever candidates, the true next item among them."""
        prefixes = [data.train_sequences[u][:t] for u, t in rows]
        targets = np.array([data.train_sequences[u][t] for u, t in rows])
        index = np.arange(len(rows))
        _, items, _ = self.candidates(index, prefixes)
        found = items == targets[:, None]
        missed = ~found.any(axis=1)
        items[missed, -1] = targets[missed]  # the retriever missed it: it replaces the weakest candidate
        label = np.argmax(items == targets[:, None], axis=1)
        vectors = self.user_lm.embed(self.user_prompts(index, prefixes))
        return F.cross_entropy(self.ranker_logits(vectors, prefixes, items), torch.from_numpy(label).to(self.device))

    # --- persistence --------------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """The ranker (PEFT adapter + head), the blend, and a copy of the retriever it was trained with."""
        self.user_lm.save_encoder(path)
        save_file({k: v.cpu().contiguous() for k, v in self.head.state_dict().items()}, str(path / "head.safetensors"))  # CPU: loads anywhere
        (path / "params.json").write_text(self.params.model_dump_json())
        (path / "fitted.json").write_text(json.dumps({"retriever": self.retriever_name, "blend": self.blend,
                                                      "item_titles": self.item_titles}))
        retriever_dir = path / "retriever"
        shutil.rmtree(retriever_dir, ignore_errors=True)
        retriever_dir.mkdir()
        self.retriever.save(retriever_dir)

    @classmethod
    def load(cls, path: Path) -> Self:
        model = cls(cls.Params.model_validate_json((path / "params.json").read_text()))
        fitted = json.loads((path / "fitted.json").read_text())
        model.retriever_name, model.blend, model.item_titles = fitted["retriever"], fitted["blend"], fitted["item_titles"]
        model.retriever = RetrieverBlend.load(model.retriever_name, path / "retriever")
        state = load_file(str(path / "head.safetensors"))
        model.head = RankerHead(state["item_vectors"], model.params.temperature)
        model.head.load_state_dict(state)
        model.head.to(model.device)  # loaded on CPU, then moved to LMREC_DEVICE
        model.user_lm.encoder = model.user_lm.load_encoder(path).to(model.device)
        model.user_lm.encoder.eval()
        model.user_lm.finalise()
        return model
