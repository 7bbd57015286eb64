"""Shared fixtures and markers.

- ``@pytest.mark.slow`` tests run only with ``--runslow`` (CI runs them).
- ``@pytest.mark.data`` tests need ``../shared/data`` (or ``$KERAS_POSE_DATA``);
  they are skipped when it is missing unless ``KERAS_POSE_REQUIRE_DATA=1``,
  which CI sets so that a missing dataset fails instead of skipping.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy can be tested on one machine.
# This must happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # already initialised (e.g. a plugin imported TF first); the test then skips
    pass


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root():
    """The shared data root, or skip (fail in CI) when it is missing."""
    from keras_pose.data.paths import candidate_data_roots

    for root in candidate_data_roots():
        if (root / "lsp" / "joints.mat").is_file():
            return root
    msg = f"shared datasets not found in {[str(r) for r in candidate_data_roots()]}"
    if os.environ.get("KERAS_POSE_REQUIRE_DATA") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def lsp_train(data_root):
    from keras_pose.data import read_lsp

    return read_lsp(data_root, "train")


@pytest.fixture(scope="session")
def lsp_test(data_root):
    from keras_pose.data import read_lsp

    return read_lsp(data_root, "test")
