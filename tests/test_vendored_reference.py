"""The fixtures vendored in tests/reference are the ones of ../shared/reference, where that exists."""

import gzip

import pytest
from conftest import REFERENCE, SHARED_REFERENCE

pytestmark = pytest.mark.skipif(not SHARED_REFERENCE.is_dir(), reason="needs ../shared/reference beside the checkout")


def test_every_parity_oracle_is_vendored_unchanged():
    shared = sorted(path.name for path in (SHARED_REFERENCE / "parity").glob("*.json"))
    vendored = sorted(path.name.removesuffix(".gz") for path in (REFERENCE / "parity").glob("*.json.gz"))
    assert vendored == shared
    for name in shared:
        assert gzip.decompress((REFERENCE / "parity" / f"{name}.gz").read_bytes()) == \
            (SHARED_REFERENCE / "parity" / name).read_bytes(), name


@pytest.mark.parametrize("name", ["seeded_weights.py", "upstream_weights.json"])
def test_helpers_and_facts_are_vendored_unchanged(name):
    assert (REFERENCE / name).read_bytes() == (SHARED_REFERENCE / name).read_bytes()
