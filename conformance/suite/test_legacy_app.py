"""Legacy double-callable applications (asgi.rst "Legacy Applications").

Servers are asked to keep running ASGI 2 style apps: ``app(scope)`` when the
connection starts, then at once ``await instance(receive, send)``.  The probe is
served by a second instance of the server, started with the profile's legacy
switch where it has one.
"""

from __future__ import annotations

from conformance import requirement
from conformance._batch import ahead
from conformance._launcher import LEGACY_APP, LaunchConfig, ServerStartError
from conformance._probe import Probe, expect
from conformance._reproducer import Sent
from conformance._verdicts import ConformanceFailure
from conformance.clients import ClientError


@requirement("core.legacy-asgi2")
@ahead
async def test_legacy_double_callable_app_is_served(asgi: Probe) -> None:
    """A double-callable probe app answers, having been constructed with the scope first."""
    profile = asgi.target.profile
    config = LaunchConfig(app=LEGACY_APP, legacy=True)
    sent = "GET / to a double-callable app" + (
        "" if profile.asgi2_args is not None else " (the profile has no legacy switch)"
    )
    try:
        exchange = await asgi.send(config=config)
    except ServerStartError as exc:
        raise ConformanceFailure(
            f"the server could not serve a legacy (ASGI 2) app: {exc}"
        ) from None
    except ClientError as exc:  # the server answered, but not with a usable response
        raise ConformanceFailure(
            f"sent {sent}; expected 200 from the app; observed no usable response: {exc}"
        ) from None
    finally:  # the reproducer serves a double-callable app, not the probe's script
        asgi.sent.append(Sent(asgi.wire, legacy=True))
    calls = exchange.observations("call", timeout=None if exchange.response.status < 400 else 0)
    expect(
        exchange.response.status == 200 and bool(calls),
        sent=sent,
        expected="200 from the app",
        observed=f"status {exchange.response.status}, app called: {bool(calls)}",
    )
    style = calls[0]["style"]
    expect(style == "asgi2", sent="GET /", expected="the double-callable path", observed=style)
    version = (calls[0]["scope"].get("asgi") or {}).get("version")
    asgi.observe(f"served; asgi.version told to the legacy app: {version!r}")
