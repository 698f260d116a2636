"""AttnGAN's attentional generator, adapted to text-conditioned microscopy SR.

Paper: Xu, Zhang, Huang, Zhang, Gan, Huang, He, "AttnGAN: Fine-Grained Text to Image Generation with
Attentional Generative Adversarial Networks", CVPR 2018 (arXiv:1711.10485).

**Kept from the paper.** A text encoder — word embeddings and a bidirectional RNN — gives a feature
``e_i`` per word (the two directions' hidden states, concatenated) and a sentence feature ``ē`` (the
two directions' last hidden states). At each stage of the generator the attention model ``F^attn``
(Sec. 3.1, Eq. 2) maps the words into the image-feature space with a perceptron (``e'_i = U e_i``,
here a linear layer), computes for every sub-region (pixel) ``j`` of the hidden features ``h`` the
weights ``β_{j,i} = softmax_i(h_j^T e'_i)`` over the words and the word-context vector
``c_j = Σ_i β_{j,i} e'_i``; the next stage sees ``[h; c]`` concatenated. The DAMSM image encoder
(:class:`DAMSMImageEncoder`, Sec. 3.2) gives local region features and a global feature in the same
space as the words (its losses are in :mod:`srlab.paradigms.damsm`).

**Adapted.** (1) *Super-resolution instead of text-to-image*: the first hidden state ``h_0`` comes
from the LR image (a conv head) plus a linear projection of ``ē`` at every pixel, instead of
``F_0(z, F^ca(ē))`` from noise; there is no noise ``z`` and no conditioning augmentation ``F^ca``
(SR is a deterministic mapping and the conditioning is a handful of discrete facts). (2) Stages are
SR upsampling stages: attention, a 1×1 fusion of ``[h; c]``, ``num_blocks`` EDSR residual blocks and a
sub-pixel ×2 (or ×3) upsampling; ×2 has one stage, ×4 two, ×8 three, ×1 one stage without
upsampling. Only the final image is produced and judged (the paper emits an image and has a
discriminator at every stage). (3) The text is a short description from a small fixed vocabulary
(:mod:`srlab.optics.descriptions`: structures, modalities, resolution bucket), encoded by a
bi-GRU (the paper: a bi-LSTM on captions; the authors' code: 300-d embeddings, 256-d word
features; here 64 and 64 by default).
(4) ``forward(lr)`` without tokens uses ``default_description``, so prediction, comparison and export
(which call ``forward(lr)``) work unchanged; that default is then what the network is conditioned on.
(5) Padding words are masked out of every softmax (the paper's captions are variable-length too).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import SCALES, ResBlock, check_at_least, check_scale, conv
from srlab.optics.descriptions import DEFAULT_DESCRIPTION, VOCABULARY, DescriptionError, tokenize

_NEG = -1e4  # a logit that softmax turns into ~0 (finite, so no NaN when a row is fully masked)


def reverse_valid(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` (N, T, C) within its first ``lengths[n]`` steps, padding in place:
    the backward direction of the bi-GRU then reads the words only, never the padding first."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[2]))


class TextEncoder(nn.Module):
    """Word embeddings + a bidirectional GRU (AttnGAN's text encoder, with a GRU for its LSTM).

    ``forward(tokens)`` with ``tokens`` (N, T) int64, 0 = padding, returns word features (N, D, T),
    the sentence feature (N, D) and the word mask (N, T), with D = ``features`` (two directions of D/2)."""

    def __init__(self, vocabulary_size: int, embedding_dim: int, features: int):
        super().__init__()
        if features % 2:
            raise OptionError(f"text_features must be even (two GRU directions of half each), got {features}")
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=0)
        self.forward_rnn = nn.GRU(embedding_dim, features // 2, batch_first=True)
        self.backward_rnn = nn.GRU(embedding_dim, features // 2, batch_first=True)
        self.features = features

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mask = tokens > 0
        lengths = mask.sum(1).clamp(min=1)
        x = self.embedding(tokens)
        fwd, _ = self.forward_rnn(x)
        bwd, _ = self.backward_rnn(reverse_valid(x, lengths))
        bwd = reverse_valid(bwd, lengths)  # back in word order: bwd[t] has read words t..end
        words = torch.cat([fwd, bwd], dim=2) * mask[:, :, None]
        last = (lengths - 1)[:, None, None].expand(-1, 1, fwd.shape[2])
        sentence = torch.cat([torch.gather(fwd, 1, last)[:, 0], bwd[:, 0]], dim=1)
        return words.transpose(1, 2), sentence, mask


class WordAttention(nn.Module):
    """AttnGAN's ``F^attn`` (Eq. 2): a word-context vector for every pixel of the image features.

    ``forward(h, words, mask)`` with ``h`` (N, F, H, W), ``words`` (N or 1, D, T) and ``mask`` (N or 1, T)
    returns the context (N, F, H, W) and the attention weights β (N, H·W, T), which sum to 1 over the
    (unmasked) words of every pixel."""

    def __init__(self, features: int, text_features: int):
        super().__init__()
        self.project = nn.Linear(text_features, features, bias=False)  # U: words into image-feature space

    def forward(self, h: Tensor, words: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n, f, height, width = h.shape
        projected = self.project(words.transpose(1, 2))  # (N, T, F)
        query = h.flatten(2).transpose(1, 2)  # (N, HW, F)
        logits = query @ projected.transpose(1, 2)  # (N, HW, T)
        logits = logits.masked_fill(~mask[:, None, :], _NEG)
        beta = torch.softmax(logits, dim=2)
        context = (beta @ projected).transpose(1, 2).reshape(n, f, height, width)
        return context, beta


class _Stage(nn.Module):
    """One generator stage: attention, fusion of ``[h; c]``, residual blocks, sub-pixel upsampling by ``factor``."""

    def __init__(self, features: int, text_features: int, num_blocks: int, factor: int):
        super().__init__()
        self.attention = WordAttention(features, text_features)
        self.fuse = conv(2 * features, features, 1)
        self.body = nn.Sequential(*[ResBlock(features) for _ in range(num_blocks)], conv(features, features))
        up: list[nn.Module] = []
        if factor > 1:
            up = [conv(features, features * factor * factor), nn.PixelShuffle(factor), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*up)

    def forward(self, h: Tensor, words: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        context, beta = self.attention(h, words, mask)
        fused = self.fuse(torch.cat([h, context], dim=1))
        return self.up(fused + self.body(fused)), beta


def stage_factors(scale: int) -> list[int]:
    """Upsampling factor of each stage: ×2 stages for powers of two, one ×3 stage, one ×1 stage at scale 1."""
    if scale == 1:
        return [1]
    if scale == 3:
        return [3]
    return [2] * (scale.bit_length() - 1)


@NETWORKS.register("attngan", family="gan", paper="Xu et al., CVPR 2018, arXiv:1711.10485 (AttnGAN)",
                   scales=SCALES, learned=True)
class AttnGANGenerator(nn.Module):
    """AttnGAN's attentional generator as a text-conditioned SR network; see the module docstring.

    ``forward(lr, tokens=None)``: ``tokens`` (N, T) or (T,) int64 description ids
    (:func:`srlab.optics.descriptions.tokenize`); ``None`` uses ``default_description``.
    ``forward_with_attention`` also returns each stage's attention weights β (N, H·W, T).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2, features: int = 64,
                 num_blocks: int = 4, embedding_dim: int = 64, text_features: int = 64,
                 default_description: str = DEFAULT_DESCRIPTION):
        super().__init__()
        self.scale = check_scale(scale)
        for name, value in (("features", features), ("num_blocks", num_blocks), ("embedding_dim", embedding_dim),
                            ("text_features", text_features)):
            check_at_least(name, value, 1)
        try:
            default = tokenize(default_description)
        except DescriptionError as err:
            raise OptionError(f"default_description: {err}") from None
        self.text_encoder = TextEncoder(len(VOCABULARY), embedding_dim, text_features)
        self.text_features = text_features
        # Derived from the constructor argument (kept in network.json), so not part of the state dict.
        # torch.tensor (not from_numpy) follows a default-device context, e.g. the meta device of listings.
        self.register_buffer("default_tokens", torch.tensor([default.tolist()], dtype=torch.long), persistent=False)
        self.head = conv(in_channels, features)
        self.sentence = nn.Linear(text_features, features)
        self.stages = nn.ModuleList([_Stage(features, text_features, num_blocks, f) for f in stage_factors(scale)])
        self.tail = conv(features, out_channels)
        self.out_channels = out_channels

    def forward_with_attention(self, lr: Tensor, tokens: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        if tokens is None:
            tokens = self.default_tokens  # one description for the whole batch (broadcast below)
        elif tokens.dim() == 1:
            tokens = tokens[None]
        words, sentence, mask = self.text_encoder(tokens)
        h = self.head(lr) + self.sentence(sentence)[:, :, None, None]
        maps = []
        for stage in self.stages:
            h, beta = stage(h, words, mask)
            maps.append(beta)
        return self.tail(h), maps

    def forward(self, lr: Tensor, tokens: Tensor | None = None) -> Tensor:
        return self.forward_with_attention(lr, tokens)[0]


class DAMSMImageEncoder(nn.Module):
    """DAMSM's image encoder (Sec. 3.2), small: local features ``v`` (N, D, R) of R sub-regions and a
    global feature ``v̄`` (N, D) in the words' space (D = ``text_features``).

    *Adapted*: the paper uses an ImageNet Inception-v3 (``mixed_6e`` 768×17×17 regions, the last
    average pool for ``v̄``) and 1×1/linear maps to D; one-channel microscopy patches have no such
    pretrained network, so a four-conv CNN (two stride-2 convs: a region is 4×4 HR pixels) is trained
    from scratch, with the same two linear maps."""

    def __init__(self, in_channels: int = 1, features: int = 32, text_features: int = 64):
        super().__init__()
        check_at_least("damsm_features", features, 1)
        act = nn.LeakyReLU(0.2, inplace=True)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, features, 3, padding=1), act,
            nn.Conv2d(features, features, 4, stride=2, padding=1), act,
            nn.Conv2d(features, 2 * features, 3, padding=1), act,
            nn.Conv2d(2 * features, 2 * features, 4, stride=2, padding=1), act)
        self.local = nn.Conv2d(2 * features, text_features, 1)
        self.global_ = nn.Linear(2 * features, text_features)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = self.body(image)
        return self.local(x).flatten(2), self.global_(x.mean(dim=(2, 3)))
