"""Drift-monitoring study (an experiment, not a test): ``python project/drift_study.py [--batches 20] [--size 300]``.

How often does the service's batch monitoring (:func:`aml.project.monitoring.batch_report`, the same function
``POST /score`` stores per batch) raise a false alarm on batches from the same distribution as the
training data, and does it catch batches that are not? On the SMS collection split 70/15/15
(:func:`aml.spam.stages.prepare_train_validation_test_split`, seed 42), with the train split as the reference:

1. calibration: ``--batches`` random batches of ``--size`` messages from the **validation** split; each check's
   null distribution (its largest and 95th-percentile value) is printed beside its threshold, so the thresholds are
   checked on data the final figures do not use;
2. false alarms: ``--batches`` random batches from the **test** split (target ≤ 5 % of batches with ``drift``);
3. detection: ``--batches`` batches of tweets (``tweet_sentiment/train.csv``, column ``text``) and of a synthetic
   phishing campaign unlike the collection's spam (parcel-delivery fees and crypto "giveaways" with random names,
   amounts, links; templates below) — target 100 %.

Each report checks the eight key predictors of :data:`aml.spam.profiling.FEATURES` (KS and PSI), the spam propensity of a word + char TF-IDF logistic
regression fitted on train (reference: its propensities on the validation split; in-sample ones on train are more
extreme, and cross-validated ones come from other fits: with either, the propensity KS flagged every test batch), the
out-of-vocabulary ratio and the domain-classifier AUC. Rates are printed per check as well as overall. The
calibration batches come from the propensity reference itself, so that one check's calibration row is optimistic;
the test batches give the honest false-alarm rate.
"""

from __future__ import annotations

import argparse
import string
import time

import numpy as np
import pandas as pd

from aml.core import datasets
from aml.mlops import drift
from aml.project import monitoring
from aml.spam import models, sms, stages

# --- a synthetic campaign unlike the collection's spam (which is mostly 2000s UK premium-rate prize/ringtone texts) --
NAMES = ["Sarah", "James", "Priya", "Tom", "Olivia", "Mohammed", "Emma", "Lucas", "Chloe", "Daniel", "Aisha", "Jack"]
CARRIERS = ["Royal Mail", "Evri", "DPD", "UPS", "FedEx", "Parcelforce", "DHL"]
COINS = ["BTC", "ETH", "USDT", "SOL", "DOGE"]
EXCHANGES = ["Coinbase", "Binance", "Kraken", "MetaMask", "Crypto.com"]
TEMPLATES = [
    "{carrier}: your parcel {ref} is on hold due to an unpaid {cur}{fee} shipping fee. Pay at {link} or it will be "
    "returned to sender.",
    "Hi {name}, {carrier} could not deliver your package today. Reschedule your delivery here: {link}",
    "{name}, your {carrier} delivery {ref} requires customs payment of {cur}{fee}. Settle within 48h: {link}",
    "Congratulations {name}! Your {exchange} wallet received {amount} {coin} from the staking programme. Withdraw "
    "before {date}: {link}",
    "ALERT {name}: unusual sign-in to your {exchange} account from {city}. If this was not you verify now {link}",
    "{exchange} giveaway: send {small} {coin} to {wallet} and receive double back instantly. Ends {date}!",
    "{name}, your {coin} withdrawal of {amount} is pending KYC verification. Complete it at {link} to avoid suspension",
]
CITIES = ["Lagos", "Moscow", "Sao Paulo", "Manila", "Kyiv", "Hanoi", "Lima"]


def _link(rng: np.random.Generator) -> str:
    word = rng.choice(["parcel", "track", "secure", "verify", "wallet", "claim", "delivery", "login"])
    code = "".join(rng.choice(list(string.ascii_lowercase + string.digits), 6))
    return f"https://{word}-{code}.{rng.choice(['info', 'top', 'xyz', 'co', 'app'])}/{code[:3]}"


def campaign(n: int, seed: int) -> list[str]:
    """``n`` phishing texts from :data:`TEMPLATES` with random names, amounts, references and links."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(
            rng.choice(TEMPLATES).format(
                carrier=rng.choice(CARRIERS),
                name=rng.choice(NAMES),
                ref="".join(rng.choice(list(string.ascii_uppercase), 2)) + str(rng.integers(10**8, 10**9)),
                cur=rng.choice(["£", "$", "€"]),
                fee=f"{rng.integers(1, 4)}.{rng.integers(0, 100):02d}",
                link=_link(rng),
                exchange=rng.choice(EXCHANGES),
                coin=rng.choice(COINS),
                amount=f"{rng.uniform(0.01, 3):.3f}",
                small=f"{rng.uniform(0.05, 0.5):.2f}",
                wallet="0x" + "".join(rng.choice(list("0123456789abcdef"), 12)),
                date=f"{rng.integers(1, 29)}/{rng.integers(1, 13):02d}",
                city=rng.choice(CITIES),
            )
        )
    return out


def run(name: str, reference: monitoring.Reference, model, batches: list[list[str]]) -> pd.DataFrame:
    """One row per batch: each check's value and flag (the service's :func:`aml.project.monitoring.batch_report`),
    and the verdict."""
    rows = []
    for i, texts in enumerate(batches):
        report = monitoring.batch_report(reference, texts, model.predict_proba(texts)[:, 1], seed=i)
        rows.append({"batch": i, "drift": report.drift} | {s.name: s.value for s in report.stats})
        rows[-1] |= {f"{s.name}?": s.drifted for s in report.stats}
    table = pd.DataFrame(rows)
    print(f"\n== {name}: {len(batches)} batches, drift flagged in {table['drift'].mean():.0%}")
    return table


def per_check(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Share of batches each check flagged, per scenario."""
    return pd.DataFrame(
        {name: t[[c for c in t.columns if c.endswith("?")]].mean() for name, t in tables.items()}
    ).rename(index=lambda c: c[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    raw, _ = sms.load_sms()
    train, validation, test = stages.prepare_train_validation_test_split(raw)
    print(f"splits: train {len(train)}, validation {len(validation)}, test {len(test)}")

    model = models.tfidf_logreg().fit(train["text"].tolist(), train["y"])
    # the service's reference: training texts; the propensity reference is the model on unseen data (validation)
    reference = monitoring.Reference.build(
        "study", "seed 42", 0.5, train["text"], validation["y"], model.predict_proba(validation["text"].tolist())[:, 1]
    )

    def sample(df: pd.DataFrame) -> list[list[str]]:
        return [df["text"].iloc[rng.choice(len(df), args.size, replace=False)].tolist() for _ in range(args.batches)]

    tweets = pd.read_csv(datasets.fetch("tweet_sentiment") / "train.csv", usecols=["text"])["text"].dropna().str.strip()
    tweets = tweets[tweets != ""].reset_index(drop=True).to_frame()
    scenarios = {
        "calibration (validation)": sample(validation),
        "false alarms (test)": sample(test),
        "tweets": sample(tweets),
        "phishing campaign": [campaign(args.size, seed=1000 + i) for i in range(args.batches)],
    }
    tables = {name: run(name, reference, model, batches) for name, batches in scenarios.items()}

    calibration = tables["calibration (validation)"]
    thresholds = drift.thresholds()  # the registered checks' (drift.CHECKS), by name: ks, psi, oov_ratio, domain_auc
    value_columns = [c for c in calibration.columns if ":" in c and not c.endswith("?")]
    null = pd.DataFrame(
        {
            "p95": calibration[value_columns].quantile(0.95),
            "max": calibration[value_columns].max(),
            "threshold": [thresholds[c.split(":")[1]] for c in value_columns],
        }
    )
    null["max / threshold"] = null["max"] / null["threshold"]
    print("\nnull distribution on validation batches (KS: statistic; a KS flag also needs p < 0.01 / 9):")
    print(null.round(3).to_string())
    detection = {name: t for name, t in tables.items() if name in ("tweets", "phishing campaign")}
    print("\nshare of batches flagged, per check:")
    print(per_check(tables).round(2).to_string())
    print("\ncheck values on the drifted scenarios (median):")
    print(pd.DataFrame({n: t[value_columns].median() for n, t in detection.items()}).round(3).to_string())

    false_alarm = tables["false alarms (test)"]["drift"].mean()
    print(f"\nfalse-alarm rate (test batches):   {false_alarm:.1%}   (target ≤ 5%)")
    for name, t in detection.items():
        print(f"detection rate ({name}): {t['drift'].mean():.1%}   (target 100%)")
    print(f"({args.batches} batches of {args.size} per scenario, {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
