"""The WFDB header parser, against `wfdb.rdheader` and on hand-made edge cases."""

import numpy as np
import pytest
import wfdb

from scaling.data.dataset import DataError
from scaling.data.wfdb_header import read_header


def test_agrees_with_wfdb_on_the_real_headers(shared_data):
    # every sample header but PTB-XL's 434 at 100 Hz, which are like its 15 at 500 Hz
    headers = [h for h in sorted(shared_data.rglob("*.hea")) if "records100" not in h.parts]
    checked = 0
    for hea in headers:
        try:
            expected = wfdb.rdheader(str(hea.with_suffix("")))
        except wfdb.io.header.HeaderSyntaxError:
            assert hea.name == "E00666.hea"  # the record line names the file: wfdb refuses it
            continue
        got = read_header(hea)
        assert got.sample_rate == expected.fs
        assert got.length == expected.sig_len
        assert got.lead_names == tuple(expected.sig_name)
        assert got.files == tuple(expected.file_name)
        assert got.formats == tuple(expected.fmt)
        assert got.byte_offsets == tuple(o or 0 for o in expected.byte_offset)
        np.testing.assert_array_equal(got.gains, expected.adc_gain)
        np.testing.assert_array_equal(got.baselines, expected.baseline)
        assert got.units == tuple(expected.units)
        comments = dict(c.partition(":")[::2] for c in expected.comments if ":" in c)
        assert got.comments == {k.strip(): v.strip() for k, v in comments.items()}
        checked += 1
    assert checked == len(headers) - 1


def write(tmp_path, text):
    path = tmp_path / "r.hea"
    path.write_text(text)
    return path


def test_defaults_units_and_the_record_line_naming_the_file(tmp_path):
    header = read_header(
        write(
            tmp_path,
            "r.mat 3 250/1000 2500\n"
            "r.mat 16+24 0 16 7 0 0 0 I\n"
            "r.mat 16+24 500/uV 16 0 0 0 0 II\n"
            "r.mat 16+24 2(5)/V 16 0 0 0 0 chest lead V1\n"
            "# Dx: 164889003\n",
        )
    )
    assert (header.sample_rate, header.length) == (250.0, 2500)
    assert header.lead_names == ("I", "II", "chest lead V1")
    np.testing.assert_array_equal(header.gains, [200.0, 500.0, 2.0])  # 0 means 200
    np.testing.assert_array_equal(header.baselines, [7, 0, 5])  # default: ADC zero
    np.testing.assert_allclose(header.mv_scales(), [1 / 200, 1e-3 / 500, 1e3 / 2])
    assert header.byte_offsets == (24, 24, 24)
    assert header.comments == {"Dx": "164889003"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# only a comment\n", "no record line"),
        ("r 2 500\nr.dat 16 200 16 0 0 0 0 I\n", "record line 'r 2 500'"),
        ("r/2 2 500 10\n", "multi-segment"),
        ("r 2 500 10\nr.dat 16 200 16 0 0 0 0 I\n", "announces 2 signals but has 1"),
        ("r 1 500 10\nr.dat 16 200 16 0\n", "signal line 1"),
        ("r 1 500 10\nr.dat 16 200mV 16 0 0 0 0 I\n", "signal line 1"),
        ("r 1 500 10\nr.dat 16x2 200 16 0 0 0 0 I\n", "one sample per frame"),
    ],
)
def test_malformed_headers_are_data_errors(tmp_path, text, message):
    with pytest.raises(DataError, match=rf"r\.hea: .*{message}"):
        read_header(write(tmp_path, text))


def test_unknown_unit_is_a_data_error(tmp_path):
    header = read_header(write(tmp_path, "r 1 500 10\nr.dat 16 200/mmHg 16 0 0 0 0 BP\n"))
    with pytest.raises(DataError, match="unit 'mmHg'"):
        header.mv_scales()
