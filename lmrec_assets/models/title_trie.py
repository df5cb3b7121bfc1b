"""Grounded generation: a prefix trie of the catalogue's tokenized titles and a batched beam search constrained to it.

Every sequence the beam search can finish is a path root → ... → eos of the trie, i.e. a catalogue title, so every
generated sequence maps to real item ids. Titles that tokenize to the same sequence (true duplicates, or titles equal
up to the truncation length) share one leaf, and a finished beam maps to *all* item ids at its leaf (they get the same
score; the caller's ranking breaks the tie by item index).

Per-user masking of seen items happens inside the search: a node whose whole subtree is items the user has already
seen is never entered, so the W beams are W distinct unseen titles and the top-K after the caller's masking is filled
with beams whenever K <= W.

The search is model-agnostic: `constrained_beam_search` asks a `step` callback for next-token log-probabilities of
the live beams (the decoder, with its KV cache reordered to the chosen parents), so the property test drives it with
random logits and the recommender with the seq2seq LM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TitleTrie:
    """Token-id prefix trie over titles; node 0 is the root. Tokens are ids of the model's output space."""

    child_tokens: list[np.ndarray]  # node -> token ids leading to its children
    child_nodes: list[np.ndarray]  # node -> child node ids (aligned with child_tokens)
    leaf_items: dict[int, np.ndarray]  # leaf node (reached by eos) -> item indices sharing that tokenized title
    item_paths: list[np.ndarray]  # item -> nodes on its path (root excluded, leaf included)
    subtree_items: np.ndarray  # node -> number of items below (and at) it
    eos: int

    @property
    def n_nodes(self) -> int:
        return len(self.child_tokens)

    @classmethod
    def build(cls, token_sequences: Sequence[Sequence[int]], eos: int) -> TitleTrie:
        """`token_sequences[i]` is item i's title as token ids, without eos (it is appended here)."""
        children: list[dict[int, int]] = [{}]
        leaves: dict[int, list[int]] = {}
        paths = []
        for item, tokens in enumerate(token_sequences):
            node, path = 0, []
            for token in [*tokens, eos]:
                if token not in children[node]:
                    children[node][token] = len(children)
                    children.append({})
                node = children[node][token]
                path.append(node)
            leaves.setdefault(node, []).append(item)
            paths.append(np.array(path, dtype=np.int64))
        subtree = np.zeros(len(children), dtype=np.int64)
        subtree[0] = len(token_sequences)
        for path in paths:
            subtree[path] += 1
        return cls(
            child_tokens=[np.fromiter(c.keys(), dtype=np.int64, count=len(c)) for c in children],
            child_nodes=[np.fromiter(c.values(), dtype=np.int64, count=len(c)) for c in children],
            leaf_items={leaf: np.array(items, dtype=np.int64) for leaf, items in leaves.items()},
            item_paths=paths,
            subtree_items=subtree,
            eos=eos,
        )

    def blocked_nodes(self, seen: Sequence[np.ndarray]) -> np.ndarray:
        """(len(seen), n_nodes) bool: nodes whose every item is in that row's seen set (never entered)."""
        blocked = np.zeros((len(seen), self.n_nodes), dtype=bool)
        for row, items in enumerate(seen):
            items = np.unique(np.asarray(items, dtype=np.int64))
            if not len(items):
                continue
            nodes, counts = np.unique(np.concatenate([self.item_paths[i] for i in items]), return_counts=True)
            blocked[row, nodes[counts == self.subtree_items[nodes]]] = True
        return blocked

    def is_title(self, tokens: Sequence[int]) -> bool:
        """Whether `tokens` (ending with eos) is a path to a leaf, i.e. a catalogue title."""
        node = 0
        for token in tokens:
            hit = np.flatnonzero(self.child_tokens[node] == token)
            if not len(hit):
                return False
            node = int(self.child_nodes[node][hit[0]])
        return node in self.leaf_items


# step(parents, tokens) -> (rows * width, vocab) next-token log-probs of every beam slot. `parents[b]` is the previous
# slot beam b extends (the callback reorders its decoder cache with it) and `tokens[b]` the token it appends; both are
# None on the first call, where every slot starts from the decoder's start token.
StepFn = Callable[[torch.Tensor | None, torch.Tensor | None], torch.Tensor]


def constrained_beam_search(
    trie: TitleTrie, step: StepFn, n_rows: int, width: int, seen: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Beam search of `width` beams for each of `n_rows` inputs, only along trie paths not blocked by `seen`.

    Every row keeps `width` beams of shape (rows * width): beam b of row r is row r*width + b of `step`'s batch.
    Finished beams (eos taken, a leaf reached) stay in the pool with their final score and compete with the live
    ones, so the result is the `width` best complete titles by total log-probability (no length normalisation: the
    score is log P(title | prompt)). Returns per row the finished leaves' item indices (items of one leaf repeated
    with the same score) and their scores, best first.
    """
    n_beams = n_rows * width
    blocked = trie.blocked_nodes(seen)
    row_of_beam = np.repeat(np.arange(n_rows), width)
    nodes = np.zeros(n_beams, dtype=np.int64)
    scores = torch.full((n_rows, width), -torch.inf)
    scores[:, 0] = 0.0  # one live beam per row at the root; the others are filled by the first expansion
    finished = np.zeros(n_beams, dtype=bool)
    parents: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    for _ in range(max(len(path) for path in trie.item_paths)):  # the longest title + its eos
        if finished.all():
            break
        logprobs = step(parents, tokens).float()
        vocab = logprobs.shape[1]
        # Allowed (beam, token) pairs: unblocked trie children of live beams. A finished beam offers itself once, as
        # the candidate (beam, eos) with its unchanged score (it stays on its leaf).
        beam_idx, token_idx, child_idx = [], [], []
        for beam in np.flatnonzero(~finished & np.isfinite(scores.view(-1).numpy())):
            kids = trie.child_nodes[nodes[beam]]
            keep = ~blocked[row_of_beam[beam], kids]
            beam_idx.append(np.full(keep.sum(), beam))
            token_idx.append(trie.child_tokens[nodes[beam]][keep])
            child_idx.append(kids[keep])
        beam_idx = np.concatenate(beam_idx) if beam_idx else np.zeros(0, dtype=np.int64)
        token_idx = np.concatenate(token_idx) if token_idx else np.zeros(0, dtype=np.int64)
        child_idx = np.concatenate(child_idx) if child_idx else np.zeros(0, dtype=np.int64)
        candidates = torch.full((n_beams, vocab), -torch.inf)
        candidates[beam_idx, token_idx] = scores.view(-1)[beam_idx] + logprobs[beam_idx, token_idx]
        done = np.flatnonzero(finished)
        candidates[done, trie.eos] = scores.view(-1)[done]
        child_of = dict(zip(zip(beam_idx.tolist(), token_idx.tolist()), child_idx.tolist()))

        best, flat = candidates.view(n_rows, width * vocab).topk(width, dim=1)
        parent_beam = (flat // vocab + torch.arange(n_rows)[:, None] * width).view(-1)
        chosen_token = (flat % vocab).view(-1)
        parents = parent_beam
        tokens = chosen_token
        new_nodes = np.zeros(n_beams, dtype=np.int64)
        new_finished = np.zeros(n_beams, dtype=bool)
        for beam, (parent, token, value) in enumerate(zip(parent_beam.tolist(), chosen_token.tolist(), best.view(-1).tolist())):
            if value == -np.inf:
                continue  # fewer than `width` unblocked titles: this slot stays empty
            if finished[parent]:
                new_nodes[beam], new_finished[beam] = nodes[parent], True
            else:
                new_nodes[beam] = child_of[(parent, token)]
                new_finished[beam] = token == trie.eos
        nodes, finished, scores = new_nodes, new_finished | ~torch.isfinite(best.view(-1)).numpy(), best

    items, item_scores = [], []
    for row in range(n_rows):
        row_items, row_scores = [], []
        for beam in range(row * width, (row + 1) * width):
            value = float(scores.view(-1)[beam])
            if np.isfinite(value) and nodes[beam] in trie.leaf_items:
                leaf = trie.leaf_items[nodes[beam]]
                row_items.append(leaf)
                row_scores.append(np.full(len(leaf), value))
        items.append(np.concatenate(row_items) if row_items else np.zeros(0, dtype=np.int64))
        item_scores.append(np.concatenate(row_scores) if row_scores else np.zeros(0))
    return items, item_scores
