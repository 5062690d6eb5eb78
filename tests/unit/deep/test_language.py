import math

import numpy as np
import pandas as pd
import pytest
import torch

from aml.deep import language as L

TEXTS = ["hello there", "free prize call now", "see you at home later", "ok lol", "call me when you are free"] * 8


@pytest.fixture(scope="module")
def vocab():
    return L.CharVocabulary(TEXTS, min_count=1)


def test_vocabulary_round_trip(vocab):
    assert vocab.itos[: len(L.SPECIALS)] == list(L.SPECIALS)
    ids = vocab.encode("hello", bos=True, eos=True)
    assert ids[0] == vocab.bos and ids[-1] == vocab.eos
    assert vocab.decode(ids[1:]) == "hello"
    assert vocab.decode(vocab.encode("hé")) == "h?"  # unseen character -> <unk>
    assert vocab.decode([vocab.mask]) == "_"
    stream = vocab.stream(["ab", "c"])
    assert list(stream) == vocab.encode("ab", True, True) + vocab.encode("c", True, True)


def test_bigram_known_values():
    bigram = L.BigramLM(vocab_size=3, k=1.0).fit(np.array([0, 1, 0, 1, 2]))
    # counts from 0: {1: 2}; smoothed row 0: (1, 3, 1) / 5
    assert math.exp(bigram.log_probs()[0, 1]) == pytest.approx(3 / 5)
    assert bigram.nll(np.array([0]), np.array([2])) == pytest.approx(-math.log(1 / 5))
    assert np.allclose(np.exp(bigram.log_probs()).sum(1), 1.0)
    assert L.perplexity(math.log(7)) == pytest.approx(7)
    with pytest.raises(ValueError):
        L.BigramLM(3, k=0)


def test_choose_bigram_k_picks_lowest_validation_nll(vocab):
    stream = vocab.stream(TEXTS)
    k, model, table = L.choose_bigram_k(stream, stream, len(vocab), ks=(0.01, 10.0))
    assert k == min(table, key=table.get) == 0.01
    assert model.k == 0.01


def test_causal_mask_hides_the_future(vocab):
    torch.manual_seed(0)
    model = L.TransformerLM(len(vocab), dim=32, layers=2, heads=4, context=16).eval()
    a = torch.randint(len(L.SPECIALS), len(vocab), (1, 12))
    b = a.clone()
    b[0, 8:] = torch.randint(len(L.SPECIALS), len(vocab), (4,))
    with torch.no_grad():
        la, lb = model(a), model(b)
    torch.testing.assert_close(la[0, :8], lb[0, :8])  # positions before the change see nothing of it
    assert not torch.allclose(la[0, 8:], lb[0, 8:])
    for weights in model.attention_maps():
        assert weights.shape == (1, 4, 12, 12)
        assert torch.all(weights[0].triu(1) == 0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(1, 4, 12))


def test_encoder_sees_both_directions(vocab):
    torch.manual_seed(0)
    model = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=16, causal=False).eval()
    a = torch.randint(len(L.SPECIALS), len(vocab), (1, 10))
    b = a.clone()
    b[0, 9] = (a[0, 9] + 1 - len(L.SPECIALS)) % (len(vocab) - len(L.SPECIALS)) + len(L.SPECIALS)
    with torch.no_grad():
        assert not torch.allclose(model(a)[0, 0], model(b)[0, 0])
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_lm_windows_shift_by_one():
    ds = L.lm_windows(np.arange(10), context=4, stride=2)
    x, y = ds.tensors
    assert x.shape == (3, 4)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError):
        L.lm_windows(np.arange(3), context=4)


def test_train_lm_is_seeded_and_beats_uniform(vocab):
    stream = vocab.stream(TEXTS)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=16)
        fit = L.train_lm(model, stream, stream, epochs=8, lr=1e-2, seed=1, progress=False)
        results.append((fit.history["train_loss"].tolist(), L.lm_nll(model, stream)))
    assert results[0] == results[1]
    assert L.perplexity(results[0][1]) < len(vocab) / 2
    x, y = L.held_out_pairs(stream, 16)
    assert x.shape == y.shape and x.shape[1] == 16


def test_generate_is_seeded_and_respects_temperature(vocab):
    torch.manual_seed(0)
    model = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=16)
    a = L.generate(model, vocab, ["", "he"], temperature=0.7, max_new=20, seed=3)
    assert a == L.generate(model, vocab, ["", "he"], temperature=0.7, max_new=20, seed=3)
    assert a[1].startswith("he") and all(len(t) <= 22 for t in a)
    assert all(ch not in "_?" for t in a for ch in t)  # no <mask>, <unk>
    with pytest.raises(ValueError):
        L.generate(model, vocab, [""], temperature=0)


def test_masked_examples(vocab):
    ds = L.masked_examples(vocab, TEXTS, context=24, rate=0.3, seed=0)
    x, y = ds.tensors
    assert x.shape == y.shape == (len(TEXTS), 24)
    assert torch.all(x[:, 0] == vocab.cls)
    chosen = y != L.IGNORE
    assert 0.15 < chosen.float().sum() / (x >= len(L.SPECIALS)).sum() < 0.45
    assert (x[chosen] == vocab.mask).float().mean() > 0.6
    assert torch.equal(L.masked_examples(vocab, TEXTS, 24, 0.3, seed=0).tensors[0], x)


def test_bigram_fill_baseline_on_known_text(vocab):
    bigram = L.BigramLM(len(vocab), 0.01).fit(vocab.stream(TEXTS))
    inputs = torch.tensor([[vocab.cls, *vocab.encode("free prize")]])
    targets = torch.full_like(inputs, L.IGNORE)
    targets[0, 9] = inputs[0, 9]  # the "z" of "prize": only "i" comes before a "z" in the texts
    inputs[0, 9] = vocab.mask
    acc = L.bigram_fill_accuracy(bigram, vocab, torch.utils.data.TensorDataset(inputs, targets))
    assert acc["bigram_both_neighbours"] == 1.0
    assert set(acc) == {"most_frequent_character", "bigram_both_neighbours"}


def test_fill_blanks_shape(vocab):
    model = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=32, causal=False)
    out = L.fill_blanks(model, vocab, "call me when", "me")
    assert len(out) == len("call me when") and out.startswith("call ") and out.endswith(" when")
    with pytest.raises(ValueError):
        L.fill_blanks(model, vocab, "call", "xyz")


def test_sentence_pairs_and_encoding(vocab):
    assert L.split_halves("see you at home later") == ("see you at", "home later")
    assert L.split_halves("short") is None
    texts = [f"m{i} see you at home later {i}" for i in range(30)]
    pairs = L.sentence_pairs(texts)
    assert set(pairs["is_next"]) == {0, 1}
    positives, negatives = pairs[pairs["is_next"] == 1], pairs[pairs["is_next"] == 0]
    assert all(f + " " + s in texts for f, s in zip(positives["first"], positives["second"], strict=True))
    assert all(f + " " + s not in texts for f, s in zip(negatives["first"], negatives["second"], strict=True))
    ids, segs, y = L.encode_pairs(vocab, pairs, context=32).tensors
    assert ids.shape == segs.shape == (len(pairs), 32)
    assert torch.all(ids[:, 0] == vocab.cls) and torch.all((ids == vocab.sep).sum(1) == 2)
    assert torch.all(segs[:, 0] == 0) and torch.all(segs[:, -1] == 1)
    model = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=32, causal=False)
    logits, targets = L.forward_nsp(model, (ids[:4], segs[:4], y[:4]), "cpu")
    assert logits.shape == (4, 2) and torch.equal(targets, y[:4])
    assert 0.0 <= L.nsp_accuracy(model, L.encode_pairs(vocab, pairs, 32)) <= 1.0


def test_overlap_baseline_detects_shared_words():
    pairs = pd.DataFrame(
        {
            "first": ["apple pie recipe", "car engine oil", "apple tart", "engine noise"] * 5,
            "second": ["apple crumble", "zzz qqq", "apple cake", "xxx yyy"] * 5,
            "is_next": [1, 0, 1, 0] * 5,
        }
    )
    assert L.overlap_baseline(pairs, pairs) == 1.0


def test_best_of_n_and_reward_finetune(vocab):
    texts, rewards = L.best_of_n(["a", "b", "c", "d"], np.array([0.1, 0.9, 0.5, 0.2]), n=2)
    assert texts == ["b", "c"] and np.allclose(rewards, [0.9, 0.5])
    with pytest.raises(ValueError):
        L.best_of_n(["a", "b", "c"], np.zeros(3), n=2)
    torch.manual_seed(0)
    model = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=16)
    L.train_lm(model, vocab.stream(TEXTS), vocab.stream(TEXTS), epochs=2, lr=1e-2, progress=False)

    def reward(texts):  # prefer texts with an "o"
        return np.array([float("o" in t) for t in texts])

    history = L.reward_finetune(model, vocab, reward, rounds=2, samples=16, keep=0.5, max_new=12, seed=0)
    assert list(history.columns) == ["round", "mean_reward_sampled", "mean_reward_kept"]
    assert (history["mean_reward_kept"] >= history["mean_reward_sampled"]).all()


def test_spam_reward_prefers_ham():
    train = pd.DataFrame(
        {
            "text": ["WIN a FREE prize now call 0800", "see you at home", "URGENT claim cash prize", "ok lol"] * 10,
            "y": [1, 0, 1, 0] * 10,
        }  # fmt: skip
    )
    reward = L.spam_reward(train)
    r = reward(["FREE prize call now", "see you later at home"])
    assert r.shape == (2,) and r[1] > 0.5 > r[0]


def test_attention_distance_known_values():
    previous = torch.zeros(1, 4, 4)
    previous[0, 0, 0] = 1.0
    for q in range(1, 4):
        previous[0, q, q - 1] = 1.0  # every query reads the token before it (the first reads itself)
    assert L.attention_distance(previous) == pytest.approx([0.75])
    itself = torch.eye(4)[None]
    assert L.attention_distance(itself) == pytest.approx([0.0])


def test_bidirectional_copy_keeps_weights_and_drops_the_mask(vocab):
    torch.manual_seed(0)
    gpt = L.TransformerLM(len(vocab), dim=32, layers=1, heads=2, context=16).eval()
    bert = L.bidirectional_copy(gpt).eval()
    assert gpt.causal and not bert.causal and not any(b.attention.causal for b in bert.blocks)
    assert all(b.attention.causal for b in gpt.blocks)
    ids = torch.randint(len(L.SPECIALS), len(vocab), (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(
            gpt(ids)[0, -1], bert(ids)[0, -1]
        )  # one layer: the last position sees the same in both
        assert not torch.allclose(gpt(ids)[0, 0], bert(ids)[0, 0])
