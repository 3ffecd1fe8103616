"""Fixtures of the suite, registered by the plugin only when ``--asgi-server`` is given.

All are prefixed ``asgi_`` (or are ``asgi`` itself) so they cannot collide with a
user's own fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance._probe import Probe, ServerUnderTest
from conformance._profiles import Target, resolve_targets
from conformance._sidechannel import SideChannel
from conformance._verdicts import HarnessError


__all__ = ["asgi", "asgi_server", "asgi_side_channel", "targets"]

_TARGETS = pytest.StashKey[dict[str, Target]]()


def targets(config: pytest.Config) -> dict[str, Target]:
    """The selected targets by name, resolved once per process."""
    if _TARGETS not in config.stash:
        selected = resolve_targets(config.getoption("--asgi-server"))
        config.stash[_TARGETS] = {t.name: t for t in selected}
    return config.stash[_TARGETS]


@pytest.fixture(scope="session")
def asgi_side_channel() -> Iterator[SideChannel]:
    channel = SideChannel()
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def asgi_server(
    request: pytest.FixtureRequest,
    asgi_side_channel: SideChannel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerUnderTest]:
    """One target's server, started once for all its checks and always stopped."""
    target = targets(request.config)[request.param]
    log_dir = tmp_path_factory.mktemp("asgi-logs", numbered=True)
    server = ServerUnderTest(target, asgi_side_channel, log_dir)
    try:
        server.main  # noqa: B018 - starting is the point; a failure errors every check
        yield server
    finally:
        stopped = server.stop()
    hung = [report for report in stopped if "did not stop" in report]
    if hung:
        # Reported as a teardown error of the target's last check: the harness had to kill it.
        raise HarnessError(f"{target.name} {hung[0]}")


@pytest.fixture
def asgi(asgi_server: ServerUnderTest) -> Probe:
    """The probe session of one check; an error if the server has died since the last one."""
    crashed = asgi_server.crashed()
    if crashed:
        raise HarnessError(crashed)
    return Probe(asgi_server)
