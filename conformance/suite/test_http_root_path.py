"""root_path (www.rst "HTTP Connection Scope", "WSGI Compatibility").

root_path is WSGI's SCRIPT_NAME.  By default it must be empty; a server started
with a mount prefix (the profile's root-path option) passes that prefix on.
Whether ``path`` then includes the prefix is unresolved upstream (asgiref #424),
so that is recorded, not graded.
"""

from __future__ import annotations

from conformance import requirement
from conformance._batch import ahead
from conformance._launcher import LaunchConfig
from conformance._probe import Probe, expect


MOUNT = "/mnt"


@requirement("http.scope.root-path-default")
async def test_root_path_is_empty_by_default(asgi: Probe) -> None:
    """Started without a root path, the server sends root_path "" or leaves it out."""
    scope = await asgi.scope_of(target=b"/x")
    value = scope.get("root_path", "")
    expect(
        value == "",
        sent="GET /x to a server with no root path",
        expected="'' or absent",
        observed=repr(value),
    )


@requirement("http.scope.root-path-configured")
@ahead
async def test_root_path_is_the_configured_prefix(asgi: Probe) -> None:
    """Started with root path /mnt, the server sends root_path "/mnt"."""
    asgi.require_offer("root_path")
    scope = await asgi.scope_of(target=MOUNT.encode() + b"/x", config=LaunchConfig(root_path=MOUNT))
    value = scope.get("root_path")
    expect(
        value == MOUNT,
        sent=f"GET {MOUNT}/x to a server started with root path {MOUNT}",
        expected=repr(MOUNT),
        observed=repr(value),
    )


@requirement("http.scope.root-path-and-path")
@ahead
async def test_path_relation_to_root_path_is_recorded(asgi: Probe) -> None:
    """Records whether path includes the configured prefix, for /mnt/x and for /x."""
    asgi.require_offer("root_path")
    config = LaunchConfig(root_path=MOUNT)
    seen = []
    for target in (MOUNT.encode() + b"/x", b"/x"):
        exchange = await asgi.send(target=target, config=config)
        calls = exchange.observations("call", timeout=None if exchange.response.status < 400 else 0)
        if calls:
            scope = calls[0]["scope"]
            seen.append(
                f"{target.decode()} -> path {scope.get('path')!r}, root_path {scope.get('root_path')!r}, "
                f"raw_path {scope.get('raw_path')!r}"
            )
        else:
            seen.append(f"{target.decode()} -> status {exchange.response.status}, app not called")
    asgi.observe("; ".join(seen))
