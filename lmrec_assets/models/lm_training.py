"""What the adapted-LM recommenders share: user prompts, the prompt encoder, the item head and the training loop.

Task: next-item prediction. A user is a prompt (their most recent titles through a template) encoded by the LM with
mean pooling; an item is its `item_text` embedding from the same pre-trained LM (the cached vectors of the
`item_embeddings` asset), frozen. Logits over the whole catalogue are cos(user, item) / temperature
+ s · max cos(recent item, item) + b_i: s (trainable) weighs how much the candidate's text resembles one of the user's
`history_items` newest items (`ItemHead`), and b_i is a trainable per-item bias started at log(1 + train count), the
optimum of a popularity-only softmax: short runs then do not spend their few steps learning popularity (0.1-scale
demo, default budget: valid NDCG@10 0.034 → 0.059).

At scoring time the two text terms are weighed against the bias by w (`ItemHead.text_weight`), chosen on valid after
every epoch from `text_weight_grid` (training itself always uses w = 1, the objective it optimises). w = 0 is the
bias alone, about popularity, so the valid figure of the model kept is never below that prior's: on the bundled
demo, where half a minute of training leaves the prompt vectors noisy, the LM models were under popularity
(test NDCG@10 0.022 vs 0.027) because the untrained cosine term, at temperature 0.05, swamped the bias.

Why frozen item vectors, and no trainable item projection:
- The adapted LM on the item side too would mean re-encoding 1.7k items per pass (about half a minute of CPU) and a
  sampled softmax for item-side gradients; frozen vectors give an exact full-catalogue softmax at every step for the
  price of one matrix product.
- A trainable 384×384 residual projection on the item vectors was tried on ML-100K (valid NDCG@10, 200 steps): it
  learned faster than the LM adapters, absorbed the signal (LoRA + projection ≈ projection alone) and overfitted in
  the second epoch; without it LoRA has to move the prompt side and does better (0.077 vs 0.068 best).

Examples: each epoch draws `examples_per_user` cut points t among the last `recent_positions` of every user's train
sequence (the held-out items follow the end of it); the prompt is built from seq[:t] and the loss is the mean
cross-entropy of the next `targets_per_example` items seq[t:t+k] (one costly LM pass, k supervised targets: +0.01
valid NDCG@10 on ML-100K at equal steps). Items of the prefix are masked, as the evaluation masks seen items.

`NextItemLM` implements fit/score/save once; `LMFinetune` (LoRA or full fine-tuning) and `LMPromptTuning` (soft
prompt) only say how the encoder is built, saved and loaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lmrec_assets.models.base import FitReport, ModelParams, SplitData
from lmrec_assets.models.costs import Cost, DataSize, lm_bytes, prompt_scoring_seconds
from lmrec_assets.models.device import autocast, resolve_device
from lmrec_assets.models.ranking import evaluate, mask_seen, metrics_from_ranks, target_ranks
from lmrec_assets.models.text import BUNDLED_LM, encode_texts, render_history_prompt, resolve_lm

log = logging.getLogger(__name__)

# Prompt vectors of final weights, per (weights digest, prompt): in one process (the in-process executor) the
# evaluation, fairness, re-ranking and recommendation assets load the same artifact and score the same users' prompts.
_PROMPT_VECTORS: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
_PROMPT_VECTORS_SIZE = 100_000  # about 150 MB of 384-d fp32 vectors


class LMNextItemParams(ModelParams):
    """Prompt, objective and budget of the next-item training loop (the subclasses add how the LM is adapted)."""

    lm: str = BUNDLED_LM  # a local path or hub id; the default is the bundled all-MiniLM-L6-v2
    template: str = "history_v1"
    max_history_items: int = 5  # titles in the prompt: 5 keeps prompts ~65 tokens, the main cost on CPU
    max_length: int = 128
    examples_per_user: int = 1  # prompts (cut points) drawn per user and epoch ...
    recent_positions: int = 16  # ... among the last positions of the user's train sequence
    targets_per_example: int = 8  # the next k items after each cut are its targets: more signal per LM pass
    batch_size: int = 32
    lr: float | None = None  # for the LM's trainable parameters; None: the model's `default_lr`
    head_lr: float = 1e-2  # for the item bias
    weight_decay: float = 0.0
    temperature: float = 0.05
    item_bias: bool = True
    # Text item-to-item evidence: + s · max over the user's `history_items` newest items of cos(that item, candidate),
    # s trainable (started at `history_scale`); 0 items = the prompt alone. See ItemHead.
    history_items: int = 5
    history_scale: float = 5.0
    # w, the weight of the text terms against the item bias at scoring time, chosen on valid each epoch (see the
    # module docstring); 1.0 first so that the trained objective wins ties. [1.0] = no calibration.
    text_weight_grid: list[float] = [1.0, 0.7, 0.5, 0.35, 0.2, 0.1, 0.0]
    eval_batch_size: int = 128
    bf16: bool = True  # bf16 autocast for the LM (weights stay fp32): ~2x faster steps on CPUs with AMX / AVX512-BF16
    # and on CUDA GPUs from Ampere on (device.autocast)
    # Demo-sized: both LM trainers together must leave `make demo` inside its 10 minutes; benchmarks use QUALITY.
    max_epochs: int = 1
    max_minutes: float = 0.5


def history_prompts(histories: list[np.ndarray], users: np.ndarray, titles: list[str], template: str, max_items: int) -> list[str]:
    """One prompt per user: the user's `max_items` most recent titles (newest last) through the template."""
    return [render_history_prompt([titles[i] for i in histories[u][-max_items:]], template, max_items) for u in users]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, L2-normalised: the pooling all-MiniLM-L6-v2 was trained with."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


def recent_items(histories: list[np.ndarray], k: int) -> torch.Tensor:
    """(len(histories), k) each history's k newest items, -1 padded."""
    out = np.full((len(histories), k), -1, dtype=np.int64)
    for i, h in enumerate(histories):
        tail = h[-k:] if k else h[:0]
        out[i, : len(tail)] = tail
    return torch.from_numpy(out)


def history_similarity(item_vectors: torch.Tensor, recent: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """max over each row's recent items (B, k; -1 = none) of cos(recent item, candidate), for candidate vectors
    (B, N, d) or (N, d) shared by every row → (B, N). A row with no recent item gets -1: no evidence."""
    recent_vectors = item_vectors[recent.clamp(min=0)]  # (B, k, d)
    if candidates.dim() == 2:
        sims = torch.einsum("bkd,nd->bkn", recent_vectors, candidates)
    else:
        sims = torch.einsum("bkd,bnd->bkn", recent_vectors, candidates)
    return sims.masked_fill((recent < 0)[:, :, None], -1.0).amax(dim=1)


class ItemHead(nn.Module):
    """Logits over the whole catalogue: cos(user prompt vector, item) / temperature + s · max cos(recent item, item)
    + per-item bias, all on the frozen item-text vectors.

    The middle term is the user's own history read through the LM's text space (item-to-item similarity of the
    newest `history_items`). A prompt vector is one mean-pooled summary of five titles, so it blurs which single past
    item a candidate resembles; on ML-100K valid, log-popularity + 10 · max cos over the 5 newest items alone reaches
    NDCG@10 0.062 (LoRA's prompt vector + bias: 0.069; popularity 0.035), and the same term is what lifted lm_rerank's
    ranker. s is learned with the bias (started at `history_scale`)."""

    def __init__(self, item_vectors: torch.Tensor, temperature: float, item_bias: bool, history_items: int = 0,
                 history_scale: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("item_vectors", item_vectors)
        self.register_buffer("text_weight", torch.tensor(1.0))  # w: chosen on valid (calibrate_text_weight)
        self.bias = nn.Parameter(torch.zeros(len(item_vectors))) if item_bias else None
        self.history_scale = nn.Parameter(torch.tensor(float(history_scale))) if history_items else None
        self.history_items = history_items
        self.temperature = temperature

    def forward(self, users: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
        """users (B, d) prompt vectors; histories: each row's items, oldest first → (B, n_items)."""
        return self.combine(self.text_logits(users, histories))

    def text_logits(self, users: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
        """The two text terms (prompt cosine / temperature + s · recent-item similarity), before the weight w."""
        logits = users @ self.item_vectors.T / self.temperature
        if self.history_scale is not None:
            recent = recent_items(histories, self.history_items).to(self.item_vectors.device)
            logits = logits + self.history_scale * history_similarity(self.item_vectors, recent, self.item_vectors)
        return logits

    def combine(self, text: torch.Tensor, weight: float | torch.Tensor | None = None) -> torch.Tensor:
        """w · text terms + item bias (w = `text_weight` unless given)."""
        text = text * (self.text_weight if weight is None else weight)
        return text + self.bias if self.bias is not None else text


class NextItemLM:
    """Base of the adapted-LM recommenders. A subclass sets name/code_version/Params and the three encoder hooks."""

    kind: ClassVar[str] = "pytorch"
    upstream: ClassVar[tuple[str, ...]] = ("item_embeddings",)
    Params: ClassVar[type[LMNextItemParams]] = LMNextItemParams
    name: ClassVar[str]
    code_version: ClassVar[str]
    default_lr: float  # the LM learning rate when params.lr is None (set by each subclass)

    def __init__(self, params: LMNextItemParams | None = None) -> None:
        self.params = params or self.Params()
        self.encoder: nn.Module | None = None
        self.head: ItemHead | None = None
        self.item_titles: list[str] = []
        self.device = resolve_device()  # LMREC_DEVICE; not a param, so not part of the model version
        self.weights_digest: str | None = None  # set once the weights are final (`finalise`): prompt vectors memoised
        from transformers import AutoTokenizer  # transformers is slow to import; keep it off the code-location load

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_lm(self.params.lm))

    @classmethod
    def cost(cls, params: LMNextItemParams, size: DataSize) -> Cost:
        """The clock plus the last epoch's valid pass; memory: the LM, item vectors (and the head's copy) and one
        batch's full-catalogue logits with their gradient."""
        scoring = prompt_scoring_seconds(size)
        peak = lm_bytes(size, item_vector_copies=2) + 12 * params.batch_size * size.n_items
        return Cost(seconds=params.max_minutes * 60 + scoring, scoring_seconds=scoring, peak_bytes=int(peak),
                    basis=f"{params.max_minutes:g}-min clock + a valid pass; a pass = one LM prompt per user")

    # --- what a subclass provides ---------------------------------------------------------------------------------

    def build_encoder(self) -> nn.Module:
        """The pre-trained LM, wrapped for adaptation, with exactly the parameters to train left trainable."""
        raise NotImplementedError

    def save_encoder(self, path: Path) -> None:
        raise NotImplementedError

    def load_encoder(self, path: Path) -> nn.Module:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------------------------

    def embed(self, prompts: list[str]) -> torch.Tensor:
        """(len(prompts), dim) L2-normalised prompt vectors; differentiable when grad is enabled."""
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.params.max_length, return_tensors="pt")
        batch = batch.to(self.device)
        # Only ids and mask: peft prompt tuning drops token_type_ids anyway, and all-zero types are BERT's default.
        with autocast(self.device, self.params.bf16):
            hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = hidden.float()
        # A soft prompt prepends virtual tokens; pool over the real tokens so every mode pools the same positions.
        return mean_pool(hidden[:, -batch["input_ids"].shape[1] :], batch["attention_mask"])

    @torch.no_grad()
    def prompt_vectors(self, prompts: list[str]) -> torch.Tensor:
        """`embed` for scoring: no gradient, batches of prompts of similar length (each padded only to its longest),
        and memoised per (weights, prompt) once the weights are final. The encoder must be in eval mode."""
        keys = [(self.weights_digest, prompt) for prompt in prompts] if self.weights_digest else None
        missing = [i for i, key in enumerate(keys) if key not in _PROMPT_VECTORS] if keys else list(range(len(prompts)))
        missing.sort(key=lambda i: len(prompts[i]))  # characters: a cheap proxy for tokens
        step = self.params.eval_batch_size
        fresh = {}
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            fresh.update(zip(chunk, self.embed([prompts[i] for i in chunk]).cpu()))
        if keys is None:
            vectors = [fresh[i] for i in range(len(prompts))]
        else:
            for i, vector in fresh.items():
                _PROMPT_VECTORS[keys[i]] = vector
            vectors = [fresh[i] if i in fresh else _PROMPT_VECTORS[key] for i, key in enumerate(keys)]
            while len(_PROMPT_VECTORS) > _PROMPT_VECTORS_SIZE:
                _PROMPT_VECTORS.popitem(last=False)
        if not vectors:
            return torch.zeros(0, self.encoder.config.hidden_size, device=self.device)
        return torch.stack(vectors).to(self.device)

    def finalise(self) -> None:
        """The weights will not change any more (end of fit, load): identify them so prompt vectors can be memoised.
        The digest covers the params and the encoder's whole state, so two loads of one artifact share it."""
        digest = hashlib.sha256(self.params.model_dump_json().encode())
        for name, tensor in sorted(self.encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        self.weights_digest = digest.hexdigest()[:16]

    def fit(self, data: SplitData) -> FitReport:
        torch.manual_seed(self.params.seed)
        self.weights_digest = None  # training changes the weights
        self.item_titles = list(data.item_titles)
        item_vectors, _ = encode_texts(data.item_text, self.params.lm)  # warm cache: the item_embeddings asset
        p = self.params
        self.head = ItemHead(torch.from_numpy(item_vectors), p.temperature, p.item_bias, p.history_items, p.history_scale)
        if self.head.bias is not None:  # start at the train log-frequency: the optimum of a popularity-only softmax
            counts = np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items)
            self.head.bias.data = torch.log1p(torch.as_tensor(counts, dtype=torch.float32))
        self.head.to(self.device)
        self.encoder = self.build_encoder().to(self.device)
        report = train_next_item(self, data)
        self.finalise()
        return report

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self.score_prompts(users, histories, self.user_prompts(users, histories))

    def user_prompts(self, users: np.ndarray, histories: list[np.ndarray]) -> list[str]:
        """The prompt each user is scored with (`base.PromptRecommender`)."""
        return history_prompts(histories, users, self.item_titles, self.params.template, self.params.max_history_items)

    @torch.no_grad()
    def score_prompts(self, users: np.ndarray, histories: list[np.ndarray], prompts: list[str]) -> np.ndarray:
        """Scores of row j from `prompts[j]` and the recent items of `histories[users[j]]` (seen items are masked by
        callers). A counterfactual prompt therefore moves only the prompt term."""
        was_training = self.encoder.training
        self.encoder.eval()
        step = self.params.eval_batch_size
        rows = [histories[u] for u in users]
        vectors = self.prompt_vectors(prompts)
        scores = torch.cat([self.head(vectors[i : i + step], rows[i : i + step]) for i in range(0, len(prompts), step)])
        self.encoder.train(was_training)
        return scores.cpu().numpy()

    def trainable_counts(self) -> tuple[int, int]:
        """(LM parameters trained, head parameters trained)."""
        count = lambda module: sum(p.numel() for p in module.parameters() if p.requires_grad)  # noqa: E731
        return count(self.encoder), count(self.head)

    def save(self, path: Path) -> None:
        self.save_encoder(path)
        # CPU tensors: the artifact loads on any device (PEFT / HF save_pretrained write safetensors, device-free).
        save_file({k: v.cpu().contiguous() for k, v in self.head.state_dict().items()}, str(path / "head.safetensors"))
        (path / "params.json").write_text(self.params.model_dump_json())
        (path / "item_titles.json").write_text(json.dumps(self.item_titles))

    @classmethod
    def load(cls, path: Path) -> Self:
        model = cls(cls.Params.model_validate_json((path / "params.json").read_text()))
        state = load_file(str(path / "head.safetensors"))
        p = model.params
        model.head = ItemHead(state["item_vectors"], p.temperature, p.item_bias, p.history_items, p.history_scale)
        model.head.load_state_dict(state)
        model.head.to(model.device)  # loaded on CPU, then moved to LMREC_DEVICE
        model.item_titles = json.loads((path / "item_titles.json").read_text())
        model.encoder = model.load_encoder(path).to(model.device)
        model.encoder.eval()
        model.finalise()
        return model


def next_item_examples(sequences: list[np.ndarray], per_user: int, recent: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) rows of (user, position t): predict sequences[u][t] from sequences[u][:t]. Recent positions only,
    because the held-out item follows the end of the train sequence."""
    rows = []
    for u, seq in enumerate(sequences):
        positions = np.arange(max(1, len(seq) - recent), len(seq))
        if len(positions):
            chosen = rng.choice(positions, size=min(per_user, len(positions)), replace=False)
            rows.extend((u, t) for t in chosen)
    rows = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return rows[rng.permutation(len(rows))]


def batch_loss(model: NextItemLM, data: SplitData, rows: np.ndarray) -> torch.Tensor:
    """Softmax cross-entropy over the whole catalogue for each of the next `targets_per_example` items after the
    prefix (one LM pass, several supervised targets), with the prefix's items masked as at evaluation time."""
    k = model.params.targets_per_example
    histories = [data.train_sequences[u][:t] for u, t in rows]
    futures = [data.train_sequences[u][t : t + k] for u, t in rows]
    prompts = history_prompts(histories, np.arange(len(rows)), data.item_titles, model.params.template, model.params.max_history_items)
    logits = model.head.combine(model.head.text_logits(model.embed(prompts), histories), weight=1.0)  # w = 1 in training
    on = lambda array: torch.as_tensor(array, device=logits.device)  # noqa: E731
    seen = [h[~np.isin(h, f)] for h, f in zip(histories, futures)]  # a rare repeat of a target stays a target
    seen_rows = on(np.repeat(np.arange(len(rows)), [len(h) for h in seen]))
    logits = logits.index_put((seen_rows, on(np.concatenate(seen))), torch.tensor(-torch.inf, device=logits.device))
    target_rows = on(np.repeat(np.arange(len(rows)), [len(f) for f in futures]))
    return F.cross_entropy(logits[target_rows], on(np.concatenate(futures)))


def optimizer_epoch(
    rows, batch_size: int, loss_of, optimizer: torch.optim.Optimizer, out_of_budget, steps: int
) -> tuple[list[float], int]:
    """One pass over `rows` in batches: a step per batch; stops early once `out_of_budget(steps)` says so.
    Returns the batch losses and the step count so far (the LM trainers share it: LoRA, soft prompt, rerank, P5)."""
    losses = []
    for start in range(0, len(rows), batch_size):
        loss = loss_of(rows[start : start + batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        steps += 1
        if out_of_budget(steps):
            break
    return losses, steps


def budget_clock(max_minutes: float, max_steps: int):
    """`out_of_budget(steps)`: past max_minutes of wall time from now, or at max_steps optimizer steps (0 = none)."""
    started = time.perf_counter()
    return lambda steps: bool(max_steps and steps >= max_steps) or time.perf_counter() - started > 60 * max_minutes


def valid_ndcg(model: NextItemLM, data: SplitData) -> float:
    return float(evaluate(model, data, "valid", ks=(10,)).loc[0, "ndcg"])


@torch.no_grad()
def calibrate_text_weight(model: NextItemLM, data: SplitData) -> tuple[float, float]:
    """(w, valid NDCG@10) of the best point of `text_weight_grid` (the first wins ties), and sets the head's w.

    One LM pass over the valid users, as `valid_ndcg`; each grid point only re-weighs the cached text logits, with
    `evaluate`'s protocol (conditioned on train, seen items masked, ties by item index)."""
    grid = model.params.text_weight_grid if model.head.bias is not None else [1.0]  # without a bias w only rescales
    users = data.evaluation_users("valid")
    histories = data.histories(data.conditioning("valid"))
    targets = data.targets("valid")
    was_training = model.encoder.training
    model.encoder.eval()
    ranks = {w: [] for w in grid}
    step = model.params.eval_batch_size
    for start in range(0, len(users), step):
        chunk = users[start : start + step]
        prompts = model.user_prompts(chunk, histories)
        text = model.head.text_logits(model.prompt_vectors(prompts), [histories[u] for u in chunk])
        for w in grid:
            scores = mask_seen(model.head.combine(text, weight=w).float().cpu().numpy(), chunk, histories)
            ranks[w].append(target_ranks(scores, targets[chunk]))
    model.encoder.train(was_training)
    ndcg = {w: float(metrics_from_ranks(np.concatenate(r) if r else np.array([]), (10,)).loc[0, "ndcg"])
            for w, r in ranks.items()}
    best = max(grid, key=lambda w: ndcg[w])  # max keeps the first of equal values
    model.head.text_weight.fill_(best)
    return best, ndcg[best]


def train_next_item(model: NextItemLM, data: SplitData) -> FitReport:
    """AdamW on the trainable LM parameters and the head; early stopping on valid NDCG@10 (epoch 0 = untrained).

    Budget: stops at max_epochs, max_steps (optimizer steps; 0 = none) or max_minutes of wall time, whichever comes
    first; a partial last epoch is still evaluated. The best epoch's trainable weights are restored at the end.
    """
    p = model.params
    rng = np.random.default_rng(p.seed)
    encoder_params = [q for q in model.encoder.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": model.default_lr if p.lr is None else p.lr}, {"params": list(model.head.parameters()), "lr": p.head_lr}],
        weight_decay=p.weight_decay,
    )
    trainable = lambda: {n: q.detach().clone() for n, q in model.encoder.named_parameters() if q.requires_grad}  # noqa: E731
    started, steps = time.perf_counter(), 0
    out_of_budget = budget_clock(p.max_minutes, p.max_steps)

    weight, ndcg = calibrate_text_weight(model, data)
    best = (ndcg, 0, trainable(), copy.deepcopy(model.head.state_dict()))
    curve = [{"epoch": 0, "loss": math.nan, "valid_ndcg_at_10": ndcg, "text_weight": weight}]
    for epoch in range(1, p.max_epochs + 1):
        if out_of_budget(steps):
            break
        model.encoder.train()
        rows = next_item_examples(data.train_sequences, p.examples_per_user, p.recent_positions, rng)
        losses, steps = optimizer_epoch(rows, p.batch_size, lambda batch: batch_loss(model, data, batch), optimizer,
                                        out_of_budget, steps)
        weight, ndcg = calibrate_text_weight(model, data)
        curve.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid_ndcg_at_10": ndcg, "text_weight": weight})
        log.info(f"{model.name} epoch {epoch}: {steps} steps, {time.perf_counter() - started:.0f}s, {curve[-1]}")
        if ndcg > best[0]:
            best = (ndcg, epoch, trainable(), copy.deepcopy(model.head.state_dict()))
        elif epoch - best[1] >= p.patience:
            break

    ndcg, best_epoch, encoder_state, head_state = best
    unexpected = model.encoder.load_state_dict(encoder_state, strict=False).unexpected_keys  # only trainable tensors kept
    assert not unexpected, unexpected
    model.head.load_state_dict(head_state)
    model.encoder.eval()
    n_encoder, n_head = model.trainable_counts()
    return FitReport(
        params={**p.model_dump(), "best_epoch": best_epoch, "text_weight": round(float(model.head.text_weight), 6), "steps": steps, "trainable_lm_parameters": n_encoder,
                "trainable_head_parameters": n_head},
        valid_ndcg_at_10=ndcg,
        curve=curve,
        trainable_parameters=n_encoder + n_head,
    )
