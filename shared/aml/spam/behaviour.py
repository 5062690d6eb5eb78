"""Behavioural tests of a spam model (in the spirit of CheckList, Ribeiro et al., 2020): what the model does on
hand-written messages, apart from its score on held-out data.

- **minimum functionality** (:data:`BANK`, :func:`run_bank`, :func:`pass_rate`): hand-written messages with the
  expected label and a category — obvious ``spam``, everyday ``ham``, ``requested_notice`` (notices the recipient
  asked for by booking, buying or joining: a reminder from the surgery, a dispatched order, a prescription ready —
  the ham a filter must not block), ``promotion`` (polite marketing nobody asked for: a new menu, a sale — spam by
  the collection's definition, however polite) and ``placeholder`` texts that people type when they try the
  service ("Test text"). The labelling rule is the SMS Spam Collection's: spam is unsolicited commercial or
  fraudulent, ham is personal or requested. Every message was written for this bank, none is copied from the
  collection.
- **invariance** (:data:`INVARIANCE`, :func:`invariance`): changing a person's name or a time in a message must not
  change the prediction.
- **directional** (:data:`DIRECTIONAL`, :func:`directional`): adding a premium-rate number and "WIN" to a message
  must raise its spam propensity.

Every function takes a fitted model with ``predict_proba`` over raw texts and, where a prediction is needed, the
threshold chosen on validation (prediction = ``propensity >= threshold``, :func:`aml.core.metrics.apply_threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from aml.core.metrics import apply_threshold

SPAM, HAM, REQUESTED_NOTICE, PROMOTION, PLACEHOLDER = "spam", "ham", "requested_notice", "promotion", "placeholder"
CATEGORIES = (SPAM, HAM, REQUESTED_NOTICE, PROMOTION, PLACEHOLDER)
#: each category's expected label (1 = spam, 0 = ham)
EXPECTED = {SPAM: 1, HAM: 0, REQUESTED_NOTICE: 0, PROMOTION: 1, PLACEHOLDER: 0}
#: the pass rate the selected model must reach on :data:`BANK`
MIN_PASS_RATE = 0.95
#: the floor of the bank's overall pass rate below which a model regressed; the aim stays :data:`MIN_PASS_RATE`.
#: Measured 2026-12-02 (TF-IDF linear SVM, the served model type, at its validation threshold): the selected model
#: (split seed 42) passes 0.850 (68 of 80: it misses 4 of 12 promotions, flags 6 of 14 requested notices and 2
#: placeholders), split seeds 0-3 pass 0.838, 0.875, 0.800, 0.838. The floor passes every seed the previous floor
#: (0.85 on the bank before promotions counted as spam) passed; promotions, caught 33-75% over those seeds, are the
#: weakness issue 24 measures on :mod:`aml.spam.outofdomain`.
BANK_FLOOR = 0.80
#: the behavioural gate a model passes before it serves (:func:`gate_checks`): the minimum-functionality categories
#: that must hold — obvious spam caught, everyday ham never blocked — invariance to names and times, the
#: directional test, and the whole bank above :data:`BANK_FLOOR`
GATE = {"spam": MIN_PASS_RATE, "ham": 1.0, "invariance": 1.0, "directional": 1.0, "bank": BANK_FLOOR}


#: how many out-of-domain ham messages that the champion keeps at its threshold a new model may block before the gate
#: refuses it (:func:`out_of_domain_checks`). Not zero: refitting the same model type on the same split with another
#: seed moves a propensity near the threshold now and then (one or two of the ~60-100 kept ham); more is a model that
#: lost ground the champion held (issue 24: business-style ham is the most expensive error)
OOD_HAM_TOLERANCE = 2


class Case(NamedTuple):
    """One behavioural test: a message, the label it must get (1 = spam, 0 = ham) and its category."""

    text: str
    expected: int  # 1 = spam, 0 = ham
    category: str


def _cases(category: str, expected: int, texts: Sequence[str]) -> tuple[Case, ...]:
    return tuple(Case(t, expected, category) for t in texts)


#: the minimum-functionality bank: hand-written messages, expected label, category
BANK: tuple[Case, ...] = (
    *_cases(
        SPAM,
        1,
        (
            "Congratulations! You've won a £500 shopping voucher. Call 09066123456 now to claim your prize. 150p/min",
            "URGENT: your mobile number has been awarded a £2000 cash bonus. Ring 09058012345 before midnight",
            "FREE entry into our weekly draw to win a new iPhone! Text WIN to 87121 now. T&Cs apply 18+",
            "You have 1 new voicemail. To listen call 09012345678 now. Calls cost 150ppm",
            "Get the hottest ringtones FREE! Reply TONES to 80608. £3/week, send STOP to unsubscribe",
            "Last chance! Claim your guaranteed £250 reward today. Txt CLAIM to 62468. Msg rates apply",
            "Your number was picked in our national prize draw. £5000 is waiting for you, call 09050001234 quoting X45",
            "Hot singles in your area want to chat! Text DATE to 69888 now. £1.50/msg",
            "Upgrade alert: get any new smartphone FREE with your renewal. Call 08001234567 now, offer ends Friday",
            "You have been chosen for a luxury holiday to the Canaries! To claim reply YES to 85233. £1.50 per msg",
            "Double your mins and txts FREE for 6 months! Call 0800 123 4567 or reply UPGRADE to 83383",
            "Win £1000 cash or a weekend break! Answer one easy question: text your answer to 84128. 18+ 50p/msg",
            "You are a WINNER! Collect your £350 award now, call 09061234567 from a landline. PO Box 42 W1 1AB",
            "Unclaimed prize on your account! Visit www.claimyourprize-now.com and enter code 4455 to collect",
            "Free live chat with hot babes 24/7! Txt CHAT to 89555. Over 18s only, £2/min",
            "Cash loan approved! Get up to £5000 today, no credit checks. Reply YES to 60300 to receive your cash",
            "Congrats! 2 tickets to see a top band live are yours. Call 09064012345 to claim before 18:00. 150p/min",
            "Your subscription to daily jokes is now active at £4.50 per week. To opt out send STOP to 88066",
            "Final notice: you have won a bonus prize of £800. Claim it now, call 09063001122. Valid 24hrs only",
            "Txt MUSIC to 82277 to get 10 FREE chart hits on your mobile every week! £1.50/wk, stop txt STOP",
        ),
    ),
    *_cases(
        HAM,
        0,
        (
            "Hey, are we still on for dinner tonight?",
            "I'll be home late, don't wait up",
            "Can you pick up some bread on your way back?",
            "Happy birthday! Hope you have a lovely day x",
            "Running 10 mins late, sorry! Save me a seat",
            "Did you see the match last night? Unbelievable ending",
            "Mum says thanks for the flowers, she loved them",
            "What time does your train get in tomorrow?",
            "Ok see you at the cinema at 7",
            "Just landed, will call you when I get to the hotel",
            "Can't talk now, in a meeting. Text you after",
            "Don't forget we have the dentist at 3 on Thursday",
            "Thanks for helping me move yesterday, I owe you one",
            "Where did you leave the car keys?",
            "Good luck with your exam today, you'll smash it",
            "I'm at the shop, do we need milk or eggs?",
            "Sorry I missed your call, what's up?",
            "Lol that's hilarious. Send me the video",
            "The kids are asleep finally. Movie night?",
            "Can you send me John's number please",
            "Feeling much better today, thanks for asking",
            "Let's meet at the coffee place near the station at noon",
        ),
    ),
    *_cases(
        REQUESTED_NOTICE,
        0,
        (
            "Thank you for shopping with us. Your order has been dispatched and should arrive on Tuesday.",
            "Reminder: your dental appointment is tomorrow at 10:30. Reply to this message if you need to reschedule.",
            "Hi, this is the library. The book you reserved is now ready for collection.",
            "Your table for four at Luigi's is booked for Saturday at 8pm. We look forward to seeing you.",
            "The gym will be closed on Monday for the bank holiday. Normal opening hours resume on Tuesday.",
            "Your prescription is ready to collect from the pharmacy on High Street.",
            "Hello from the school office: parents' evening is on Wednesday from 4pm in the main hall.",
            "We have received your payment, thank you. Your account is now up to date.",
            "Your parcel could not be delivered today. We will try again tomorrow between 9am and 1pm.",
            "Thank you for your feedback on our service, we really appreciate it.",
            "Hi Sarah, your hair appointment with Emma is confirmed for Friday at 2pm.",
            "The plumber will arrive between 8 and 10 tomorrow morning. Please make sure someone is home.",
            "Welcome to the book club! Our next meeting is on the first Thursday of the month.",
            "Your car is due for its annual service. Please call the garage to book a time that suits you.",
        ),
    ),
    *_cases(
        PROMOTION,
        1,
        (
            "Our new autumn menu starts next week. Come and try it with your friends!",
            "Summer sale now on: 30% off all garden furniture until Sunday. Visit us in store or online.",
            "Treat yourself this weekend! Two main courses for the price of one at Bella Pasta, Friday to Sunday.",
            "New season, new look: our autumn collection has arrived. Pop in and see what's new.",
            "Looking for a new car? Test drive the latest models at Parkside Motors this weekend and get a free gift.",
            "Great news! Our bakery now delivers. Order fresh bread and cakes to your door from just £2.",
            "Half price haircuts for new customers all this month at Studio Style. Book now!",
            "Spring offer: have your windows cleaned for only £10. Reply YES and we'll call you to arrange a visit.",
            "Join our gym this month and pay no joining fee. Classes, pool and sauna included.",
            "It's our birthday! Enjoy 15% off everything in store this Saturday only.",
            "Save on your energy bills with our new fixed tariff. Call us today for a free quote.",
            "Our pizza deal is back: any large pizza for £9.99, Tuesdays only. Order online now.",
        ),
    ),
    *_cases(
        PLACEHOLDER,
        0,
        (
            "Test text",
            "This is a sample text for testing.",
            "test",
            "Hello",
            "Testing 1 2 3",
            "Lorem ipsum dolor sit amet",
            "Sample message",
            "This is a test message.",
            "asdf",
            "Check check, one two",
            "Hello world",
            "Just a test, please ignore.",
        ),
    ),
)

#: the names put into the ``{name}`` slot of the :data:`INVARIANCE` templates
NAMES = ("Anna", "Mohammed", "Tom", "Priya", "Chen")
#: the times put into the ``{time}`` slot of the :data:`INVARIANCE` templates
TIMES = ("7pm", "9:30", "noon", "half past six")
#: invariance groups: a template with ``{name}`` and/or ``{time}``, filled with every name × time above; every
#: variant must get the prediction of the first one (and the first one must be right: ``expected``)
INVARIANCE: tuple[Case, ...] = (
    Case("Hi {name}, see you outside the station at {time}", 0, HAM),
    Case("{name} said the meeting moved to {time} tomorrow", 0, HAM),
    Case("Can you ask {name} to call me back before {time}?", 0, HAM),
    Case("Dinner is at {name}'s place, come round at {time}", 0, HAM),
    Case("Hi {name}, your appointment is confirmed for Monday at {time}. See you then.", 0, REQUESTED_NOTICE),
    Case("{name}, you have WON a £1000 cash prize! Call 09061234567 before {time} to claim. 150p/min", 1, SPAM),
    Case("URGENT {name}! Your £500 bonus expires at {time}. Txt CLAIM to 81234 now", 1, SPAM),
)

#: directional checks: each base message, with :func:`add_spam_cues` applied, must score a higher propensity
DIRECTIONAL: tuple[str, ...] = (
    "See you at the pub later",
    "Hey, are you free this weekend?",
    "Your order has been dispatched.",
    "Test text",
    "Hello",
    "Call me when you get this",
    "Thanks for dinner, it was lovely",
    "The meeting is at 3pm in room 2",
    "Happy new year to you and the family",
    "Your appointment is confirmed for Tuesday.",
)
PREMIUM_NUMBER = "09061234567"


def add_spam_cues(text: str) -> str:
    """``text`` with "WIN" in front and a premium-rate number to call after it."""
    return f"WIN! {text} Call {PREMIUM_NUMBER}"


def _propensity(model, texts: Sequence[str]) -> np.ndarray:
    return np.asarray(model.predict_proba(list(texts)), dtype=float)[:, 1]


def bank_frame(bank: Sequence[Case] = BANK) -> pd.DataFrame:
    """The bank as a frame: ``text``, ``expected``, ``category``."""
    return pd.DataFrame(list(bank), columns=list(Case._fields))


def run_bank(model, threshold: float, bank: Sequence[Case] = BANK) -> pd.DataFrame:
    """One row per bank message: ``text``, ``category``, ``expected``, ``propensity``, ``prediction`` (0/1) and
    ``passed`` (prediction == expected)."""
    df = bank_frame(bank)
    df["propensity"] = _propensity(model, df["text"])
    df["prediction"] = apply_threshold(df["propensity"].to_numpy(), threshold).astype(int)
    df["passed"] = df["prediction"] == df["expected"]
    return df[["text", "category", "expected", "propensity", "prediction", "passed"]]


def pass_rate(results: pd.DataFrame) -> float:
    """The share of passed rows of a result table (:func:`run_bank`, :func:`invariance`, :func:`directional`)."""
    if results.empty:
        raise ValueError("no results: the pass rate of nothing is undefined")
    return float(results["passed"].mean())


def pass_rates(results: pd.DataFrame) -> pd.Series:
    """Pass rate per category of a :func:`run_bank` table, plus ``all``."""
    by_category = results.groupby("category", sort=False)["passed"].mean()
    return pd.concat([by_category, pd.Series({"all": results["passed"].mean()})]).astype(float)


def invariance_variants(groups: Sequence[Case] = INVARIANCE) -> pd.DataFrame:
    """Every template filled with every name × time: ``group``, ``variant``, ``text``, ``expected``,
    ``category``; variant 0 is the reference of its group."""
    rows = []
    for g, case in enumerate(groups):
        names = NAMES if "{name}" in case.text else ("",)
        times = TIMES if "{time}" in case.text else ("",)
        variants = [case.text.format(name=n, time=t) for n in names for t in times]
        for v, text in enumerate(dict.fromkeys(variants)):
            rows.append({"group": g, "variant": v, "text": text, "expected": case.expected, "category": case.category})
    return pd.DataFrame(rows)


def invariance(model, threshold: float, groups: Sequence[Case] = INVARIANCE) -> pd.DataFrame:
    """One row per variant: its ``propensity`` and ``prediction``, the group's ``reference_prediction`` (variant 0)
    and ``passed`` (same prediction as the reference, and the reference itself right)."""
    df = invariance_variants(groups)
    df["propensity"] = _propensity(model, df["text"])
    df["prediction"] = apply_threshold(df["propensity"].to_numpy(), threshold).astype(int)
    reference = df[df["variant"] == 0].set_index("group")["prediction"]
    df["reference_prediction"] = df["group"].map(reference)
    df["passed"] = (df["prediction"] == df["reference_prediction"]) & (df["reference_prediction"] == df["expected"])
    return df


def directional(model, bases: Sequence[str] = DIRECTIONAL) -> pd.DataFrame:
    """One row per base message: ``propensity`` of the base and of :func:`add_spam_cues` of it (``modified``), and
    ``passed`` (the propensity rose)."""
    modified = [add_spam_cues(t) for t in bases]
    p = _propensity(model, [*bases, *modified])
    n = len(bases)
    df = pd.DataFrame(
        {"base": list(bases), "modified": modified, "propensity_base": p[:n], "propensity_modified": p[n:]}
    )
    df["passed"] = df["propensity_modified"] > df["propensity_base"]
    return df


def summary(model, threshold: float) -> dict:
    """Every behavioural check of a model at its threshold: the bank's pass rate (overall and per category), the
    invariance and directional pass rates, and the failed bank messages (for ``make run``'s report)."""
    bank = run_bank(model, threshold)
    return {
        "bank_pass_rate": pass_rate(bank),
        "bank_pass_rate_by_category": {k: float(v) for k, v in pass_rates(bank).drop("all").items()},
        "bank_size": len(bank),
        "invariance_pass_rate": pass_rate(invariance(model, threshold)),
        "directional_pass_rate": pass_rate(directional(model)),
        "bank_failures": bank.loc[~bank["passed"], ["text", "category", "propensity"]].to_dict("records"),
    }


def gate_checks(result: dict, limits: dict | None = None) -> dict[str, dict]:
    """The behavioural gate of a :func:`summary`: ``{"behaviour:<name>": {"passed", "value", "limit"}}`` for each
    of ``limits`` (default :data:`GATE`; names are bank categories, ``invariance``, ``directional`` and ``bank``
    for the overall pass rate)."""
    rates = {
        **result["bank_pass_rate_by_category"],
        "invariance": result["invariance_pass_rate"],
        "directional": result["directional_pass_rate"],
        "bank": result["bank_pass_rate"],
    }
    limits = GATE if limits is None else limits
    unknown = sorted(set(limits) - set(rates))
    if unknown:
        raise KeyError(f"unknown behavioural checks {unknown}: expected some of {sorted(rates)}")
    return {
        f"behaviour:{name}": {"passed": bool(rates[name] >= limit), "value": float(rates[name]), "limit": float(limit)}
        for name, limit in limits.items()
    }


def out_of_domain_checks(
    model,
    threshold: float,
    champion=None,
    champion_threshold: float | None = None,
    tolerance: int = OOD_HAM_TOLERANCE,
    data=None,
) -> tuple[dict, dict[str, dict]]:
    """The out-of-domain part of the gate (:mod:`aml.spam.outofdomain`, the set of today's messages the 2011
    collection lacks): ``(figures, checks)``.

    ``figures`` (JSON-able): the model's ``ham_kept``, ``spam_caught``, ``aucpr`` and per-category rates at
    ``threshold``; with a ``champion`` and its ``champion_threshold``, also the champion's ``champion_ham_kept`` and
    ``champion_spam_caught`` and ``ham_lost``: the ham the champion keeps and the model blocks (id, category,
    propensity, text). ``checks``: ``{"out_of_domain:ham_lost": {"passed", "value", "limit"}}`` — at most
    ``tolerance`` (:data:`OOD_HAM_TOLERANCE`) such messages — when there is a champion; the figures alone gate
    nothing (the aims are measured, not asserted)."""
    from aml.spam import outofdomain

    report = outofdomain.evaluate(model, threshold, data)
    figures = {
        "threshold": float(threshold),
        "ham_kept": report.ham_kept,
        "spam_caught": report.spam_caught,
        "aucpr": report.aucpr,
        "by_category": {k: float(v) for k, v in report.by_category()["rate"].items()},
    }
    checks: dict[str, dict] = {}
    if champion is None or champion_threshold is None:
        return figures, checks
    theirs = outofdomain.evaluate(champion, champion_threshold, data)
    ham = report.table["y"] == 0
    lost = report.table.loc[ham & theirs.table["correct"].to_numpy() & ~report.table["correct"]]
    figures |= {
        "champion_threshold": float(champion_threshold),
        "champion_ham_kept": theirs.ham_kept,
        "champion_spam_caught": theirs.spam_caught,
        "ham_lost": [
            {"id": str(r.id), "category": str(r.category), "propensity": float(r.propensity), "text": str(r.text)}
            for r in lost.itertuples()
        ],
    }
    checks["out_of_domain:ham_lost"] = {
        "passed": bool(len(lost) <= tolerance),
        "value": float(len(lost)),
        "limit": float(tolerance),
    }
    return figures, checks


__all__ = [
    "BANK",
    "BANK_FLOOR",
    "GATE",
    "CATEGORIES",
    "EXPECTED",
    "DIRECTIONAL",
    "INVARIANCE",
    "MIN_PASS_RATE",
    "OOD_HAM_TOLERANCE",
    "Case",
    "add_spam_cues",
    "bank_frame",
    "directional",
    "gate_checks",
    "invariance",
    "invariance_variants",
    "out_of_domain_checks",
    "pass_rate",
    "pass_rates",
    "run_bank",
    "summary",
]
