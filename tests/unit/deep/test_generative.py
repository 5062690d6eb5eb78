import math

import numpy as np
import pytest
import torch

from aml.deep import generative as g


def test_caption_for_and_digit_images():
    assert g.caption_for(7) == "a handwritten seven"
    data = g.load_digit_images(seed=0)
    x, y = data["train"]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert len(x) + len(data["test"][0]) == 1797
    assert set(np.unique(y)) == set(range(10))


def test_reconstruction_loss_known_values():
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert g.reconstruction_loss(target, torch.tensor([[[[0.5, 0.5]]]])).item() == pytest.approx(2 * math.log(2))
    assert g.reconstruction_loss(target, target).item() == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        g.reconstruction_loss(target, torch.zeros(1, 1, 2, 1))


def test_latent_loss_known_values():
    zero = torch.zeros(3, 2, 4, 4)
    assert g.latent_loss(g.LatentEncoding(zero, zero)).item() == pytest.approx(0.0)
    # one dimension with mean 1, variance e: 0.5 * (1 + e - 1 - 1) = 0.5 * (e - 1)
    mean, logvar = torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2)
    mean[..., 0], logvar[..., 0] = 1.0, 1.0
    assert g.latent_loss(g.LatentEncoding(mean, logvar)).item() == pytest.approx(0.5 * (math.e - 1))
    with pytest.raises(ValueError, match="Gaussian"):
        g.latent_loss(g.LatentEncoding(zero, zero), prior="uniform")


def test_vae_shapes_and_pipeline_steps():
    vae = g.VAE(latent_channels=2)
    x = torch.rand(5, 1, 8, 8)
    enc = vae.encode(x)
    assert enc.mean.shape == enc.logvar.shape == (5, 2, 4, 4)
    out, enc2 = vae(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert vae.decode(vae.sampling(enc)).shape == x.shape


def test_train_vae_is_seeded_and_learns():
    x = g.load_digit_images()["train"][0][:128]
    vae1, h1 = g.train_vae(x, epochs=3, seed=1)
    vae2, h2 = g.train_vae(x, epochs=3, seed=1)
    assert h1.losses == h2.losses
    assert h1.losses["reconstruction"][-1] < h1.losses["reconstruction"][0]
    torch.testing.assert_close(g.encode_means(vae1, x), g.encode_means(vae2, x))


def test_noise_schedule():
    s = g.NoiseSchedule(steps=50)
    assert s.alpha_bars.shape == (50,)
    assert torch.all(s.alpha_bars[1:] < s.alpha_bars[:-1])
    x0, noise = torch.ones(2, 2, 4, 4), torch.zeros(2, 2, 4, 4)
    xt = s.add_noise(x0, torch.tensor([0, 49]), noise)
    torch.testing.assert_close(xt[1], torch.full((2, 4, 4), s.alpha_bars[49].sqrt().item()))
    assert s.signal_to_noise()[0] > s.signal_to_noise()[-1]
    with pytest.raises(ValueError):
        g.NoiseSchedule(steps=1)


def test_caption_encoder():
    enc = g.CaptionEncoder([g.caption_for(d) for d in range(10)] + [""], dim=8)
    out = enc(["a handwritten seven", "", "a handwritten one"])
    assert out.shape == (3, 8)
    torch.testing.assert_close(out[1], enc.null)
    with pytest.raises(KeyError, match="eleven"):
        enc(["a handwritten eleven"])


def test_unet_shapes_and_attention():
    unet = g.TinyUNet([g.caption_for(d) for d in range(10)] + [""], width=16, emb_dim=16)
    x = torch.randn(4, 2, 4, 4)
    out = unet(x, torch.tensor([0, 5, 10, 99]), ["a handwritten one", "", "a handwritten two", ""])
    assert out.shape == x.shape
    assert unet.attention.weights.shape == (4, 4, 4)  # batch, 2×2 query positions, 2×2 key positions
    torch.testing.assert_close(unet.attention.weights.sum(-1), torch.ones(4, 4))
    with pytest.raises(ValueError, match="captions"):
        unet(x, torch.zeros(4, dtype=torch.long), ["a handwritten one"])


def test_guidance_mixes_conditional_and_unconditional():
    unet = g.TinyUNet([g.caption_for(d) for d in range(10)] + [""], width=16, emb_dim=16).eval()
    x, t, caps = torch.randn(2, 2, 4, 4), torch.tensor([3, 7]), ["a handwritten one", "a handwritten two"]
    with torch.no_grad():
        cond, uncond = unet(x, t, caps), unet(x, t, ["", ""])
        torch.testing.assert_close(g.guided_noise(unet, x, t, caps, 0.0), uncond, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(g.guided_noise(unet, x, t, caps, 1.0), cond)
        torch.testing.assert_close(
            g.guided_noise(unet, x, t, caps, 3.0), uncond + 3 * (cond - uncond), atol=1e-5, rtol=1e-5
        )


def test_train_diffusion_and_sampling_are_seeded():
    latents = torch.randn(64, 2, 4, 4)
    labels = np.arange(64) % 10
    sched = g.NoiseSchedule(steps=20)
    m1, h1 = g.train_diffusion(latents, labels, sched, steps=5, batch_size=16, width=16, seed=3)
    m2, h2 = g.train_diffusion(latents, labels, sched, steps=5, batch_size=16, width=16, seed=3)
    assert h1.losses == h2.losses
    caps = [g.caption_for(1), g.caption_for(2)]
    a, traj = g.sample_latents(m1, sched, caps, guidance=2.0, seed=4, keep_every=5)
    b, _ = g.sample_latents(m2, sched, caps, guidance=2.0, seed=4)
    assert a.shape == (2, 2, 4, 4) and len(traj) == 4
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="p_uncond"):
        g.train_diffusion(latents, labels, sched, steps=1, p_uncond=1.5)


def test_classifier_and_caption_accuracy():
    data = g.load_digit_images()
    clf = g.train_digit_classifier(*data["train"])
    x, y = data["test"]
    assert g.caption_accuracy(clf, x, y) > 0.95
    assert g.caption_accuracy(clf, x, (y + 1) % 10) < 0.05


def test_plot_images():
    import matplotlib

    matplotlib.use("Agg")
    ax = g.plot_images(np.random.rand(12, 1, 8, 8), ncols=5, row_labels=["a", "b", "c"], title="t")
    assert ax.images[0].get_array().shape == (3 * 9 - 1, 5 * 9 - 1)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
