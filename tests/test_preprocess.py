"""Signal preprocessing: rate, length, leads, filters, scale."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaling.config import LEADS_8, LEADS_12
from scaling.data.dataset import DataError
from scaling.data.preprocess import (
    canonical_lead,
    fit_length,
    lead_indices,
    preprocess,
    resample,
    stack_centred,
)

PHYSIONET_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def sine(freq_hz, rate, seconds=10.0, amplitude=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def as_batch(x, leads=1):
    """(samples,) -> (1, samples, leads) float32, the same signal on every lead."""
    return np.repeat(x[None, :, None], leads, axis=2).astype(np.float32)


def dominant_frequency(x, rate):
    spectrum = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


def test_resample_500_to_400_keeps_frequency_and_amplitude():
    x = as_batch(sine(7.0, 500, amplitude=1.5))
    y = resample(x, 500, 400)
    assert y.shape == (1, 4000, 1)
    assert y.dtype == np.float32
    assert dominant_frequency(y[0, :, 0], 400) == pytest.approx(7.0, abs=0.1)
    middle = y[0, 400:-400, 0]  # away from the filter's edge effects
    assert np.abs(middle).max() == pytest.approx(1.5, rel=0.01)
    np.testing.assert_allclose(middle, sine(7.0, 400, amplitude=1.5)[400:-400], atol=0.01)


def test_resample_same_rate_is_identity():
    x = as_batch(sine(5.0, 400))
    assert resample(x, 400, 400) is x


def test_fit_length_pads_and_crops_centred():
    x = np.arange(1, 6, dtype=np.float32)[None, :, None]  # 1..5
    np.testing.assert_array_equal(fit_length(x, 9)[0, :, 0], [0, 0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 8)[0, :, 0], [0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 3)[0, :, 0], [2, 3, 4])
    np.testing.assert_array_equal(fit_length(x, 2)[0, :, 0], [2, 3])


@given(n=st.integers(1, 60), length=st.integers(1, 60))
def test_fit_length_keeps_the_centre(n, length):
    x = np.arange(1, n + 1, dtype=np.float32)[None, :, None]
    y = fit_length(x, length)[0, :, 0]
    assert len(y) == length
    kept = y[y > 0]
    assert len(kept) == min(n, length)
    np.testing.assert_array_equal(np.diff(kept), 1)  # one contiguous stretch of the input
    # the same number of samples (±1) is dropped or added on each side
    if n >= length:
        assert abs((kept[0] - 1) - (n - kept[-1])) <= 1
    else:
        first = int(np.argmax(y > 0))
        assert abs(first - (length - 1 - (first + n - 1))) <= 1


def test_stack_centred_pads_each_record_to_the_longest():
    a = np.ones((4, 2), np.float32)
    b = 2 * np.ones((6, 2), np.float32)
    out = stack_centred([a, b])
    assert out.shape == (2, 6, 2)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(out[1], b)


def test_lead_names_match_case_insensitively_and_limb_leads_by_alias():
    assert canonical_lead("I") == "DI"
    assert canonical_lead(" aVr ") == "AVR"
    assert canonical_lead("DIII") == "DIII"
    cols = lead_indices(PHYSIONET_LEADS, ("DI", "AVR", "v1", "III"))
    np.testing.assert_array_equal(cols, [0, 3, 6, 2])
    np.testing.assert_array_equal(lead_indices(LEADS_12, PHYSIONET_LEADS), np.arange(12))


def test_preprocess_selects_and_reorders_leads_by_name():
    x = np.arange(12, dtype=np.float32)[None, None, :].repeat(10, axis=1)  # lead i holds i
    y = preprocess(x, 500, PHYSIONET_LEADS, sample_rate=500, length=10, leads=LEADS_8)
    assert y.shape == (1, 10, 8)
    np.testing.assert_array_equal(y[0, 0], [0, 1, 6, 7, 8, 9, 10, 11])
    reordered = preprocess(x, 500, PHYSIONET_LEADS, sample_rate=500, length=10, leads=("V6", "I"))
    np.testing.assert_array_equal(reordered[0, 0], [11, 0])


def test_missing_lead_is_a_data_error_naming_it():
    x = np.zeros((1, 10, 3), np.float32)
    with pytest.raises(DataError, match="V1"):
        preprocess(x, 500, ("I", "II", "III"), sample_rate=500, length=10, leads=("I", "V1"))


def test_preprocess_rejects_a_batch_of_the_wrong_rank():
    with pytest.raises(DataError, match="shape"):
        preprocess(np.zeros((10, 12)), 500, PHYSIONET_LEADS, sample_rate=500, length=10, leads=())


def test_highpass_removes_slow_drift():
    ecg_like = sine(8.0, 500)
    drift = sine(0.1, 500, amplitude=3.0) + np.linspace(0, 2, 5000)
    x = as_batch(ecg_like + drift)
    y = preprocess(x, 500, ("II",), sample_rate=500, length=5000, leads=("II",), highpass_hz=0.7)
    middle = slice(500, -500)
    assert np.abs(y[0, middle, 0] - ecg_like[middle]).max() < 0.05
    assert np.abs(x[0, middle, 0] - ecg_like[middle]).max() > 1.0


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_notch_removes_powerline(mains_hz):
    ecg_like = sine(5.0, 500)
    x = as_batch(ecg_like + sine(mains_hz, 500, amplitude=0.5))
    y = preprocess(x, 500, ("II",), sample_rate=500, length=5000, leads=("II",), notch_hz=mains_hz)
    middle = slice(500, -500)
    assert np.abs(y[0, middle, 0] - ecg_like[middle]).max() < 0.02
    spectrum = np.abs(np.fft.rfft(y[0, middle, 0]))
    freqs = np.fft.rfftfreq(len(y[0, middle, 0]), 1 / 500)
    assert spectrum[np.argmin(np.abs(freqs - mains_hz))] < 0.01 * spectrum.max()


def test_scale_multiplies_after_everything_else():
    x = as_batch(sine(3.0, 400), leads=2)
    y = preprocess(x, 400, ("I", "II"), sample_rate=400, length=4000, leads=("II",), scale=2.5)
    np.testing.assert_allclose(y[0, :, 0], 2.5 * x[0, :, 1], rtol=1e-6)


def test_full_pipeline_shape_and_dtype():
    x = np.random.default_rng(0).normal(size=(3, 5000, 12))
    y = preprocess(
        x, 500, PHYSIONET_LEADS, sample_rate=400, length=4096, leads=LEADS_12, highpass_hz=0.5
    )
    assert y.shape == (3, 4096, 12)
    assert y.dtype == np.float32
    assert y.flags["C_CONTIGUOUS"]
    assert np.isfinite(y).all()
