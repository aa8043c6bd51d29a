"""The real-cluster tier: the Helm chart installed on the Kubernetes cluster that
``testkit/cluster/up.sh`` brings up, every run a pod. Run by ``testkit/cluster/stage.sh`` (and so by
``.ci/run``) with ``-m cluster``; without a cluster the tests skip (fail under ``CI=true``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testkit.cluster.release import Cluster, Release


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this directory is a ``cluster`` test (deselected by default)."""
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The running test cluster's facts."""
    found = Cluster.load()
    if found is None:
        message = "no test cluster: run testkit/cluster/stage.sh (or up.sh and build-images.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Release]:
    """The chart installed (``helm install --wait``) in a new namespace against new databases; the
    gap-healing sensor stopped as an operator would, so that the tests' own runs are the work."""
    installed = Release(cluster)
    try:
        installed.install()
        installed.wait_location_loaded()
        installed.stop_sensor("gap_healing_sensor")
        yield installed
    finally:
        try:
            installed.uninstall()
        except RuntimeError:
            pass  # already uninstalled by the test that checks it
        installed.destroy()
