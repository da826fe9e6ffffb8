"""The command line's error boundary: one line on stderr, exit status 2, nothing left behind."""

import pytest

from jaxattn.cli import error_line, main
from jaxattn.config import ConfigError
from jaxattn.data.dataset import DataError
from jaxattn.errors import JaxattnError, RunError


def test_user_errors_share_one_base_and_stay_value_errors():
    for cls in (ConfigError, DataError):
        assert issubclass(cls, JaxattnError) and issubclass(cls, ValueError)
    assert issubclass(RunError, JaxattnError)


def test_os_errors_become_one_line_naming_the_path(tmp_path):
    with pytest.raises(PermissionError) as err:
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))
    assert error_line(err.value) == f"{tmp_path / 'x'}: permission denied"
    assert error_line(FileNotFoundError("runs/r: not a finished run")) == "runs/r: not a finished run"
    assert error_line(DataError("a\nb")) == "a b"


def test_decoding_errors_name_the_file_being_read(tmp_path):
    path = tmp_path / "data.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UnicodeDecodeError) as err:
        path.read_text(encoding="utf-8")
    assert error_line(err.value).startswith(f"{path}: not UTF-8")


def _err_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train"])
    assert exit_.value.code == 2
    (line,) = _err_lines(capsys)
    assert line.startswith("jaxattn train: error: the following arguments are required: --out")


def test_a_failed_train_removes_the_empty_run_folder_it_made(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert main(["train", "--out", str(out), "--set", "data.name=sst2",
                 "--set", f"data.data_dir={tmp_path}"]) == 2
    (line,) = _err_lines(capsys)
    assert line.startswith("jaxattn train: error: ") and "sst2/train.tsv" in line
    assert not out.exists()
