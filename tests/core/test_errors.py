"""Reading text files: strict UTF-8, line numbers as an editor counts them."""

import pytest

from jaxattn.core.errors import JaxattnError, read_text, text_lines


def test_text_lines_split_like_a_text_mode_file():
    assert text_lines("a\r\nb\rc\nd\x0ce") == ["a\n", "b\n", "c\n", "d\x0ce"]


def test_read_text_checks_and_names_the_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"ok\nstill ok\nbad \xc3\x28 here\n")
    with pytest.raises(JaxattnError, match=r"f\.txt:3: not UTF-8 \(byte 0xc3 at byte 5 of the line\)"):
        read_text(path)
    with pytest.raises(JaxattnError, match=r"nope\.txt: file not found"):
        read_text(tmp_path / "nope.txt")
    path.write_bytes(b"  \n")
    assert read_text(path, allow_empty=True) == "  \n"
    with pytest.raises(JaxattnError, match=r"f\.txt: is empty"):
        read_text(path)
