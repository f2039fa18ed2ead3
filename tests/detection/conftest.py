import pytest

from addons.detection import Detector


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector()
