from pathlib import Path

import pytest

from jaxattn.data.sources import resolve_data_dir

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    """Small files in the real formats, laid out like a data directory."""
    return FIXTURES


@pytest.fixture
def bad() -> Path:
    """Malformed files, one fault each."""
    return FIXTURES / "bad"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared data directory, or skip when it is not here."""
    try:
        found = resolve_data_dir()
    except Exception:  # noqa: BLE001 - a broken $JAXATTN_DATA also means "not here"
        found = None
    if found is None or not (found / "README.md").is_file():
        pytest.skip("the shared data directory is not available")
    return found
