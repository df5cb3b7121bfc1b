"""P5-style generative recommender: a seq2seq LM that writes the next item's title (and explanations), grounded in
the catalogue by trie-constrained beam search.

Model. By default a BERT2BERT warm start: the bundled all-MiniLM-L6-v2 as both encoder and decoder
(`EncoderDecoderModel.from_encoder_decoder_pretrained`); the decoder's cross-attention and its LM-head transform are
new (MiniLM ships without an MLM head) and are trained in full. `architecture="seq2seq"` loads any seq2seq checkpoint
(T5 family) by local path or hub id through `AutoModelForSeq2SeqLM` instead — untested here: no T5 is available
offline; its `lora_targets` / `trained_modules` must then be set to T5 module names (e.g. "q", "v" / "lm_head").

Output space. The LM head is cut down to the tokens that occur in the training targets (titles, explanations, eos):
its rows are copied from the LM's output embeddings (same logits for those tokens), and a softmax over ~3k (ML-100K)
instead of 30k tokens makes the output layer ~10x cheaper at every decoder step on CPU. Unconstrained decoding can
still write token sequences that are no title (the hallucination rate measures that).

Tasks (P5, multi-task, templates below, versioned with the model): sequential — the user's last titles → the next
title; explanation — history + a title → the item's explanation text. For explanation targets we use the item's
`item_text` without its title, i.e. "Genres: <categories>. <description>" (the demo's one-sentence description;
on MovieLens only the genres): the "features" of PEPLER's metrics are these genre/category words. The template
`sequential_unseen` is never trained on: the generation_metrics asset compares it with the seen one.
`fit(data, user_explanations=...)` adds user-written targets, {(user, item): text} (ml-latest-small's tags, see
evaluation/tag_explanations.py; benchmark only); `item_explanations=False` then drops the item_text targets (their
tokens stay out of the output vocabulary). A user-written target's prompt (`tag_explanation`) is grounded in what the
model can know at that time: the item's title and features (its item_text without the title: genres on MovieLens),
the tags other users gave the item and the tags this user gave other items, each from the training targets (split on
", ") with the pair's own tags left out, most frequent first. The first run, without that context, collapsed onto the
one tag string of the user who wrote most pairs ("in netflix queue" for everyone). For the same reason each epoch
draws at most `explanation_pairs_per_user` of a user's pairs, so one prolific user cannot own the task.

Ranking (`score`). The seen sequential prompt is encoded once per user, then a batched beam search over the prefix
trie of catalogue titles (`title_trie.py`) with the user's seen titles blocked returns `beam_width` distinct unseen
titles scored by log P(title | prompt); duplicate (tokenized, truncated) titles map to all their item ids with one
score. Every other item gets a finite floor below all beams, ordered by train popularity (-1000 + a popularity
fraction), so the full ranking is beams first, then the popularity backfill; top-K ≤ beam_width is beams only.
Decoding is deterministic, so results are memoised per (weights digest, prompt, seen set): the assets that load the
same artifact in one process (recommendations, evaluation, fairness, re-ranking) decode each user once.

Adaptation: `mode="lora"` (default; LoRA on the self-attention query/value of encoder and decoder, plus the new
modules, saved as a PEFT adapter folder `adapter/`) or `mode="full"` (every weight; `model.safetensors`).
Settings: the defaults are demo-sized (2 + 2 of MiniLM's layers, 5 beams, 12 s of training: about 21 s in all at
demo scale, including decoding valid, test and serving users and the generation metrics); the ML-100K benchmark uses
`QUALITY` (all 6 + 6 layers, 20 beams, the issue's 20-minute budget; benchmarks/generative_p5.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from lmrec_assets.models.base import FitReport, ModelParams, SplitData
from lmrec_assets.models.costs import BEAM_SECONDS_PER_USER, LM_BASE_BYTES, Cost, DataSize, data_bytes, scoring_cells_seconds
from lmrec_assets.models.device import autocast, resolve_device
from lmrec_assets.models.lm_training import budget_clock, optimizer_epoch
from lmrec_assets.models.ranking import evaluate
from lmrec_assets.models.text import BUNDLED_LM, resolve_lm
from lmrec_assets.models.title_trie import TitleTrie, constrained_beam_search

log = logging.getLogger(__name__)

# The P5 prompt templates, one place: changing one changes `code_version`. {history}: the user's last titles,
# newest last, joined by "; "; {title}: the item to explain.
P5_TEMPLATES = {
    "sequential": "User watched: {history}; what next?",
    "sequential_alt": "Viewing history: {history}. Which movie does the user watch next?",
    "explanation": "Explain why the user who watched {history} would enjoy {title}",
    "tag_explanation": "{title} ({features}). Tagged by others: {item_tags}. This user's tags: {user_tags}. In the user's words, why?",
    "sequential_unseen": "Based on the films {history}, recommend one film to watch now.",  # never trained on
}
TRAINED_SEQUENTIAL = ("sequential", "sequential_alt")
RANKING_TEMPLATE = "sequential"
DEFAULT_LR = {"lora": 1e-3, "full": 1e-4}
FLOOR = -1000.0  # scores of items outside the beams: below any title's log-probability (clamped above FLOOR + 10)
_DECODE_CACHE: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_DECODE_CACHE_SIZE = 200_000


class GenerativeP5Params(ModelParams):
    lm: str = BUNDLED_LM  # encoder (and decoder) checkpoint: local path or hub id
    architecture: Literal["bert2bert", "seq2seq"] = "bert2bert"  # seq2seq: AutoModelForSeq2SeqLM(lm) (T5; untested)
    # bert2bert: keep the first n layers of the checkpoint (0 = all six). Demo-sized: 2 + 2 layers decode about 3x
    # faster than 6 + 6 (demo scale: ~21 s instead of ~40 s for training, valid/test/serving decoding and metrics).
    encoder_layers: int = 2
    decoder_layers: int = 2
    mode: Literal["lora", "full"] = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = r".*\.attention\.self\.(query|value)"  # self-attention of encoder and decoder (regex)
    trained_modules: list[str] = ["crossattention", "predictions"]  # new in a BERT2BERT warm start: trained in full
    lr: float | None = None  # None: DEFAULT_LR[mode]
    weight_decay: float = 0.0
    max_history_items: int = 5
    max_title_tokens: int = 12
    max_explanation_tokens: int = 24
    max_source_tokens: int = 96
    examples_per_user: int = 1  # sequential prompts per user and epoch (cut points among the recent positions)
    targets_per_example: int = 4  # the next k titles after a cut are all targets of its one encoder pass
    recent_positions: int = 16
    explanation_share: float = 0.25  # explanation examples added per sequential example
    explanation_pairs_per_user: int = 40  # user-written targets drawn per user and epoch (the rest wait their turn)
    context_tags: int = 5  # tags of the item (by others) and of the user (on other items) in a tag_explanation prompt
    batch_size: int = 32
    beam_width: int = 5  # titles decoded per user; top-K beyond it is the popularity floor (QUALITY: 20)
    eval_batch_size: int = 128  # users per beam search (memory: users × beams × prompt tokens of cross-attention cache)
    fit_valid_users: int = 100  # valid users (a fixed sample) for the FitReport's NDCG@10; 0: skip
    bf16: bool = True
    # Demo-sized budget; the benchmark passes larger ones.
    max_epochs: int = 1
    max_minutes: float = 0.2


# The ML-100K benchmark setting (benchmarks/generative_p5.py): titles keep their year, 20 beams so top-20 is beams only.
QUALITY = dict(encoder_layers=0, decoder_layers=0, max_title_tokens=16, beam_width=20, eval_batch_size=32,
               examples_per_user=8, max_epochs=50, max_minutes=20.0, fit_valid_users=200)


def render(template: str, titles: list[str], title: str = "", **context: str) -> str:
    return P5_TEMPLATES[template].format(history="; ".join(titles), title=title, **context)


def history_before(sequence: np.ndarray, item: int) -> np.ndarray:
    """The part of a sequence before `item`'s first occurrence; all of it when the item is not there."""
    where = np.flatnonzero(np.asarray(sequence) == item)
    return sequence[: where[0]] if len(where) else sequence


def split_tags(text: str) -> list[str]:
    """A user-written target as tags: ml-latest-small references are a pair's tags joined by ", "."""
    return [tag for tag in (part.strip() for part in text.split(",")) if tag]


def top_tags(counts: Counter, leave_out: Counter, n: int) -> str:
    """The n most frequent tags of `counts` after removing `leave_out` (ties alphabetical), joined by ", "."""
    left = counts - leave_out
    return ", ".join(sorted(left, key=lambda tag: (-left[tag], tag))[:n]) or "none"


def explanation_target(item_text: str, title: str) -> str:
    """The explanation an item is trained towards: its item_text without the leading "<title>." (genres + description)."""
    prefix = f"{title}."
    return item_text[len(prefix):].strip() if item_text.startswith(prefix) else item_text


class GenerativeP5:
    name = "generative_p5"
    code_version = "2"  # 2: tag_explanation prompts (item features, others' and the user's tags), per-user draw cap
    kind = "pytorch"
    upstream: tuple[str, ...] = ()
    Params = GenerativeP5Params

    def __init__(self, params: GenerativeP5Params | None = None) -> None:
        from transformers import AutoTokenizer  # slow import: keep it off the code-location load

        self.params = params or self.Params()
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_lm(self.params.lm))
        self.eos = self.tokenizer.sep_token_id if self.tokenizer.sep_token_id is not None else self.tokenizer.eos_token_id
        self.model: nn.Module | None = None  # the (possibly PEFT-wrapped) seq2seq LM
        self.vocab = np.zeros(0, dtype=np.int64)  # output index -> LM token id
        self.item_titles: list[str] = []
        self.item_features: list[str] = []  # item_text without the title (genres, description): tag prompts
        self.user_tags: dict[int, Counter] = {}  # tags per user / item over the user-written training targets
        self.item_tags: dict[int, Counter] = {}
        self.popularity = np.zeros(0, dtype=np.float32)  # item -> fraction in [0, 1): the floor's order
        self.trie: TitleTrie | None = None
        self.digest = ""
        self.ranking_template = RANKING_TEMPLATE
        self.device = resolve_device()  # LMREC_DEVICE; not a param, so not part of the model version

    # --- the LM ---------------------------------------------------------------------------------------------------

    def _pretrained(self) -> nn.Module:
        p = self.params
        lm = resolve_lm(p.lm)
        if p.architecture == "seq2seq":
            from transformers import AutoModelForSeq2SeqLM

            return AutoModelForSeq2SeqLM.from_pretrained(lm, use_safetensors=True)
        from transformers import AutoConfig, EncoderDecoderModel

        def config(layers: int, decoder: bool):
            cfg = AutoConfig.from_pretrained(lm)
            cfg.num_hidden_layers = layers or cfg.num_hidden_layers
            cfg.is_decoder = cfg.add_cross_attention = decoder
            return cfg

        model = EncoderDecoderModel.from_encoder_decoder_pretrained(
            lm, lm, encoder_config=config(p.encoder_layers, False), decoder_config=config(p.decoder_layers, True)
        )
        model.config.decoder_start_token_id = self.tokenizer.cls_token_id
        model.config.pad_token_id = self.tokenizer.pad_token_id
        return model

    def _base_model(self) -> nn.Module:
        """The warm-started seq2seq LM with its output layer cut to `self.vocab`."""
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the expected "cross-attention newly initialised" load report, every load
        try:
            model = self._pretrained()
        finally:
            hf_logging.set_verbosity(verbosity)
        full = model.get_output_embeddings()
        head = nn.Linear(full.in_features, len(self.vocab), bias=full.bias is not None)
        index = torch.as_tensor(self.vocab)
        head.weight.data = full.weight.data[index].clone()
        if full.bias is not None:
            head.bias.data = full.bias.data[index].clone()
        model.set_output_embeddings(head)
        return model

    def _adapted(self, base: nn.Module) -> nn.Module:
        if self.params.mode == "full":
            return base
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=self.params.lora_r, lora_alpha=self.params.lora_alpha, lora_dropout=self.params.lora_dropout,
                            target_modules=self.params.lora_targets, modules_to_save=self.params.trained_modules)
        return get_peft_model(base, config)

    @property
    def start_token(self) -> int:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return int(base.config.decoder_start_token_id)

    def _seq2seq(self) -> nn.Module:
        """The module to call: LoRA layers are injected in place, so the base model runs the adapted weights."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.params.max_source_tokens, return_tensors="pt")
        batch = batch.to(self.device)
        with autocast(self.device, self.params.bf16):
            hidden = self._seq2seq().get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return hidden, batch["attention_mask"]

    def _decoder_step(self, hidden: torch.Tensor, mask: torch.Tensor, width: int = 1):
        """A `step` callback for `width` beams per encoded prompt: one decoder token per call, KV cache reordered.

        The first call runs once per prompt and then repeats the caches `width` times, so the cross-attention keys
        and values of the encoder states are projected once per prompt, not once per beam. The search itself (trie,
        scores, `parents` and `tokens`) stays on the CPU: only the LM runs on the device, and the step hands back CPU
        log-probabilities."""
        state = {"cache": None}
        sub_to_token = torch.as_tensor(self.vocab, device=self.device)
        start = self.start_token
        beams_hidden, beams_mask = hidden.repeat_interleave(width, 0), mask.repeat_interleave(width, 0)

        def step(parents: torch.Tensor | None, tokens: torch.Tensor | None) -> torch.Tensor:
            first = parents is None
            if first:
                ids = torch.full((len(hidden), 1), start, dtype=torch.long, device=self.device)
            else:
                # A beam's parent is always a beam of the same prompt, with the same encoder states: only the
                # self-attention cache needs reordering (the cross-attention one is large and would be copied as is).
                cache = state["cache"]
                getattr(cache, "self_attention_cache", cache).reorder_cache(parents.to(self.device))
                ids = sub_to_token[tokens.to(self.device)][:, None]
            with autocast(self.device, self.params.bf16):
                out = self._seq2seq()(encoder_outputs=(hidden if first else beams_hidden,),
                                      attention_mask=mask if first else beams_mask, decoder_input_ids=ids,
                                      cache=state["cache"], use_cache=True)
            state["cache"] = out.cache
            logprobs = F.log_softmax(out.logits[:, -1].float(), dim=-1)
            if first and width > 1:
                state["cache"].batch_repeat_interleave(width)
                logprobs = logprobs.repeat_interleave(width, 0)
            return logprobs.cpu()

        return step

    # --- data -----------------------------------------------------------------------------------------------------

    def _tokens(self, text: str, limit: int) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"][:limit]

    def history_titles(self, history: np.ndarray) -> list[str]:
        return [self.item_titles[i] for i in history[-self.params.max_history_items:]]

    def prompts(self, histories: list[np.ndarray], users: np.ndarray, template: str) -> list[str]:
        return [render(template, self.history_titles(histories[u])) for u in users]

    def explanation_prompt(self, sequence: np.ndarray, item: int, user: int | None = None, leave_out: str = "") -> str:
        """The explanation prompt of a (user, item) pair: the titles before the item in the user's sequence, or the
        whole sequence when the item is not in it. With `user` and a model trained on user-written targets: the
        `tag_explanation` prompt instead (module docstring), without the tags of `leave_out` (a training target's own
        text, so the prompt never holds its answer)."""
        if user is not None and (self.user_tags or self.item_tags):
            own = Counter(split_tags(leave_out))
            return render("tag_explanation", [], self.item_titles[item], features=self.item_features[item],
                          item_tags=top_tags(self.item_tags.get(item, Counter()), own, self.params.context_tags),
                          user_tags=top_tags(self.user_tags.get(user, Counter()), own, self.params.context_tags))
        return render("explanation", self.history_titles(history_before(sequence, item)), self.item_titles[item])

    def _remember_tags(self, pairs: list[tuple[tuple[int, int], str]]) -> None:
        self.user_tags, self.item_tags = {}, {}
        for (user, item), text in pairs:
            tags = split_tags(text)
            self.user_tags.setdefault(user, Counter()).update(tags)
            self.item_tags.setdefault(item, Counter()).update(tags)

    def _item_explanations(self, data: SplitData) -> list[list[int]]:
        return [self._tokens(explanation_target(text, title), self.params.max_explanation_tokens)
                for text, title in zip(data.item_text, data.item_titles)]

    def _build_catalogue(self, data: SplitData, explanations: list[list[int]]) -> None:
        """Title token sequences (truncated), the trie and the popularity floor; the output vocabulary covers the
        titles and the explanation targets."""
        self.item_titles = list(data.item_titles)
        titles = [self._tokens(t, self.params.max_title_tokens) for t in self.item_titles]
        self.vocab = np.unique(np.concatenate([[self.eos], *map(np.asarray, titles), *map(np.asarray, explanations)])).astype(np.int64)
        counts = np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items) if data.train_sequences else np.zeros(data.n_items)
        self.popularity = (np.argsort(np.argsort(counts, kind="stable"), kind="stable") / max(1, data.n_items)).astype(np.float32)
        self._build_trie(titles)

    def _build_trie(self, titles: list[list[int]]) -> None:
        self._to_output = np.full(int(self.vocab.max()) + 1, -100, dtype=np.int64)  # LM token id -> output index
        self._to_output[self.vocab] = np.arange(len(self.vocab))
        self.trie = TitleTrie.build([self._to_output[title].tolist() for title in titles], eos=int(self._to_output[self.eos]))

    def _examples(self, data: SplitData, rng: np.random.Generator) -> list[tuple[str, list[list[int]]]]:
        """One epoch of (source prompt, target token sequences): sequential cut points, whose targets are the titles
        of the next `targets_per_example` items (one encoder pass, several decoded targets), and explanations."""
        p = self.params
        titles = [self._tokens(t, p.max_title_tokens) for t in self.item_titles]
        examples = []
        for seq in data.train_sequences:
            positions = np.arange(max(1, len(seq) - p.recent_positions), len(seq))
            if not len(positions):
                continue
            for t in rng.choice(positions, size=min(p.examples_per_user, len(positions)), replace=False):
                history, target = self.history_titles(seq[:t]), int(seq[t])
                template = TRAINED_SEQUENTIAL[rng.integers(len(TRAINED_SEQUENTIAL))]
                examples.append((render(template, history), [titles[i] for i in seq[t : t + p.targets_per_example]]))
                if self._explanations and rng.random() < p.explanation_share:
                    examples.append((render("explanation", history, self.item_titles[target]), [self._explanations[target]]))
        by_user: dict[int, list] = {}
        for user, prompt, target in self._pair_explanations:
            by_user.setdefault(user, []).append((prompt, [target]))
        for user_pairs in by_user.values():
            drawn = rng.permutation(len(user_pairs))[: p.explanation_pairs_per_user]
            examples.extend(user_pairs[i] for i in drawn)
        return [examples[i] for i in rng.permutation(len(examples))]

    def _teacher_forcing(self, targets: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoder input ids, output-space labels) for LM-token targets that end in eos: inputs shifted right from
        the start token, pads labelled -100 (ignored)."""
        decoder_ids = torch.full((len(targets), max(map(len, targets))), self.tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full(decoder_ids.shape, -100, dtype=torch.long)
        for row, target in enumerate(targets):
            decoder_ids[row, : len(target)] = torch.as_tensor([self.start_token, *target[:-1]])
            labels[row, : len(target)] = torch.as_tensor(self._to_output[target])
        return decoder_ids, labels

    def _loss(self, batch: list[tuple[str, list[list[int]]]]) -> torch.Tensor:
        """Mean token cross-entropy of every target of every source (teacher forcing, output vocabulary)."""
        sources = self.tokenizer([s for s, _ in batch], padding=True, truncation=True, max_length=self.params.max_source_tokens, return_tensors="pt")
        targets = [[*target, self.eos] for _, group in batch for target in group]
        per_source = torch.as_tensor([len(group) for _, group in batch])
        decoder_ids, labels = self._teacher_forcing(targets)
        sources, decoder_ids, labels = sources.to(self.device), decoder_ids.to(self.device), labels.to(self.device)
        per_source = per_source.to(self.device)
        with autocast(self.device, self.params.bf16):
            model = self._seq2seq()
            hidden = model.get_encoder()(input_ids=sources["input_ids"], attention_mask=sources["attention_mask"]).last_hidden_state
            logits = model(encoder_outputs=(hidden.repeat_interleave(per_source, 0),),
                           attention_mask=sources["attention_mask"].repeat_interleave(per_source, 0),
                           decoder_input_ids=decoder_ids, decoder_attention_mask=(labels != -100).long()).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)

    @classmethod
    def cost(cls, params: GenerativeP5Params, size: DataSize) -> Cost:
        """The clock plus the fit's valid sample, then one constrained beam search per user (measured at beam 20 with
        6 + 6 layers; scaled by beam width and layers). Memory: two LM stacks, the title trie, and the decoder's
        cross-attention cache of one batch (users × beams × source tokens, keys and values per decoder layer)."""
        p = params
        layers = (p.encoder_layers or 6) + (p.decoder_layers or 6)
        beam = BEAM_SECONDS_PER_USER * (p.beam_width / 20) * (layers / 12)
        scoring = beam * size.n_eval_users + scoring_cells_seconds(size)
        fit_valid = beam * min(p.fit_valid_users, size.n_eval_users)
        cache = 2 * 4 * 384 * p.eval_batch_size * p.beam_width * p.max_source_tokens * (p.decoder_layers or 6)
        peak = 1.5 * LM_BASE_BYTES + 200 * p.max_title_tokens * size.n_items + cache + data_bytes(size)
        return Cost(seconds=p.max_minutes * 60 + fit_valid, scoring_seconds=scoring, peak_bytes=int(peak),
                    basis=f"{p.max_minutes:g}-min clock + {min(p.fit_valid_users, size.n_eval_users)} valid users; "
                    f"{beam:.3f} s per user's beam search (width {p.beam_width}, {layers} layers)")

    # --- Recommender ----------------------------------------------------------------------------------------------

    def fit(self, data: SplitData, user_explanations: Mapping[tuple[int, int], str] | None = None,
            item_explanations: bool = True, valid_explanations: Mapping[tuple[int, int], str] | None = None) -> FitReport:
        """Train under the budget. `user_explanations`: extra explanation targets {(user, item): text}, one example
        each per epoch; `item_explanations=False`: train explanations on those only (see the module docstring);
        `valid_explanations`: held-out pairs of the same kind, never trained on: the weights kept are those of the
        epoch whose explanations of them are most likely (per-token NLL, checked after every epoch)."""
        p = self.params
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        self._explanations = self._item_explanations(data) if item_explanations else []
        pairs = sorted((user_explanations or {}).items())
        pair_targets = [self._tokens(text, p.max_explanation_tokens) for _, text in pairs]
        self._build_catalogue(data, [*self._explanations, *pair_targets])
        self.item_features = [explanation_target(text, title) for text, title in zip(data.item_text, data.item_titles)]
        self._remember_tags(pairs)
        self._pair_explanations = [(u, self.explanation_prompt(data.train_sequences[u], i, user=u, leave_out=text), target)
                                   for ((u, i), text), target in zip(pairs, pair_targets)]
        valid = [(self.explanation_prompt(data.train_sequences[u], i, user=u), text)
                 for (u, i), text in sorted((valid_explanations or {}).items())]
        best = None  # (valid NLL, epoch, weights)
        self.model = self._adapted(self._base_model()).to(self.device)
        trainable = [q for q in self.model.parameters() if q.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=DEFAULT_LR[p.mode] if p.lr is None else p.lr, weight_decay=p.weight_decay)
        started, steps, curve = time.perf_counter(), 0, []
        out_of_budget = budget_clock(p.max_minutes, p.max_steps)
        self.model.train()
        for epoch in range(1, p.max_epochs + 1):
            if out_of_budget(steps):
                break
            losses, steps = optimizer_epoch(self._examples(data, rng), p.batch_size, self._loss, optimizer, out_of_budget, steps)
            curve.append({"epoch": epoch, "steps": steps, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started})
            if valid:
                curve[-1]["valid_explanation_nll"] = nll = self._explanation_nll(valid)
                if best is None or nll < best[0]:
                    best = (nll, epoch, {k: v.detach().clone() for k, v in self.model.state_dict().items()})
            log.info(f"{self.name} epoch {epoch}: {curve[-1]}")
        if best is not None:
            self.model.load_state_dict(best[2])
        self.model.eval()
        self.digest = self._weights_digest()
        ndcg = self._valid_ndcg(data) if p.fit_valid_users else None
        return FitReport(
            params={**p.model_dump(), "steps": steps, **({"user_explanations": len(pairs)} if pairs else {}),
                    **({"valid_explanations": len(valid), "checkpoint_epoch": best[1]} if best else {}),
                    "output_vocabulary": len(self.vocab), "train_seconds": time.perf_counter() - started},
            valid_ndcg_at_10=ndcg, curve=curve, trainable_parameters=sum(q.numel() for q in trainable),
        )

    def _explanation_nll(self, pairs: list[tuple[str, str]]) -> float:
        """Per-token negative log-likelihood of the (prompt, text) pairs the model can write (teacher forcing, eval
        mode); the pairs with a token outside the output vocabulary are left out."""
        was_training = self.model.training
        self.model.eval()
        logp = np.array([self.candidate_logprobs(prompt, [text])[0] for prompt, text in pairs])
        self.model.train(was_training)
        writable = np.isfinite(logp)
        lengths = np.array([self.written_length(text) for _, text in pairs])
        return float(-logp[writable].sum() / max(1, lengths[writable].sum()))

    def _valid_ndcg(self, data: SplitData) -> float:
        users = data.evaluation_users("valid")
        sample = np.random.default_rng(self.params.seed).choice(users, size=min(len(users), self.params.fit_valid_users), replace=False)
        return float(evaluate(self, data, "valid", ks=(10,), users=np.sort(sample)).loc[0, "ndcg"])

    @torch.no_grad()
    def decode(self, prompts: list[str], seen: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per prompt: (item indices, log-probabilities) of the `beam_width` best unseen catalogue titles (memoised)."""
        keys = [self._cache_key(prompt, items) for prompt, items in zip(prompts, seen)]
        missing = [i for i, key in enumerate(keys) if key not in _DECODE_CACHE]
        step = self.params.eval_batch_size
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            hidden, mask = self._encode([prompts[i] for i in chunk])
            width = self.params.beam_width
            items, scores = constrained_beam_search(self.trie, self._decoder_step(hidden, mask, width), len(chunk), width, [seen[i] for i in chunk])
            for i, row_items, row_scores in zip(chunk, items, scores):
                _DECODE_CACHE[keys[i]] = (row_items, row_scores)
                if len(_DECODE_CACHE) > _DECODE_CACHE_SIZE:
                    _DECODE_CACHE.popitem(last=False)
        return [_DECODE_CACHE[key] for key in keys]

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self.score_prompts(users, histories, self.user_prompts(users, histories))

    def user_prompts(self, users: np.ndarray, histories: list[np.ndarray]) -> list[str]:
        """The ranking prompt each user is decoded from (`base.PromptRecommender`)."""
        return self.prompts(histories, users, self.ranking_template)

    def score_prompts(self, users: np.ndarray, histories: list[np.ndarray], prompts: list[str]) -> np.ndarray:
        """Beams decoded from `prompts[j]` with user `users[j]`'s seen titles blocked, above the popularity floor."""
        results = self.decode(prompts, [histories[u] for u in users])
        scores = np.tile(FLOOR + self.popularity, (len(users), 1))
        for row, (items, values) in enumerate(results):
            scores[row, items] = np.maximum(values, FLOOR + 10.0)
        return scores

    @torch.no_grad()
    def generate(self, prompts: list[str], max_tokens: int) -> list[list[int]]:
        """Unconstrained greedy decoding: per prompt the output-space token ids up to (and including) eos."""
        out, eos = [], int(np.flatnonzero(self.vocab == self.eos)[0])
        for start in range(0, len(prompts), self.params.eval_batch_size):
            hidden, mask = self._encode(prompts[start : start + self.params.eval_batch_size])
            step = self._decoder_step(hidden, mask)
            rows = torch.arange(len(hidden))
            tokens, generated, done = None, [[] for _ in rows], torch.zeros(len(hidden), dtype=torch.bool)
            for _ in range(max_tokens + 1):
                tokens = step(None if tokens is None else rows, tokens).argmax(-1)
                for row in torch.nonzero(~done).flatten().tolist():
                    generated[row].append(int(tokens[row]))
                done |= tokens == eos
                if done.all():
                    break
            out.extend(generated)
        return out

    @torch.no_grad()
    def candidate_logprobs(self, prompt: str, candidates: list[str], batch_size: int = 256) -> np.ndarray:
        """log P(candidate, then eos | prompt) of each candidate text (teacher forcing; the prompt encoded once): the
        model choosing among grounded texts, so what it writes is one of them. -inf for a candidate with a token
        outside the output vocabulary (the model cannot write it)."""
        tokens = [self._tokens(c, self.params.max_explanation_tokens) for c in candidates]
        writable = [i for i, t in enumerate(tokens) if t and max(t) < len(self._to_output) and (self._to_output[t] >= 0).all()]
        out = np.full(len(candidates), -np.inf)
        hidden, mask = self._encode([prompt])
        for start in range(0, len(writable), batch_size):
            chunk = writable[start : start + batch_size]
            decoder_ids, labels = self._teacher_forcing([[*tokens[i], self.eos] for i in chunk])
            decoder_ids, labels = decoder_ids.to(self.device), labels.to(self.device)
            with autocast(self.device, self.params.bf16):
                logits = self._seq2seq()(encoder_outputs=(hidden.expand(len(chunk), -1, -1),),
                                         attention_mask=mask.expand(len(chunk), -1), decoder_input_ids=decoder_ids,
                                         decoder_attention_mask=(labels != -100).long()).logits
            logp = F.log_softmax(logits.float(), dim=-1).gather(2, labels.clamp(min=0)[:, :, None])[:, :, 0]
            out[chunk] = (logp * (labels != -100)).sum(1).cpu().numpy()
        return out

    def written_length(self, text: str) -> int:
        """Tokens the model writes for an explanation `text`, eos included (what candidate_logprobs sums over)."""
        return len(self._tokens(text, self.params.max_explanation_tokens)) + 1

    def ended(self, output_tokens: list[int]) -> bool:
        """Whether a `generate` output stopped at eos, not at its token limit."""
        return bool(output_tokens) and output_tokens[-1] == self._to_output[self.eos]

    def text(self, output_tokens: list[int]) -> str:
        """Output-space tokens → text (eos and special tokens dropped)."""
        return self.tokenizer.decode(self.vocab[np.asarray(output_tokens, dtype=np.int64)].tolist(), skip_special_tokens=True).strip()

    def normalized(self, text: str, limit: int) -> str:
        """A reference text in the form the model writes it (the tokenizer's normalisation, truncated to `limit`)."""
        return self.tokenizer.decode(self._tokens(text, limit), skip_special_tokens=True).strip()

    def _cache_key(self, prompt: str, seen: np.ndarray) -> str:
        payload = f"{self.digest}|{self.params.beam_width}|{prompt}|".encode() + np.unique(seen).astype(np.int64).tobytes()
        return hashlib.sha256(payload).hexdigest()

    def _weights_digest(self) -> str:
        """Identifies the trained weights: equal after save/load, so decodes are shared between both."""
        if self.params.mode == "lora":
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(self.model)
        else:
            state = self.model.state_dict()
        digest = hashlib.sha256(self.params.model_dump_json().encode())
        for name in sorted(state):
            digest.update(name.encode())
            digest.update(state[name].detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: Path) -> None:
        if self.params.mode == "lora":
            self.model.save_pretrained(path / "adapter")  # adapter_config.json + adapter_model.safetensors
        else:
            save_model(self.model, str(path / "model.safetensors"))  # safetensors copies device tensors to CPU
        (path / "params.json").write_text(self.params.model_dump_json())
        (path / "fitted.json").write_text(json.dumps({
            "vocab": self.vocab.tolist(), "item_titles": self.item_titles, "popularity": self.popularity.tolist(), "digest": self.digest,
            "item_features": self.item_features,
            "user_tags": {str(u): dict(c) for u, c in self.user_tags.items()},
            "item_tags": {str(i): dict(c) for i, c in self.item_tags.items()},
        }))

    @classmethod
    def load(cls, path: Path) -> Self:
        model = cls(cls.Params.model_validate_json((path / "params.json").read_text()))
        fitted = json.loads((path / "fitted.json").read_text())
        model.vocab = np.asarray(fitted["vocab"], dtype=np.int64)
        model.item_titles = fitted["item_titles"]
        model.popularity = np.asarray(fitted["popularity"], dtype=np.float32)
        model.digest = fitted["digest"]
        model.item_features = fitted.get("item_features", [])
        model.user_tags = {int(u): Counter(c) for u, c in fitted.get("user_tags", {}).items()}
        model.item_tags = {int(i): Counter(c) for i, c in fitted.get("item_tags", {}).items()}
        model._build_trie([model._tokens(t, model.params.max_title_tokens) for t in model.item_titles])
        base = model._base_model()
        if model.params.mode == "lora":
            from peft import PeftModel

            model.model = PeftModel.from_pretrained(base, path / "adapter")
        else:
            load_model(base, str(path / "model.safetensors"))
            model.model = base
        model.model.to(model.device).eval()  # loaded on CPU, then moved to LMREC_DEVICE
        return model
