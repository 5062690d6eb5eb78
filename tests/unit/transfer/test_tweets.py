import logging

import numpy as np
import pandas as pd
import pytest

from aml.transfer import tweets

POSITIVE = [
    "I love this so much",
    "what a great day :)",
    "best gift ever, thank you",
    "happy happy happy",
    "awesome show tonight",
    "so glad you came",
    "yay we won",
    "this is wonderful",
]
NEGATIVE = [
    "I hate mondays",
    "worst day ever",
    "so sad right now",
    "this is awful :(",
    "I feel terrible",
    "my phone broke again",
    "ugh I am sick",
    "missing you, it hurts",
]
NEUTRAL = [
    "going to the shop",
    "the bus is at 5",
    "reading a book",
    "it is tuesday",
    "meeting at noon",
    "just got home",
    "watching tv",
    "new post on the blog",
]


def frame():
    texts = NEGATIVE + NEUTRAL + POSITIVE
    labels = ["negative"] * 8 + ["neutral"] * 8 + ["positive"] * 8
    return pd.DataFrame({"textID": [f"id{i:03d}" for i in range(24)], "text": texts, "sentiment": labels})


@pytest.fixture()
def competition_file(tmp_path):
    """The original Kaggle competition format (train.csv): UTF-8, one row without text."""
    df = frame()
    df.insert(2, "selected_text", df["text"])
    df.loc[len(df)] = ["id999", "", "", "neutral"]
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False, encoding="utf-8")
    return path


@pytest.fixture()
def course_file(tmp_path):
    """The course's re-publication format: extra columns, blank rows, cp1252 bytes, labels with odd case/spaces."""
    df = frame()
    df.loc[0, "text"] = "caf\u00e9 was \u2018fine\u2019"  # é and curly quotes: cp1252 bytes that are not UTF-8
    df["sentiment"] = df["sentiment"].str.upper().str.pad(10, side="right")
    df["Time of Tweet"] = "morning"
    df["Age of User"] = "21-30"
    df["Country"] = "Afghanistan"
    df["Population -2020"] = 38928346
    df["Land Area (Km\u00b2)"] = 652860.0
    df["Density (P/Km\u00b2)"] = 60
    lines = df.to_csv(index=False).splitlines()
    blank = "," * (len(df.columns) - 1)
    text = "\r\n".join(lines[:5] + [blank, blank] + lines[5:] + [blank] * 3) + "\r\n"
    path = tmp_path / "test.csv"
    path.write_bytes(text.encode("cp1252"))
    return path


def test_read_competition_format(competition_file, caplog):
    with caplog.at_level(logging.WARNING, logger="aml.transfer.tweets"):
        df, report = tweets.read_tweet_csv(competition_file)
    assert list(df.columns) == ["textID", "text", "sentiment", "label"]
    assert len(df) == 24 and report.no_text_rows_dropped == 1 and report.blank_rows_dropped == 0
    assert report.encoding == "utf-8" and report.extra_columns == []
    assert report.distribution == {"negative": 8, "neutral": 8, "positive": 8} and report.rows == 24
    assert df["label"].tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert "1 rows without text" in caplog.text


def test_read_course_republication_format(course_file, caplog):
    with caplog.at_level(logging.WARNING, logger="aml.transfer.tweets"):
        df, report = tweets.read_tweet_csv(course_file)
    assert report.encoding == "cp1252" and report.rows_read == 29 and report.blank_rows_dropped == 5
    assert len(df) == 24 and set(df["sentiment"]) == set(tweets.LABELS)
    assert df.loc[0, "text"] == "caf\u00e9 was \u2018fine\u2019"
    assert "Country" in report.extra_columns and "Time of Tweet" in report.extra_columns
    assert "dropped 5 blank rows" in caplog.text and "5 blank rows" in str(report)
    assert tweets.report(df["label"], df["label"]).shape[0] == 6  # 3 classes + accuracy/macro/weighted


def test_read_rejects_unknown_labels_missing_columns_and_files(tmp_path):
    bad = frame()
    bad.loc[3, "sentiment"] = "sarcastic"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(tweets.TweetDataError, match="unknown sentiment label.*sarcastic"):
        tweets.read_tweet_csv(tmp_path / "bad.csv")
    # a row with text but no label is an unknown label too, not a blank row
    missing_label = frame()
    missing_label.loc[3, "sentiment"] = ""
    missing_label.to_csv(tmp_path / "nolabel.csv", index=False)
    with pytest.raises(tweets.TweetDataError, match="unknown sentiment"):
        tweets.read_tweet_csv(tmp_path / "nolabel.csv")
    frame().drop(columns="sentiment").to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(tweets.TweetDataError, match=r"missing column\(s\) \['sentiment'\]"):
        tweets.read_tweet_csv(tmp_path / "cols.csv")
    (tmp_path / "empty.csv").write_text("textID,text,sentiment\n,,\n")
    with pytest.raises(tweets.TweetDataError, match="no labelled tweets"):
        tweets.read_tweet_csv(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError):
        tweets.read_tweet_csv(tmp_path / "absent.csv")
    (tmp_path / "latin.csv").write_bytes("text,sentiment\n\x81 odd byte,neutral\n".encode("latin-1"))
    with pytest.raises(tweets.TweetDataError, match="could not decode"):
        tweets.read_tweet_csv(tmp_path / "latin.csv", encodings=("utf-8",))
    df, report = tweets.read_tweet_csv(tmp_path / "latin.csv")
    assert report.encoding == "latin-1" and df["textID"].tolist() == ["0"]  # no textID column: numbered


def test_load_tweets_from_a_folder(competition_file, course_file):
    frames, reports = tweets.load_tweets(competition_file.parent)
    assert set(frames) == {"train", "test"} and reports["test"].encoding == "cp1252"


def test_load_tweets_real_copy_when_available():
    from aml.core import config

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set")
    frames, reports = tweets.load_tweets()  # fetch("tweet_sentiment") via AML_DATA_DIR: the competition files
    assert len(frames["test"]) == 3534 and reports["train"].no_text_rows_dropped == 1
    assert reports["test"].distribution == {"negative": 1001, "neutral": 1430, "positive": 1103}


def test_split_subset_distribution():
    df = pd.concat([frame()] * 5, ignore_index=True)
    df["label"] = df["sentiment"].map(tweets.LABEL_IDS)
    train, val = tweets.split_validation(df, 0.2, seed=0)
    assert len(val) == 24 and (val["label"].value_counts() == 8).all() and len(train) == 96
    with pytest.raises(ValueError, match="fraction"):
        tweets.split_validation(df, 1.0)
    sub = tweets.stratified_subset(df, 30, seed=0)
    assert len(sub) == 30 and (sub["label"].value_counts() == 10).all()
    assert tweets.stratified_subset(df, None) is df and tweets.stratified_subset(df, 1000) is df
    with pytest.raises(ValueError, match="at least 3"):
        tweets.stratified_subset(df, 2)
    table = tweets.distribution({"train": train, "validation": val})
    assert table.loc["validation"].tolist() == [8, 8, 8, 24]


def test_macro_f1_counts_missing_classes_as_zero():
    assert tweets.macro_f1([0, 1, 2], [0, 1, 2]) == 1.0
    assert tweets.macro_f1([0, 1, 2], [0, 1, 1]) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_fit_baseline_picks_c_on_validation():
    df = frame()
    df["label"] = df["sentiment"].map(tweets.LABEL_IDS)
    base = tweets.fit_baseline(df, df, Cs=(0.01, 10.0))
    assert list(base.table.index) == [0.01, 10.0] and base.C == float(base.table["val_macro_f1"].idxmax())
    assert base.model.predict(["I love it, great", "worst, I hate it"]).tolist() == [2, 0]
    assert base.fit_seconds > 0
    with pytest.raises(ValueError, match="Cs"):
        tweets.fit_baseline(df, df, Cs=())


def test_length_grouped_batches():
    lengths = np.random.default_rng(0).integers(3, 60, 500)
    batches = tweets.length_grouped_batches(lengths, 16, shuffle=True, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500)) and all(len(b) <= 16 for b in batches)
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10  # a random batch of 16 spans ~50 tokens
    assert batches == tweets.length_grouped_batches(lengths, 16, shuffle=True, seed=1)
    assert batches != tweets.length_grouped_batches(lengths, 16, shuffle=True, seed=2)
    ordered = tweets.length_grouped_batches(lengths, 16, shuffle=False)
    assert np.all(np.diff(lengths[[i for b in ordered for i in b]]) >= 0)
    with pytest.raises(ValueError, match="batch_size"):
        tweets.length_grouped_batches(lengths, 0, shuffle=False)


@pytest.fixture(scope="module")
def minilm():
    return tweets.load_transformer()


def test_load_transformer_offline_minilm(minilm):
    tokenizer, model = minilm
    assert model.config.num_labels == 3 and model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id


def test_load_transformer_with_other_labels():
    _, model = tweets.load_transformer(labels=("ham", "spam"))
    assert model.config.num_labels == 2 and model.config.id2label == {0: "ham", 1: "spam"}
    assert model.config.label2id == {"ham": 0, "spam": 1}
    _, model = tweets.load_transformer(num_labels=2)
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    with pytest.raises(ValueError, match="num_labels=2 but 3 labels"):
        tweets.load_transformer(num_labels=2, labels=tweets.LABELS)
    with pytest.raises(ValueError, match="at least two labels"):
        tweets.load_transformer(labels=("only",))


def test_make_text_loader_pads_dynamically(minilm):
    tokenizer, _ = minilm
    texts = ["short", "a somewhat longer tweet with more words in it", "mid length tweet"]
    loader = tweets.make_text_loader(tokenizer, texts, [0, 1, 2], batch_size=2, max_length=8)
    batches = list(loader)
    assert [b["index"].tolist() for b in batches] == [[0, 2], [1]]  # length order without shuffling
    first = batches[0]
    assert set(first) == {"input_ids", "attention_mask", "labels", "index"}
    assert first["input_ids"].shape[1] == int(first["attention_mask"].sum(1).max())  # padded to the longest
    assert batches[1]["input_ids"].shape == (1, 8)  # truncated to max_length
    with pytest.raises(ValueError, match="labels"):
        tweets.make_text_loader(tokenizer, texts, [0], batch_size=2)


def test_fine_tune_few_steps_and_predict_in_order():
    df = frame()
    df["label"] = df["sentiment"].map(tweets.LABEL_IDS)
    tuned = tweets.fine_tune(
        df, df, epochs=1, batch_size=4, max_length=16, max_steps_per_epoch=2, evals_per_epoch=2, progress=False
    )
    assert tuned.result.steps == 2 and len(tuned.result.history) == 2
    assert tuned.settings["train_tweets"] == 24 and tuned.settings["max_length"] == 16
    probs = tweets.predict_texts(tuned.model, tuned.tokenizer, df["text"], batch_size=5, max_length=16)
    assert probs.shape == (24, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    single = tweets.predict_texts(tuned.model, tuned.tokenizer, [df["text"][7]], max_length=16)
    assert np.allclose(single[0], probs[7], atol=1e-4)
    assert tweets.predict_texts(tuned.model, tuned.tokenizer, []).shape == (0, 3)
    # the same seed gives the same training
    again = tweets.fine_tune(df, df, epochs=1, batch_size=4, max_length=16, max_steps_per_epoch=2, progress=False)
    assert again.result.history["train_loss"].iloc[-1] == pytest.approx(
        tuned.result.history["train_loss"].iloc[-1], rel=1e-4
    )


def test_report_has_exactly_three_classes_and_misclassified():
    y = np.array([0, 1, 2, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.05, 0.05, 0.9]])
    rep = tweets.report(y, probs.argmax(1))
    assert list(rep.index[:3]) == list(tweets.LABELS)
    df = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": y})
    wrong = tweets.misclassified(df, probs, n=5)
    assert wrong["text"].tolist() == ["d", "c"] and wrong.loc[0, "predicted"] == "positive"
    assert wrong.loc[0, "true"] == "neutral" and wrong.loc[0, "confidence"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="probs"):
        tweets.misclassified(df, probs[:2])
