"""Server profiles: how to start a server, and what it says it offers.

A profile is a declarative TOML file (``servers/*.toml`` in the repository,
shipped inside the wheel).  It gives the command template, the distribution to
read the version from, the options that configure a root path or a legacy app,
and what the server *claims* (protocols, lifespan, extensions): a check of an
optional feature reports ``unsupported`` where the claim is absent.

Named *variants* (uvicorn's HTTP parsers, an event loop, a protocol option) are
extra arguments; each variant is its own matrix column, ``uvicorn:h11``, so a
configuration is a column rather than a rerun.

Protocols beyond cleartext HTTP/1.1 are *protocol columns* (``[protocols.h2]``):
how the server is asked to serve HTTP/2 or TLS (extra arguments, or a command of
their own, with the session's certificate as ``{certfile}`` and ``{keyfile}``)
and what the client speaks to it, so ``hypercorn+h2`` is a column beside
``hypercorn``, and ``hypercorn+*`` selects every protocol the profile declares.

Any other server is served by a command template on the command line,
``NAME=COMMAND ... {host} {port} {app}``, or by a path to a profile file.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
import string
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


__all__ = [
    "WIRES",
    "Profile",
    "ProfileError",
    "ProtocolColumn",
    "Target",
    "builtin_profiles",
    "channel_address",
    "load_profile",
    "resolve_remote",
    "resolve_targets",
]

#: Placeholders a command template may use.
PLACEHOLDERS = frozenset({"host", "port", "fd", "app", "python"})
#: Placeholders a TLS protocol column may use too: the session's PEM files (conformance/clients/tls.py).
TLS_PLACEHOLDERS = frozenset({"certfile", "keyfile", "ca_certs"})
#: Placeholders an HTTP/3 column may use too: the UDP socket (or port) QUIC is served on.
QUIC_PLACEHOLDERS = frozenset({"quic_fd", "quic_port"})
#: What a protocol column's client speaks: HTTP/1.1 (h11-parsed), HTTP/2 (h2), HTTP/3 (aioquic).
WIRES = ("http/1.1", "h2", "h3")
#: ``+`` is not part of a name: it joins a protocol to a column (``hypercorn+h2``).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: A template's head: its name, then its settings (``{``) or its command (``=``).
_TEMPLATE_HEAD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*([{=])")


class ProfileError(ValueError):
    """A server selection or profile the suite cannot use; the message is one line for the user."""


@dataclass(frozen=True)
class ProtocolColumn:
    """How a profile serves one protocol besides cleartext HTTP/1.1 (a ``[protocols.X]`` table).

    ``wire`` is what the client speaks; ``tls`` whether it speaks it over TLS
    (the client then offers ALPN for ``wire`` alone, so one server configuration
    can be both the ``+https`` and the ``+h2`` column).  ``command`` replaces the
    profile's command where the server takes TLS another way (Daphne's endpoint
    strings); ``args`` are added to it.  ``client_cert_args`` ask the server for an
    optional client certificate verified against ``{ca_certs}`` (mutual TLS),
    for the checks of the ``tls`` extension's client fields.
    """

    name: str
    wire: str = "http/1.1"
    tls: bool = False
    args: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    client_cert_args: tuple[str, ...] | None = None
    summary: str = ""
    #: The variants the column exists for (uvicorn serves h2 only as ``uvicorn:zttp``); None: all.
    variants: tuple[str, ...] | None = None

    def serves(self, variant: str | None) -> bool:
        return self.variants is None or (variant is not None and variant in self.variants)


@dataclass(frozen=True)
class Profile:
    """One server, as a profile file declares it."""

    name: str
    command: tuple[str, ...]
    summary: str = ""
    package: str | None = None
    protocols: tuple[str, ...] = ("http/1.0", "http/1.1")
    lifespan: bool = False
    extensions: tuple[str, ...] = ()
    root_path_args: tuple[str, ...] | None = None
    asgi2_args: tuple[str, ...] | None = None
    variants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    variant_summaries: Mapping[str, str] = field(default_factory=dict)
    protocol_columns: Mapping[str, ProtocolColumn] = field(default_factory=dict)
    source: str = "<builtin>"
    #: Where a remote target serves the probe app (``--asgi-url``): the suite starts nothing.
    url: str | None = None

    @property
    def binds_fd(self) -> bool:
        return any("{fd}" in part for part in self.command)

    def version(self) -> str:
        return _installed_version(self.package) if self.package else "unknown"

    def offers(self, feature: str) -> bool:
        """Whether the server claims ``feature``: a protocol, an extension, lifespan or a root path."""
        if feature == "root_path":
            return self.root_path_args is not None
        if feature == "lifespan":
            return self.lifespan
        return feature in self.protocols or feature in self.extensions

    def not_offered(self, feature: str, column: str) -> str:
        """Why ``column`` is unsupported for ``feature``; for a template, how it would say so."""
        if self.source != "<command line>":
            return f"{column} does not offer {feature} (per its profile)"
        key = "extensions" if "." in feature else "protocols"  # websocket.http.response
        setting = _TEMPLATE_SETTING.get(feature, f'offers={{{key}=["{feature}"]}}')
        return (
            f"{column} does not offer {feature} (per its template); "
            f"a template says it does with {self.name}{{{setting}}}=COMMAND"
        )


#: The template setting that claims a feature (see ``_split_template``).
_TEMPLATE_SETTING = {
    "root_path": 'options={root_path=["--root-path", "{root_path}"]}',
    "lifespan": "offers={lifespan=true}",
}


@functools.cache
def _installed_version(package: str) -> str:
    """The installed version of ``package``, read once per process.

    Every check's report carries its server's description; reading the
    distribution's metadata anew for each was a fifth of a second per column.
    """
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Target:
    """A matrix column: a profile, possibly one variant's extra arguments, and a protocol.

    Without a protocol the column is cleartext HTTP/1.1, as the plain name always meant.
    """

    profile: Profile
    variant: str | None = None
    protocol: str | None = None

    @property
    def name(self) -> str:
        name = self.profile.name if self.variant is None else f"{self.profile.name}:{self.variant}"
        return name if self.protocol is None else f"{name}+{self.protocol}"

    @property
    def column(self) -> ProtocolColumn | None:
        """The protocol column's declaration (None for cleartext HTTP/1.1)."""
        return None if self.protocol is None else self.profile.protocol_columns[self.protocol]

    @property
    def wire(self) -> str:
        """What the client speaks to this column: ``http/1.1`` or ``h2``."""
        return "http/1.1" if self.column is None else self.column.wire

    @property
    def tls(self) -> bool:
        return self.column is not None and self.column.tls

    @property
    def binds_fd(self) -> bool:
        return any("{fd}" in part for part in self.command_template())

    @property
    def binds_quic_fd(self) -> bool:
        """Whether the column serves QUIC on a UDP socket the suite binds (``{quic_fd}``)."""
        return any("{quic_fd}" in part for part in self.command_template())

    @property
    def remote(self) -> bool:
        """Served where the user deployed it: no process of the suite's own (``--asgi-url``)."""
        return self.profile.url is not None

    @property
    def extra_args(self) -> tuple[str, ...]:
        return () if self.variant is None else self.profile.variants[self.variant]

    def describe(self) -> dict[str, Any]:
        """The ``servers`` entry of the matrix."""
        return {
            "name": self.name,
            "profile": self.profile.name,
            "variant": self.variant,
            "protocol": self.wire,
            "tls": self.tls,
            "column": self.protocol,
            "version": self.profile.version(),
            "command": self.profile.url or shlex.join(self.command_template()),
            "offers": {
                "protocols": list(self.profile.protocols),
                "lifespan": self.profile.lifespan,
                "extensions": list(self.profile.extensions),
            },
        }

    def command_template(self) -> list[str]:
        column = self.column
        if column is None:
            return [*self.profile.command, *self.extra_args]
        return [*(column.command or self.profile.command), *self.extra_args, *column.args]


def _fields(parts: Sequence[str], source: str, known: frozenset[str]) -> set[str]:
    """The placeholders ``parts`` use; a one-line error for a malformed or unknown one."""
    fields: set[str] = set()
    for part in parts:
        try:
            parsed = list(string.Formatter().parse(part))
        except ValueError as exc:
            raise ProfileError(f"{source}: bad command template {part!r}: {exc}") from None
        fields.update(name for _, name, _, _ in parsed if name is not None)
    unknown = sorted(fields - known - {"root_path"})
    if unknown:
        raise ProfileError(
            f"{source}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)} "
            f"in the command template; known: {', '.join('{' + p + '}' for p in sorted(known))}"
        )
    return fields


def _check_template(
    parts: Sequence[str], source: str, known: frozenset[str] = PLACEHOLDERS
) -> None:
    fields = _fields(parts, source, known)
    if "app" not in fields:
        raise ProfileError(f"{source}: the command template has no {{app}} placeholder")
    if not fields & {"port", "fd"}:
        raise ProfileError(
            f"{source}: the command template needs {{port}} or {{fd}} to bind the server"
        )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where} must be a list of strings")
    return tuple(value)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where} must be a table")
    return value


def parse_profile(data: Mapping[str, Any], source: str) -> Profile:
    """Build a profile from parsed TOML, with one-line errors naming the file."""
    try:
        name = data["name"]
        command = _strings(data["command"], f"{source}: command")
    except KeyError as exc:
        raise ProfileError(f"{source}: missing key {exc.args[0]!r}") from None
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProfileError(f"{source}: bad server name {name!r}")
    _check_template(command, source)
    offers = _table(data.get("offers", {}), f"{source}: offers")
    options = _table(data.get("options", {}), f"{source}: options")
    package = data.get("package")
    if package is not None and not isinstance(package, str):
        raise ProfileError(f"{source}: package must be a string")
    lifespan = offers.get("lifespan", False)
    if not isinstance(lifespan, bool):
        raise ProfileError(f"{source}: offers.lifespan must be true or false")
    variants: dict[str, tuple[str, ...]] = {}
    summaries: dict[str, str] = {}
    for variant, spec in _table(data.get("variants", {}), f"{source}: variants").items():
        if not _NAME.match(variant):
            raise ProfileError(f"{source}: bad variant name {variant!r}")
        spec = _table(spec, f"{source}: variants.{variant}")
        variants[variant] = _strings(spec.get("args", []), f"{source}: variants.{variant}.args")
        summaries[variant] = str(spec.get("summary", ""))
    columns = {
        name: _protocol_column(name, spec, command, source)
        for name, spec in _table(data.get("protocols", {}), f"{source}: protocols").items()
    }
    for column in columns.values():
        missing = sorted(set(column.variants or ()) - set(variants))
        if missing:
            raise ProfileError(
                f"{source}: protocols.{column.name}.variants names unknown variant(s) "
                f"{', '.join(missing)}"
            )
    return Profile(
        name=name,
        command=command,
        summary=str(data.get("summary", "")),
        package=package,
        protocols=_strings(
            offers.get("protocols", ["http/1.0", "http/1.1"]), f"{source}: offers.protocols"
        ),
        lifespan=lifespan,
        extensions=_strings(offers.get("extensions", []), f"{source}: offers.extensions"),
        root_path_args=_strings(options["root_path"], f"{source}: options.root_path")
        if "root_path" in options
        else None,
        asgi2_args=_strings(options["asgi2"], f"{source}: options.asgi2")
        if "asgi2" in options
        else None,
        variants=variants,
        variant_summaries=summaries,
        protocol_columns=columns,
        source=source,
    )


def _protocol_column(name: str, spec: Any, command: Sequence[str], source: str) -> ProtocolColumn:
    where = f"{source}: protocols.{name}"
    if not _NAME.match(name) or name == "*":
        raise ProfileError(f"{source}: bad protocol column name {name!r}")
    spec = _table(spec, where)
    keys = {"summary", "wire", "tls", "args", "command", "client_cert_args", "variants"}
    unknown = sorted(set(spec) - keys)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    wire = spec.get("wire", "http/1.1")
    if wire not in WIRES:
        raise ProfileError(f"{where}: wire must be one of {', '.join(WIRES)}, not {wire!r}")
    tls = spec.get("tls", False)
    if not isinstance(tls, bool):
        raise ProfileError(f"{where}: tls must be true or false")
    if wire == "h3" and not tls:
        raise ProfileError(f"{where}: an h3 column is TLS (QUIC always is): say tls = true")
    known = PLACEHOLDERS | TLS_PLACEHOLDERS if tls else PLACEHOLDERS
    if wire == "h3":
        known |= QUIC_PLACEHOLDERS
    own = _strings(spec["command"], f"{where}.command") if "command" in spec else None
    args = _strings(spec.get("args", []), f"{where}.args")
    _check_template([*(own or command), *args], where, known)
    if wire == "h3" and not _fields([*(own or command), *args], where, known) & QUIC_PLACEHOLDERS:
        raise ProfileError(
            f"{where}: an h3 column needs {{quic_fd}} or {{quic_port}} to serve QUIC on"
        )
    client = spec.get("client_cert_args")
    client_args = _strings(client, f"{where}.client_cert_args") if client is not None else None
    if client_args is not None:
        _fields(client_args, where, known)
    only = spec.get("variants")
    variants = _strings(only, f"{where}.variants") if only is not None else None
    return ProtocolColumn(
        name=name,
        wire=wire,
        tls=tls,
        args=args,
        command=own,
        client_cert_args=client_args,
        summary=str(spec.get("summary", "")),
        variants=variants,
    )


def load_profile(path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read server profile {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    return parse_profile(data, str(path))


def profiles_dir() -> Path:
    """Where the shipped profiles are: inside the wheel, or the repository's ``servers/``."""
    packaged = Path(str(resources.files("conformance"))) / "_data" / "servers"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "servers"


def builtin_profiles() -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    for path in sorted(profiles_dir().glob("*.toml")):
        profile = load_profile(path)
        found[profile.name] = profile
    return found


def _known(profiles: Mapping[str, Profile]) -> str:
    names = []
    for profile in profiles.values():
        names.append(profile.name)
        names.extend(f"{profile.name}:{v}" for v in profile.variants)
        names.extend(
            f"{profile.name}{f':{v}' if v else ''}+{p}"
            for p, column in profile.protocol_columns.items()
            for v in [None, *profile.variants]
            if column.serves(v) and (v is None or column.variants is not None)
        )
    return ", ".join(names)


#: What a template's settings may give: a profile file's keys that describe one column.
_TEMPLATE_KEYS = frozenset({"package", "summary", "offers", "options"})
_TEMPLATE_EXAMPLE = (
    'NAME{offers={lifespan=true}, options={root_path=["--root-path", "{root_path}"]}}=COMMAND'
)


def _split_template(selector: str) -> tuple[str, Mapping[str, Any], str]:
    """``NAME[{SETTINGS}]=COMMAND`` as name, settings and command.

    The settings are a TOML inline table with a profile file's keys (``package``,
    ``offers``, ``options``), so a template can say what the server offers and how
    to give it a root path without a file.  Where the table ends is where a ``}``
    followed by ``=`` closes a table TOML can read: the command may hold braces too.
    """
    match = _TEMPLATE_HEAD.match(selector)
    if match is None or match.group(2) == "=":
        name, _, command = selector.partition("=")
        return name.strip(), {}, command
    name, start = match.group(1), match.end(2) - 1
    error = "no closing '}=' before the command"
    for end in re.finditer(r"\}\s*=", selector[start:]):
        text = selector[start : start + end.start() + 1]
        try:
            settings = tomllib.loads(f"settings = {text}")["settings"]
        except tomllib.TOMLDecodeError as exc:
            error = str(exc)
            continue
        return name, settings, selector[start + end.end() :]
    raise ProfileError(
        f"--asgi-server {name}: cannot read the template's settings ({error}); "
        f"write them as a TOML inline table, {_TEMPLATE_EXAMPLE}, or use a profile .toml file"
    )


def _from_template(selector: str) -> Profile:
    name, settings, template = _split_template(selector)
    if not _NAME.match(name):
        raise ProfileError(f"bad server name {name!r} in --asgi-server {selector!r}")
    unknown = sorted(set(settings) - _TEMPLATE_KEYS)
    if unknown:
        raise ProfileError(
            f"--asgi-server {name}: a template's settings take {', '.join(sorted(_TEMPLATE_KEYS))}, "
            f"not {', '.join(unknown)}; variants and protocol columns need a profile .toml file"
        )
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise ProfileError(
            f"--asgi-server {name}: cannot split the command template: {exc}"
        ) from None
    if not parts:
        raise ProfileError(f"--asgi-server {name}: the command template is empty")
    source = f"--asgi-server {name}"
    _check_template(parts, source)
    data = {"name": name, "command": parts, **settings}
    data.setdefault("package", _guess_package(name, parts))
    profile = parse_profile(data, source)
    return dataclasses.replace(profile, source="<command line>")


def resolve_remote(selector: str) -> Target:
    """An ``--asgi-url`` value, ``[NAME[{SETTINGS}]=]http://HOST:PORT``, as a column.

    The settings are a template's (``package`` names the version to record); the
    column is cleartext HTTP/1.1, named ``remote`` unless named.
    """
    name, url = "remote", selector.strip()
    settings: Mapping[str, Any] = {}
    if _TEMPLATE_HEAD.match(url) and not url.startswith(("http:", "https:")):
        name, settings, url = _split_template(url)
        name, url = name.strip(), url.strip()
    source = f"--asgi-url {name}"
    if not _NAME.match(name):
        raise ProfileError(f"bad server name {name!r} in --asgi-url {selector!r}")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http":
        raise ProfileError(
            f"{source}: {url!r} is not an http:// URL (the remote target is judged over "
            "cleartext HTTP/1.1)"
        )
    try:
        port = parsed.port
    except ValueError as exc:
        raise ProfileError(f"{source}: {url!r}: {exc}") from None
    if not parsed.hostname or port is None or parsed.path not in ("", "/"):
        raise ProfileError(f"{source}: {url!r} must be http://HOST:PORT, with no path")
    unknown = sorted(set(settings) - {"package", "summary"})
    if unknown:
        raise ProfileError(
            f"{source}: a remote target's settings take package, summary, not {', '.join(unknown)}"
        )
    profile = Profile(
        name=name,
        command=(url,),
        summary=str(settings.get("summary", "")),
        package=settings.get("package") if isinstance(settings.get("package"), str) else None,
        source="--asgi-url",
        url=f"http://{parsed.netloc}",
    )
    return Target(profile)


def channel_address(value: str) -> tuple[str, int]:
    """``--asgi-channel HOST:PORT``: where a remote target's probe app reports."""
    host, _, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProfileError(f"--asgi-channel {value!r}: expected HOST:PORT, such as 127.0.0.1:8765")
    return host, int(port)


def _guess_package(name: str, command: Sequence[str]) -> str | None:
    """The distribution a template's command runs, for the matrix's version column.

    ``python -m MODULE`` is MODULE's distribution; a console script is the
    distribution that installs it; else a distribution named like the template.
    None when nothing installed matches: the version is then "unknown".
    """
    words = [part for part in command if "{" not in part]
    if "-m" in command[:-1]:
        module = command[command.index("-m") + 1].split(".")[0]
        for dist in metadata.packages_distributions().get(module, ()):
            return dist
    if words:
        script = Path(words[0]).name
        for entry in metadata.entry_points(group="console_scripts", name=script):
            if entry.dist is not None:
                return entry.dist.name
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    return name


def resolve_targets(selectors: Sequence[str]) -> list[Target]:
    """Turn ``--asgi-server`` values into matrix columns, in the order given.

    ``uvicorn``, ``uvicorn:h11``, ``uvicorn:*`` (the default and every variant),
    ``hypercorn+h2`` (a protocol column), ``hypercorn+*`` (cleartext HTTP/1.1 and
    every protocol column), ``NAME=COMMAND {host} {port} {app}`` or a path to a
    ``.toml`` profile (``PATH.toml:VARIANT+PROTOCOL`` alike).
    """
    builtin: dict[str, Profile] | None = None
    targets: list[Target] = []
    for selector in selectors:
        selector = selector.strip()
        head = selector.split(None, 1)[0] if selector else ""
        if "=" in head or _TEMPLATE_HEAD.match(selector):
            targets.append(Target(_from_template(selector)))
            continue
        if ".toml" in selector:
            path_part, _, rest = selector.rpartition(".toml")
            if rest and rest[0] not in ":+":
                raise ProfileError(
                    f"cannot read {selector!r}: expected PATH.toml, PATH.toml:VARIANT "
                    "or PATH.toml+PROTOCOL"
                )
            profile = load_profile(Path(path_part + ".toml"))
            variant, _, protocol = rest.partition("+")
            targets.extend(_columns(profile, variant[1:] or None, protocol or None, selector))
            continue
        if builtin is None:
            builtin = builtin_profiles()
        head, _, protocol = selector.partition("+")
        name, _, variant = head.partition(":")
        if name not in builtin:
            raise ProfileError(
                f"unknown ASGI server {selector!r}; known: {_known(builtin)}; "
                "or give NAME='COMMAND {host} {port} {app}' or a profile .toml path"
            )
        targets.extend(_columns(builtin[name], variant or None, protocol or None, selector))
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProfileError(f"server selected twice: {', '.join(duplicates)}")
    return targets


def _columns(
    profile: Profile, variant: str | None, protocol: str | None, selector: str
) -> list[Target]:
    """Every column ``selector`` names: its variants, each with its protocols."""
    if variant is None:
        variants: list[str | None] = [None]
    elif variant == "*":
        variants = [None, *profile.variants]
    elif variant in profile.variants:
        variants = [variant]
    else:
        known = ", ".join(profile.variants) or "none"
        raise ProfileError(f"unknown variant {selector!r}; variants of {profile.name}: {known}")
    columns = profile.protocol_columns
    if protocol is None:
        protocols: list[str | None] = [None]
    elif protocol == "*":
        protocols = [None, *columns]
    elif protocol in columns:
        only = columns[protocol].variants
        if variant != "*" and not columns[protocol].serves(variant):
            raise ProfileError(
                f"{selector!r}: {profile.name} serves {protocol} only as "
                + " or ".join(f"{profile.name}:{v}+{protocol}" for v in only or ())
            )
        protocols = [protocol]
    else:
        known = ", ".join(columns) or "none"
        raise ProfileError(
            f"unknown protocol {selector!r}; protocol columns of {profile.name}: {known}"
        )
    return [
        Target(profile, v, p)
        for v in variants
        for p in protocols
        if p is None or columns[p].serves(v)
    ]
