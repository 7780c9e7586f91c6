import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from models import Engine  # noqa: E402
from tests.tiny_models import build_tiny_preset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def engine(tiny_preset, tmp_path_factory):
    os.environ["DEPICT_ADAPTERS"] = str(tmp_path_factory.mktemp("user_adapters"))
    return Engine(preset=str(tiny_preset))
