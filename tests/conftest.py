import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DEPICT_OUTPUTS", "off")  # tests that keep outputs name their own folder
if "DEPICT_COMPILE_CACHE" not in os.environ:  # the tests' own, not ./compile_cache
    os.environ["DEPICT_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="depict-test-compile-")
    atexit.register(shutil.rmtree, os.environ["DEPICT_COMPILE_CACHE"], ignore_errors=True)

import socket  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from models import Engine, graphs  # noqa: E402
from tests.tiny_models import build_tiny_preset  # noqa: E402

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # pytest.ini runs the suite in 2 processes (xdist)
torch.set_num_threads(max(1, torch.get_num_threads() // WORKERS))  # each its share of the cores, not all of them


@pytest.fixture(autouse=True)
def no_builds_left_behind():
    """A test's background builds end with it (queued ones dropped, the running one awaited): they would otherwise
    run into the tests after it (a compile primed at load takes a minute)."""
    yield
    graphs.cancel_builds()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def engine(tiny_preset, tmp_path_factory):
    os.environ["DEPICT_ADAPTERS"] = str(tmp_path_factory.mktemp("user_adapters"))
    return Engine(preset=str(tiny_preset))


@pytest.fixture(scope="session")
def server(tiny_preset, engine):
    """The app on the tiny preset, launched on a free local port: its URL."""
    import app

    args = app.parse_args(["--port", str(free_port()), "--preset", str(tiny_preset)])
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    yield url
    blocks.close()


@pytest.fixture(scope="module")
def client(server):
    """A client per test module: its own session, so galleries' history starts empty."""
    return Client(server, verbose=False)
