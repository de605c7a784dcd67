"""Form selection by rolling backtest, model averaging, prediction bands and honest exponents."""

from __future__ import annotations

import numpy as np
import pytest
from test_laws import PLANTED, law, noisy

from scaling.laws import LawError, average, backtest, fit
from scaling.laws.selection import Rules, Scores, decide

X16 = np.geomspace(100, 1e6, 16)
CANDIDATES = ("power", "saturating", "m3", "m4", "broken")


@pytest.mark.slow
@pytest.mark.parametrize("truth", ["power", "saturating", "m3", "m4", "broken"])
def test_rolling_backtest_chooses_the_planted_form_on_most_noisy_curves(truth):
    x = np.geomspace(100, 1e6, 24)
    chosen = [
        backtest(x, noisy(law(truth, PLANTED[truth], x), 0.01, seed=100 + i), CANDIDATES).chosen
        for i in range(10)
    ]
    assert chosen.count(truth) >= 8, chosen


def test_auto_fits_a_planted_saturating_law_as_saturating():
    x = np.geomspace(100, 1e5, 12)
    y = noisy(law("saturating", PLANTED["saturating"], x), 0.01, seed=11)
    result = fit(x, y, "auto", n_bootstrap=0)
    assert result.form == "saturating", result.selection.table
    table = result.selection.table.set_index("form")
    assert table.loc["saturating", "chosen"] and table["chosen"].sum() == 1
    assert "needs 10 points; the first cut-off has 6" in table.loc["broken2", "note"]


def test_backtest_cutoffs_fall_between_sizes_and_weigh_the_target_horizon_most():
    x = np.repeat(X16, 3)  # three seeds per size: one point per size in the backtest
    y = noisy(law("saturating", PLANTED["saturating"], x), 0.02, seed=12)
    result = backtest(x, y, ("power", "saturating"), groups=np.tile([0, 1, 2], 16), target=1e7)
    cutoffs = result.cutoffs[result.cutoffs["form"] == "saturating"]
    assert set(cutoffs["cutoff"]) <= set(X16[7:15]) and len(cutoffs) == 6
    assert cutoffs["n_fitted"].min() == 8  # the first cut-off keeps half of the 16 sizes
    peak = cutoffs.loc[cutoffs["weight"].idxmax(), "cutoff"]
    assert peak == pytest.approx(1e5, rel=0.6)  # the largest x / (1e7 / 1e6): a 10× test
    assert result.target == 1e7


def test_the_choice_and_the_weights_follow_their_rules():
    # form 0 scores best; form 1 is within one standard error of it with fewer parameters
    # but a BIC 4 above; form 2 is the simplest and clearly worse
    s = Scores(
        score=np.array([0.10, 0.11, 0.30]),
        excess=np.array([0.0, 0.002, 0.05]),
        se=np.array([0.0, 0.003, 0.01]),
        n_params=np.array([5, 3, 2]),
        bic=np.array([0.0, 4.0, 1.0]),
    )
    weights, chosen = decide(s, Rules(se_multiple=1.0, bic_margin=6.0))
    assert chosen == 1 and weights.sum() == pytest.approx(1.0)
    inverse_squares = 1 / s.score**2
    assert weights == pytest.approx(inverse_squares / inverse_squares.sum())
    assert decide(s, Rules(se_multiple=0.0))[1] == 0  # only the best is as good
    assert decide(s, Rules(bic_margin=2.0))[1] == 0  # form 1's BIC is too far
    assert decide(s, Rules(se_multiple=10.0, bic_margin=np.inf))[1] == 2
    sharper, _ = decide(s, Rules(weight_power=8.0))
    assert sharper[0] > weights[0] and sharper[2] < weights[2]


def test_a_chosen_forms_band_widens_with_its_backtest_drift_beyond_the_data():
    x = np.geomspace(100, 1e5, 12)
    y = noisy(law("saturating", PLANTED["saturating"], x), 0.02, seed=15)
    chosen = fit(x, y, "auto", n_bootstrap=100)
    plain = fit(x, y, chosen.form, n_bootstrap=100)
    table = chosen.selection.table.set_index("form")
    assert table.loc[chosen.form, "drift"] > 0
    assert chosen.reach(x) == pytest.approx(np.zeros(12))
    ahead = np.array([1e5, 1e6, 1e7])
    assert chosen.reach(ahead) == pytest.approx(np.log(ahead / 1e5))
    low, high = chosen.predict_band(np.r_[x, ahead[1:]])
    plain_low, plain_high = plain.predict_band(np.r_[x, ahead[1:]])
    width, plain_width = np.log(high / low), np.log(plain_high / plain_low)
    assert width[:12] == pytest.approx(plain_width[:12])  # within the data: no drift term
    assert width[13] > width[12] > plain_width[12]  # beyond it: wider, the farther the wider


@pytest.mark.slow
def test_model_averaging_never_extrapolates_worse_than_the_worst_member():
    x_all = np.geomspace(100, 1e7, 24)
    for truth, seed in (("saturating", 0), ("broken", 1), ("m3", 2), ("m4", 3)):
        y_all = noisy(law(truth, PLANTED[truth], x_all), 0.03, seed=seed)
        x, y, x_far, y_far = x_all[:16], y_all[:16], x_all[16:], y_all[16:]
        model = average(x, y, ("power", "saturating", "m3", "broken"), n_bootstrap=0)
        assert sum(model.weights) == pytest.approx(1.0) and len(model.members) >= 2

        def error(predicted, y_far=y_far):
            return np.sqrt(np.mean(np.log(predicted / y_far) ** 2))

        members = [error(m.predict(x_far)) for m in model.members]
        assert error(model.predict(x_far)) <= max(members) + 1e-12, (truth, members)


@pytest.mark.slow
def test_band_of_a_new_run_covers_95_percent_of_held_out_seeds():
    rng = np.random.default_rng(13)
    x = np.repeat(X16, 4)
    truth = PLANTED["saturating"]
    inside = total = 0
    for i in range(10):
        y = law("saturating", truth, x) * np.exp(rng.normal(0, 0.05, x.shape))
        seeds = np.tile(np.arange(4), 16)
        result = fit(x[:48], y[:48], "saturating", groups=seeds[:48], n_bootstrap=200, seed=i)
        assert result.noise == pytest.approx(0.05, rel=0.3)  # the planted run-to-run noise
        low, high = result.predict_band(x[48:])
        inside += np.sum((y[48:] >= low) & (y[48:] <= high))
        total += 16
        ci_low, ci_high = result.predict_ci(x[48:])
        assert np.all(high - low > ci_high - ci_low)  # a new run varies more than the mean
    assert 0.85 <= inside / total <= 0.99, inside / total


@pytest.mark.parametrize(
    ("y", "trend"),
    [
        (0.1 * X16**0.05, "rises"),
        (noisy(np.full(16, 0.2), 0.02, seed=14), "is flat within its noise"),
    ],
)
def test_a_curve_that_does_not_fall_gets_no_law(y, trend):
    for form in ("power", "saturating", "auto"):
        with pytest.raises(LawError, match=f"y does not fall with x: it {trend}"):
            fit(X16, y, form, n_bootstrap=0)


def test_an_exponent_whose_ci_reaches_a_bound_is_unidentified():
    y = noisy(law("saturating", PLANTED["saturating"], X16), 0.01, seed=15)
    broken = fit(X16, y, "broken", n_bootstrap=50)  # a saturating law has no break to find
    assert broken.unidentified == ("beta",)
    assert broken.ci["beta"][0] <= 2e-6
    assert fit(X16, y, "saturating", n_bootstrap=50).unidentified == ()
    cliff = noisy(0.2 + 1e5 * X16**-3.0, 0.01, seed=15)  # falls within its first three sizes
    steep = fit(X16, cliff, "saturating", n_bootstrap=50)
    assert steep.unidentified == ("alpha",) and steep.ci["alpha"][1] == pytest.approx(10.0)


def test_a_floor_whose_ci_reaches_zero_is_reported_as_not_resolved():
    from scaling.laws.describe import caveat

    pure = fit(X16, noisy(2.0 * X16**-0.3, 0.01, seed=3), "saturating", n_bootstrap=50)
    assert pure.ci["E"][0] < 1e-9 * pure.y.min()
    assert "no floor resolved" in caveat(pure, "E")
    floored = fit(
        X16,
        noisy(law("saturating", PLANTED["saturating"], X16), 0.01, seed=15),
        "saturating",
        n_bootstrap=50,
    )
    assert caveat(floored, "E") == ""
