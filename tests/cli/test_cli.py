"""The command line's error boundary: one line on stderr, exit status 2, nothing left behind."""

from pathlib import Path

import pytest

from jaxattn.cli.commands import error_line, main
from jaxattn.config import ConfigError
from jaxattn.core.errors import JaxattnError, RunError
from jaxattn.data.dataset import DataError


@pytest.fixture
def fixtures_dir():
    return Path(__file__).parents[1] / "data" / "fixtures"


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


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["analyze", "--run", "r", "--cpu-devices", "-2"],
         "argument --cpu-devices: must be 0 (one per core) or a positive number, got -2"),
        (["analyze", "--run", "r", "--cpu-devices", "two"], "expected a whole number, got 'two'"),
        (["analyze", "--run", "r", "--only", ","], "argument --only: expected one or more"),
        (["analyze", "--run", "r", "--only", ""], "argument --only: expected one or more"),
        (["analyze", "--run", "r", "--limit", "0"], "argument --limit: must be a number >= 1"),
        (["wp", "--run", "r", "--only", " , "], "argument --only: expected one or more"),
        (["wp", "--run", "r", "--seeds", "0"], "argument --seeds: must be a number >= 1, got 0"),
        (["reproduce", "--limit", "-3"], "argument --limit: must be a number >= 1, got -3"),
        (["train", "--out", ""], "argument --out: expected a path, got an empty string"),
        (["data", "list", "--data-dir", " "], "argument --data-dir: expected a path"),
    ],
)
def test_bad_arguments_are_one_usage_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    (line,) = _err_lines(capsys)
    command = "data list" if argv[0] == "data" else argv[0]
    assert line.startswith(f"jaxattn {command}: error: ") and needle in line


def test_out_must_be_a_folder_that_can_be_written(tmp_path, capsys):
    afile = tmp_path / "f"
    afile.write_text("keep")
    assert main(["train", "--out", str(afile)]) == 2
    (line,) = _err_lines(capsys)
    assert line == f"jaxattn train: error: --out {afile}: is a file, not a run folder; choose a folder"
    assert main(["train", "--out", str(afile / "run")]) == 2
    assert f"{afile} is a file, not a folder" in _err_lines(capsys)[0]
    assert afile.read_text() == "keep"


def test_data_dir_is_checked_and_reaches_the_config(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nope"
    assert main(["train", "--out", str(tmp_path / "r"), "--data-dir", str(missing)]) == 2
    (line,) = _err_lines(capsys)
    assert line == (
        f"jaxattn train: error: --data-dir: data folder {missing} does not exist; "
        "point it at the folder holding the data"
    )
    assert main(["data", "list", "--data-dir", str(missing)]) == 2
    assert _err_lines(capsys)[0].startswith("jaxattn data list: error: --data-dir: data folder")
    monkeypatch.setenv("JAXATTN_DATA", str(missing))
    assert main(["train", "--out", str(tmp_path / "r")]) == 2
    assert f"$JAXATTN_DATA: data folder {missing} does not exist" in _err_lines(capsys)[0]
    assert not (tmp_path / "r").exists()


def test_data_list_exit_status(fixtures_dir, capsys):
    assert main(["data", "list", "sst2", "--data-dir", str(fixtures_dir)]) == 0
    assert main(["data", "list", "sst2", "nope", "--data-dir", str(fixtures_dir)]) == 1
    (line,) = _err_lines(capsys)
    assert line.startswith("jaxattn data list: error: not available: nope: unknown data set 'nope'")
