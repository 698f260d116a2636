"""DAMSM losses (AttnGAN, Xu et al. 2018): matching pairs score better than shuffled ones, on a
constructed case and after a few training steps of the encoders."""
from __future__ import annotations

import torch

from srlab.models.attngan import DAMSMImageEncoder, TextEncoder
from srlab.optics.descriptions import VOCABULARY, tokenize
from srlab.paradigms.damsm import damsm_loss, word_scores

DESCRIPTIONS = ["microtubules confocal sted 40nm", "ccps confocal sted 40nm", "nuclear_pores confocal sted 40nm",
                "actin er confocal sted 40nm"]


def ids(order: list[int]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(tokenize(DESCRIPTIONS[i])) for i in order])


def test_constructed_case_matching_beats_shuffled() -> None:
    """Each image's regions are its description's first word feature, so the matching pairing is the
    best one: its loss is near 0 and far below that of a shuffled pairing of the same features."""
    torch.manual_seed(0)
    m, d, t, r = 4, 16, 8, 9
    tok = ids([0, 1, 2, 3])
    mask = tok > 0
    words = torch.randn(m, d, t) * mask[:, None, :]
    words[:, :, 0] = torch.eye(m, d) * 3  # a distinctive first word per description
    regions = words[:, :, :1].expand(m, d, r).clone()
    image_global = words[:, :, 0].clone()
    sentence = words[:, :, 0].clone()
    matching = damsm_loss(regions, image_global, words, sentence, mask, tok)
    perm = [1, 2, 3, 0]
    shuffled = damsm_loss(regions, image_global, words[perm], sentence[perm], mask[perm], tok[perm])
    for key in ("damsm_word", "damsm_sentence"):
        assert matching[key] < 0.1 and shuffled[key] > 1.0, (key, matching[key], shuffled[key])


def test_identical_descriptions_are_not_negatives_and_padding_is_ignored() -> None:
    torch.manual_seed(0)
    tok = ids([0, 0, 0])
    mask = tok > 0
    words, regions = torch.randn(3, 8, 8), torch.randn(3, 8, 5)
    out = damsm_loss(regions, torch.randn(3, 8), words, torch.randn(3, 8), mask, tok)
    assert out["damsm"].abs() < 1e-6  # every other pair is the same description: nothing to tell apart
    garbage = words.clone()
    garbage[:, :, 4:] = 100.0  # features at padded positions
    torch.testing.assert_close(word_scores(regions, words, mask, 5.0, 5.0),
                               word_scores(regions, garbage, mask, 5.0, 5.0))


def _images(order: list[int], generator: torch.Generator) -> torch.Tensor:
    """Description i -> a different pattern (stripes, dots, checks, a gradient) plus noise."""
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    patterns = [torch.sin(x), ((x % 4 < 1) & (y % 4 < 1)).float(), ((x // 4 + y // 4) % 2).float(), y / 12]
    return torch.stack([patterns[i] + 0.1 * torch.randn(12, 12, generator=generator) for i in order])[:, None]


def test_a_few_steps_teach_the_encoders_to_match() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    image_encoder, text_encoder = DAMSMImageEncoder(1, 8, 16), TextEncoder(len(VOCABULARY), 8, 16)
    opt = torch.optim.Adam([*image_encoder.parameters(), *text_encoder.parameters()], lr=3e-3)

    def loss(order: list[int], shuffle: bool = False) -> torch.Tensor:
        regions, image_global = image_encoder(_images(order, gen))
        text_order = order[1:] + order[:1] if shuffle else order
        words, sentence, mask = text_encoder(ids(text_order))
        return damsm_loss(regions, image_global, words, sentence, mask, ids(text_order))["damsm"]

    order = [0, 1, 2, 3]
    with torch.no_grad():
        before = loss(order).item()
    for _ in range(20):
        opt.zero_grad()
        loss(order).backward()
        opt.step()
    with torch.no_grad():
        after, shuffled = loss(order).item(), loss(order, shuffle=True).item()
    assert after < 0.5 * before
    assert after < shuffled
