import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from jobs import Jobs  # noqa: E402


@pytest.fixture
def jobs(tmp_path):
    """Background training jobs; whatever the test does, none outlives it."""
    started = Jobs(tmp_path)
    yield started
    started.clean_up()
