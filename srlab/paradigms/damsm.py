"""The DAMSM image–text matching loss of AttnGAN — Xu et al., CVPR 2018 (arXiv:1711.10485), Sec. 3.2.

**Kept from the paper.** For a batch of M (image Q_i, description D_i) pairs:

* *word level*: ``s = e^T v`` (words × regions), normalized over the words
  (``s̄_{i,j} = exp(s_{i,j}) / Σ_k exp(s_{k,j})``); for each word i an attention over the regions
  ``α_j = exp(γ1 s̄_{i,j}) / Σ_k exp(γ1 s̄_{i,k})`` gives its region-context ``c_i = Σ_j α_j v_j``;
  ``R(c_i, e_i)`` is their cosine and ``R(Q, D) = log(Σ_i exp(γ2 R(c_i, e_i)))^(1/γ2)``;
* *sentence level*: ``R(Q, D) = cos(v̄, ē)``;
* for each: ``P(D_i | Q_i) = exp(γ3 R(Q_i, D_i)) / Σ_j exp(γ3 R(Q_i, D_j))`` (softmax over the batch's
  descriptions), ``L1 = -log P(D_i | Q_i)``, ``L2 = -log P(Q_i | D_i)`` (softmax over images);
  ``L_DAMSM = L1^w + L2^w + L1^s + L2^s``.

Defaults γ1 = 5, γ2 = 5, γ3 = 10 (the paper's values).

**Adapted.** Losses are averaged over the batch (the authors' code uses a mean cross-entropy; the paper
writes sums). A small vocabulary repeats descriptions within a batch: a pair (i, j ≠ i) with the *same*
description is left out of the softmax denominators — it is not a mismatch — as the authors' code does
for captions of the same class. Padding words are masked out of every sum over words.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_NEG = -1e4


@dataclass(frozen=True)
class Gammas:
    """DAMSM's smoothing factors: γ1 (attention over regions), γ2 (word aggregation), γ3 (batch softmax)."""

    gamma1: float = 5.0
    gamma2: float = 5.0
    gamma3: float = 10.0


def word_scores(regions: Tensor, words: Tensor, mask: Tensor, gamma1: float, gamma2: float) -> Tensor:
    """``R(Q_a, D_b)`` at the word level for every image a and description b: (M images, M descriptions).

    ``regions`` (M, D, R), ``words`` (M, D, T), ``mask`` (M, T) bool."""
    s = torch.einsum("bdt,adr->abtr", words, regions)  # (images, descriptions, words, regions)
    s = s.masked_fill(~mask[None, :, :, None], _NEG)
    s_bar = torch.softmax(s, dim=2)  # normalized over the words, for each region
    alpha = torch.softmax(gamma1 * s_bar, dim=3)  # attention over the regions, for each word
    context = torch.einsum("abtr,adr->abtd", alpha, regions)
    relevance = F.cosine_similarity(context, words.transpose(1, 2)[None], dim=3, eps=1e-8)  # (a, b, T)
    relevance = (gamma2 * relevance).masked_fill(~mask[None], _NEG)
    return torch.logsumexp(relevance, dim=2) / gamma2


def sentence_scores(image_global: Tensor, sentence: Tensor) -> Tensor:
    """``R(Q_a, D_b) = cos(v̄_a, ē_b)``: (M images, M descriptions)."""
    return F.cosine_similarity(image_global[:, None, :], sentence[None, :, :], dim=2, eps=1e-8)


def matching_loss(scores: Tensor, tokens: Tensor, gamma3: float) -> Tensor:
    """``L1 + L2`` of a score matrix (images × descriptions): each image's own description against the
    batch's other descriptions, and each description's own image against the other images; pairs with
    identical descriptions are left out of the denominators."""
    same = (tokens[:, None, :] == tokens[None, :, :]).all(dim=2)
    duplicate = same & ~torch.eye(len(tokens), dtype=torch.bool, device=tokens.device)
    logits = (gamma3 * scores).masked_fill(duplicate, _NEG)
    target = torch.arange(len(tokens), device=scores.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)


def damsm_loss(regions: Tensor, image_global: Tensor, words: Tensor, sentence: Tensor, mask: Tensor,
               tokens: Tensor, gammas: Gammas = Gammas()) -> dict[str, Tensor]:
    """The word- and sentence-level terms and their sum ``damsm`` (``L1^w + L2^w + L1^s + L2^s``)."""
    word = matching_loss(word_scores(regions, words, mask, gammas.gamma1, gammas.gamma2), tokens, gammas.gamma3)
    sent = matching_loss(sentence_scores(image_global, sentence), tokens, gammas.gamma3)
    return {"damsm": word + sent, "damsm_word": word, "damsm_sentence": sent}
