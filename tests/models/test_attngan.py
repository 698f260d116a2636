"""AttnGAN's text-conditioned generator: attention over words, conditioning, the forward(lr) contract."""
from __future__ import annotations

import pytest
import torch

from srlab.errors import SrlabError
from srlab.models import create
from srlab.models.attngan import TextEncoder
from srlab.optics.descriptions import DEFAULT_DESCRIPTION, VOCABULARY, tokenize


def tokens(*descriptions: str) -> torch.Tensor:
    return torch.stack([torch.from_numpy(tokenize(d)) for d in descriptions])


def tiny(scale: int = 2, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("attngan", scale=scale, features=8, num_blocks=1, embedding_dim=8, text_features=8,
                  **options).eval()


def test_attention_sums_to_one_over_the_words_and_ignores_padding() -> None:
    net = tiny(scale=4)  # two stages, two attention maps
    ids = tokens("microtubules confocal sted 40nm", "actin er mitochondria widefield sim 80nm")
    with torch.no_grad():
        sr, maps = net.forward_with_attention(torch.rand(2, 1, 10, 7), ids)
    assert sr.shape == (2, 1, 40, 28)
    assert [m.shape for m in maps] == [(2, 70, 8), (2, 280, 8)]
    for beta in maps:
        torch.testing.assert_close(beta.sum(dim=2), torch.ones(beta.shape[:2]))
        assert (beta >= 0).all()
        assert beta[0, :, 4:].max() < 1e-6 and beta[1, :, 6:].max() < 1e-6  # padding gets no weight
        assert beta[0, :, :4].min() > 0


def test_output_changes_with_the_description_and_forward_without_tokens_uses_the_default() -> None:
    net = tiny()
    lr = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        a = net(lr, tokens("microtubules confocal sted 40nm", "microtubules confocal sted 40nm"))
        b = net(lr, tokens("nuclear_pores widefield sim 160nm", "nuclear_pores widefield sim 160nm"))
        default = net(lr)
        explicit = net(lr, tokens(DEFAULT_DESCRIPTION, DEFAULT_DESCRIPTION))
        one = net(lr, torch.from_numpy(tokenize("microtubules confocal sted 40nm")))  # (T,) for all images
    assert (a - b).abs().max() > 1e-4 * a.abs().max()
    torch.testing.assert_close(default, explicit)
    torch.testing.assert_close(one, a)
    assert default.shape == (2, 1, 24, 24)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_shapes_at_every_scale_without_tokens(scale: int) -> None:
    with torch.no_grad():
        assert tiny(scale)(torch.rand(1, 1, 6, 5)).shape == (1, 1, 6 * scale, 5 * scale)


def test_text_encoder_reads_words_only_not_padding() -> None:
    """Word and sentence features of a padded description equal those of the unpadded one: the backward
    GRU starts at the last word, not at the padding."""
    torch.manual_seed(0)
    encoder = TextEncoder(len(VOCABULARY), 6, 8).eval()
    padded = tokens("actin er confocal sted 40nm")
    with torch.no_grad():
        words, sentence, mask = encoder(padded)
        words_short, sentence_short, _ = encoder(padded[:, :5])
    assert mask.sum() == 5
    torch.testing.assert_close(words[:, :, :5], words_short)
    torch.testing.assert_close(sentence, sentence_short)
    assert words[:, :, 5:].abs().max() == 0


def test_bad_descriptions_are_one_line_errors() -> None:
    with pytest.raises(SrlabError, match=r"default_description: .*unknown word 'bananas'") as err:
        create("attngan", default_description="bananas confocal")
    assert "\n" not in str(err.value)
    with pytest.raises(SrlabError, match="text_features must be even"):
        create("attngan", text_features=7)
