import json
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent


@pytest.fixture(scope="session")
def expected():
    """Values the Rust crates compute (tests/expected_values.rs keeps the file equal to them)."""
    with open(HERE / "fixtures" / "expected.json") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def repo():
    return REPO
