"""Server selection: ``--asgi-server`` values become matrix columns (``conformance._profiles``).

Every error is a one-line :class:`ProfileError` naming what was given and what would work,
because the plugin turns it into a pytest usage error verbatim.
"""

from __future__ import annotations

import shlex
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from conformance._profiles import (
    PLACEHOLDERS,
    Profile,
    ProfileError,
    Target,
    builtin_profiles,
    load_profile,
    parse_profile,
    resolve_targets,
)


BUILTIN = ("daphne", "granian", "hypercorn", "uvicorn")

PROFILE_TOML = """\
name = "myserver"
summary = "my own server"
command = ["{python}", "-m", "myserver", "--fd", "{fd}", "{app}"]

[offers]
protocols = ["http/1.1", "http/2"]
lifespan = true
extensions = ["http.response.trailers"]

[options]
root_path = ["--root-path", "{root_path}"]

[variants.fast]
summary = "the fast parser"
args = ["--parser", "fast"]

[variants.slow]
args = ["--parser", "slow"]
"""


@pytest.fixture
def profile_path(tmp_path: Path) -> Path:
    path = tmp_path / "myserver.toml"
    path.write_text(PROFILE_TOML, encoding="utf-8")
    return path


def _names(selectors: list[str]) -> list[str]:
    return [t.name for t in resolve_targets(selectors)]


# -- the shipped profiles ------------------------------------------------------------------


def test_shipped_profiles_are_all_found_and_valid() -> None:
    profiles = builtin_profiles()
    assert tuple(profiles) == BUILTIN
    for name, profile in profiles.items():
        assert profile.name == name
        assert profile.package == name
        assert profile.source.endswith(f"{name}.toml")
        assert "{app}" in profile.command
        assert profile.binds_fd or any("{port}" in part for part in profile.command)


def test_a_builtin_name_is_one_column_without_variant() -> None:
    [target] = resolve_targets(["uvicorn"])
    assert (target.name, target.variant, target.extra_args) == ("uvicorn", None, ())
    assert target.profile == builtin_profiles()["uvicorn"]


def test_a_variant_is_its_own_column_with_its_arguments() -> None:
    [target] = resolve_targets(["uvicorn:h11"])
    assert target.name == "uvicorn:h11"
    assert target.extra_args == ("--http", "h11")
    assert target.command_template()[-2:] == ["--http", "h11"]


def test_star_selects_the_profile_and_every_variant_in_file_order() -> None:
    variants = list(builtin_profiles()["uvicorn"].variants)
    assert _names(["uvicorn:*"]) == ["uvicorn", *(f"uvicorn:{v}" for v in variants)]
    assert "uvicorn:h11" in _names(["uvicorn:*"])


def test_columns_keep_the_order_given() -> None:
    assert _names(["hypercorn", "uvicorn:h11", "daphne", "uvicorn"]) == [
        "hypercorn",
        "uvicorn:h11",
        "daphne",
        "uvicorn",
    ]


def test_surrounding_whitespace_is_ignored() -> None:
    assert _names(["  uvicorn  "]) == ["uvicorn"]


def test_describe_is_the_servers_entry_of_the_matrix() -> None:
    [target] = resolve_targets(["granian:http1"])
    info = target.describe()
    assert info["name"] == "granian:http1"
    assert info["profile"] == "granian"
    assert info["variant"] == "http1"
    assert info["version"] == metadata.version("granian")
    assert info["protocol"] == "http/1.1"
    assert shlex.split(info["command"])[-2:] == ["--http", "1"]
    assert info["offers"]["lifespan"] is True
    assert "http/2" in info["offers"]["protocols"]


def test_binds_fd_follows_the_template() -> None:
    profiles = builtin_profiles()
    assert profiles["uvicorn"].binds_fd
    assert not profiles["granian"].binds_fd


def test_version_of_a_missing_or_unnamed_package() -> None:
    assert Profile(name="x", command=("{port}", "{app}")).version() == "unknown"
    missing = Profile(name="x", command=("{port}", "{app}"), package="no-such-dist-zz9")
    assert missing.version() == "not installed"


# -- command templates ---------------------------------------------------------------------


def test_a_template_is_one_column_named_before_the_equals_sign() -> None:
    [target] = resolve_targets(["mine=python -m mine --host {host} --port {port} {app}"])
    assert target.name == "mine"
    assert target.profile.command == (
        "python",
        "-m",
        "mine",
        "--host",
        "{host}",
        "--port",
        "{port}",
        "{app}",
    )
    assert target.profile.source == "<command line>"
    assert not target.profile.binds_fd


def test_a_template_is_split_like_a_shell_would() -> None:
    [target] = resolve_targets(['mine={python} -c "import x; x.run()" {fd} {app}'])
    assert target.profile.command == ("{python}", "-c", "import x; x.run()", "{fd}", "{app}")
    assert target.profile.binds_fd


def test_equals_signs_in_the_command_stay_in_the_command() -> None:
    [target] = resolve_targets(["mine=serve --opt=a=b {port} {app}"])
    assert target.profile.command == ("serve", "--opt=a=b", "{port}", "{app}")


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            "x=python -m foo {port}",
            "--asgi-server x: the command template has no {app} placeholder",
        ),
        (
            "x=python -m foo {app}",
            "--asgi-server x: the command template needs {port} or {fd} to bind the server",
        ),
        (
            "x=python {port} {app} {bogus} {other}",
            "--asgi-server x: unknown placeholder(s) {bogus}, {other} in the command template; "
            "known: {app}, {fd}, {host}, {port}, {python}",
        ),
        (
            "x=python {port {app}",
            "--asgi-server x: bad command template '{port': expected '}' before end of string",
        ),
        (
            "x=python {port} {app}}",
            "--asgi-server x: bad command template '{app}}': Single '}' encountered in format string",
        ),
        (
            "x=python 'unclosed {port} {app}",
            "--asgi-server x: cannot split the command template: No closing quotation",
        ),
        ("x=", "--asgi-server x: the command template is empty"),
        ("x=   ", "--asgi-server x: the command template is empty"),
        ("my!server=python {port} {app}", "bad server name 'my!server' in --asgi-server "),
        ("=python {port} {app}", "bad server name '' in --asgi-server "),
        (":x=python {port} {app}", "bad server name ':x' in --asgi-server "),
    ],
)
def test_bad_templates_are_refused_with_one_line(selector: str, message: str) -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets([selector])
    text = str(excinfo.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_a_template_carries_offers_and_options_as_a_profile_file_would() -> None:
    selector = (
        'mine{package = "uvicorn", offers = {lifespan = true, protocols = ["http/1.1", '
        '"websocket"]}, options = {root_path = ["--root-path", "{root_path}"]}}'
        "={python} -m mine --fd {fd} {app}"
    )
    [target] = resolve_targets([selector])
    assert target.name == "mine"
    assert target.profile.command == ("{python}", "-m", "mine", "--fd", "{fd}", "{app}")
    assert target.profile.lifespan
    assert target.profile.protocols == ("http/1.1", "websocket")
    assert target.profile.root_path_args == ("--root-path", "{root_path}")
    assert target.profile.source == "<command line>"
    assert target.describe()["version"] == metadata.version("uvicorn")


def test_a_template_without_settings_offers_nothing_optional() -> None:
    [target] = resolve_targets(["mine=serve {port} {app}"])
    assert not target.profile.lifespan
    assert target.profile.root_path_args is None


@pytest.mark.parametrize(
    ("feature", "setting"),
    [
        ("root_path", 'mine{options={root_path=["--root-path", "{root_path}"]}}=COMMAND'),
        ("lifespan", "mine{offers={lifespan=true}}=COMMAND"),
        ("websocket", 'mine{offers={protocols=["websocket"]}}=COMMAND'),
        ("websocket.http.response", 'mine{offers={extensions=["websocket.http.response"]}}'),
    ],
)
def test_what_a_template_does_not_offer_says_how_it_would(feature: str, setting: str) -> None:
    [target] = resolve_targets(["mine=serve {port} {app}"])
    assert not target.profile.offers(feature)
    reason = target.profile.not_offered(feature, target.name)
    assert reason.startswith(f"mine does not offer {feature} (per its template)")
    assert setting in reason
    # Said so in its settings, the template offers it.
    [claimed] = resolve_targets(
        [
            setting.replace("COMMAND", "serve {port} {app}")
            if setting.endswith("COMMAND")
            else setting + "=serve {port} {app}"
        ]
    )
    assert claimed.profile.offers(feature)


def test_what_a_profile_does_not_offer_is_per_its_profile() -> None:
    profile = builtin_profiles()["daphne"]
    assert not profile.offers("lifespan")
    assert (
        profile.not_offered("lifespan", "daphne")
        == "daphne does not offer lifespan (per its profile)"
    )


@pytest.mark.parametrize(
    ("command", "package"),
    [
        ("{python} -m uvicorn --fd {fd} {app}", "uvicorn"),  # python -m MODULE
        ("uvicorn --fd {fd} {app}", "uvicorn"),  # a console script
        ("/opt/bin/hypercorn --bind fd://{fd} {app}", "hypercorn"),
        ("{python} serve.py {port} {app}", None),  # nothing installed says what it is
    ],
)
def test_a_template_records_the_version_of_what_its_command_runs(
    command: str, package: str | None
) -> None:
    [target] = resolve_targets([f"mine={command}"])
    expected = metadata.version(package) if package else "unknown"
    assert target.describe()["version"] == expected


def test_a_template_named_like_a_distribution_has_its_version() -> None:
    [target] = resolve_targets(["daphne={python} serve.py {port} {app}"])
    assert target.describe()["version"] == metadata.version("daphne")


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            "x{offers={lifespan=true}=serve {port} {app}",
            "--asgi-server x: cannot read the template's settings (",
        ),
        (
            "x{variants={h11={args=[]}}}=serve {port} {app}",
            "--asgi-server x: a template's settings take offers, options, package, summary, "
            "not variants; variants and protocol columns need a profile .toml file",
        ),
        (
            'x{offers={lifespan="yes"}}=serve {port} {app}',
            "--asgi-server x: offers.lifespan must be true or false",
        ),
        (
            'x{options={root_path="--root-path"}}=serve {port} {app}',
            "--asgi-server x: options.root_path must be a list of strings",
        ),
    ],
)
def test_bad_template_settings_are_refused_with_one_line(selector: str, message: str) -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets([selector])
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_the_settings_error_shows_how_to_write_them() -> None:
    with pytest.raises(ProfileError, match=r"NAME\{offers=\{lifespan=true\}"):
        resolve_targets(["x{offers=}=serve {port} {app}"])


def test_the_placeholders_are_the_documented_ones() -> None:
    assert frozenset({"host", "port", "fd", "app", "python"}) == PLACEHOLDERS


# -- profile files -------------------------------------------------------------------------


def test_a_profile_file_is_a_column(profile_path: Path) -> None:
    [target] = resolve_targets([str(profile_path)])
    profile = target.profile
    assert target.name == "myserver"
    assert profile.source == str(profile_path)
    assert profile.summary == "my own server"
    assert profile.protocols == ("http/1.1", "http/2")
    assert profile.lifespan is True
    assert profile.extensions == ("http.response.trailers",)
    assert profile.root_path_args == ("--root-path", "{root_path}")
    assert profile.asgi2_args is None
    assert profile.binds_fd
    assert dict(profile.variants) == {"fast": ("--parser", "fast"), "slow": ("--parser", "slow")}
    assert dict(profile.variant_summaries) == {"fast": "the fast parser", "slow": ""}


def test_a_profile_file_with_a_variant_or_star(profile_path: Path) -> None:
    assert _names([f"{profile_path}:slow"]) == ["myserver:slow"]
    assert _names([f"{profile_path}:*"]) == ["myserver", "myserver:fast", "myserver:slow"]


def test_a_minimal_profile_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text('name = "tiny"\ncommand = ["tiny", "{port}", "{app}"]\n', encoding="utf-8")
    profile = load_profile(path)
    assert profile.protocols == ("http/1.0", "http/1.1")
    assert (profile.lifespan, profile.extensions, profile.package) == (False, (), None)
    assert (profile.root_path_args, profile.asgi2_args, dict(profile.variants)) == (
        None,
        None,
        {},
    )


def test_a_missing_profile_file() -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets(["missing.toml"])
    assert (
        str(excinfo.value) == "cannot read server profile missing.toml: No such file or directory"
    )


def test_a_directory_is_not_a_profile(tmp_path: Path) -> None:
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(
        ProfileError, match=r"^cannot read server profile .*dir\.toml: Is a directory$"
    ):
        resolve_targets([str(folder)])


def test_an_unknown_variant_of_a_profile_file(profile_path: Path) -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets([f"{profile_path}:nope"])
    assert str(excinfo.value) == (
        f"unknown variant '{profile_path}:nope'; variants of myserver: fast, slow"
    )


def test_text_after_toml_must_be_a_variant(profile_path: Path) -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets([f"{profile_path}x"])
    assert str(excinfo.value) == (
        f"cannot read '{profile_path}x': expected PATH.toml, PATH.toml:VARIANT "
        "or PATH.toml+PROTOCOL"
    )


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n", encoding="utf-8")
    with pytest.raises(ProfileError, match=rf"^{path}: not valid TOML: "):
        load_profile(path)


_BASE: dict[str, Any] = {"name": "x", "command": ["{python}", "{port}", "{app}"]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"command": ["{port}", "{app}"]}, "p.toml: missing key 'name'"),
        ({"name": "x"}, "p.toml: missing key 'command'"),
        ({"name": 3, "command": ["{port}", "{app}"]}, "p.toml: bad server name 3"),
        ({"name": "a b", "command": ["{port}", "{app}"]}, "p.toml: bad server name 'a b'"),
        ({"name": "x", "command": "x {port} {app}"}, "p.toml: command must be a list of strings"),
        ({"name": "x", "command": ["x", 1]}, "p.toml: command must be a list of strings"),
        ({"name": "x", "command": []}, "p.toml: the command template has no {app} placeholder"),
        ({**_BASE, "offers": "x"}, "p.toml: offers must be a table"),
        ({**_BASE, "options": 3}, "p.toml: options must be a table"),
        ({**_BASE, "variants": "x"}, "p.toml: variants must be a table"),
        ({**_BASE, "variants": {"h11": "x"}}, "p.toml: variants.h11 must be a table"),
        ({**_BASE, "variants": {"a b": {}}}, "p.toml: bad variant name 'a b'"),
        (
            {**_BASE, "variants": {"v": {"args": "--x"}}},
            "p.toml: variants.v.args must be a list of strings",
        ),
        ({**_BASE, "package": 3}, "p.toml: package must be a string"),
        ({**_BASE, "offers": {"lifespan": "no"}}, "p.toml: offers.lifespan must be true or false"),
        (
            {**_BASE, "offers": {"protocols": "http/1.1"}},
            "p.toml: offers.protocols must be a list of strings",
        ),
        (
            {**_BASE, "offers": {"extensions": [1]}},
            "p.toml: offers.extensions must be a list of strings",
        ),
        (
            {**_BASE, "options": {"root_path": "--root-path"}},
            "p.toml: options.root_path must be a list of strings",
        ),
        (
            {**_BASE, "options": {"asgi2": None}},
            "p.toml: options.asgi2 must be a list of strings",
        ),
    ],
)
def test_malformed_profiles_are_refused_with_one_line(data: dict[str, Any], message: str) -> None:
    """Never an AttributeError or TypeError: the user sees which key of which file is wrong."""
    with pytest.raises(ProfileError) as excinfo:
        parse_profile(data, "p.toml")
    assert str(excinfo.value) == message


def test_root_path_placeholder_is_allowed_in_a_profile() -> None:
    profile = parse_profile(
        {"name": "x", "command": ["x", "{port}", "--prefix", "{root_path}", "{app}"]}, "p.toml"
    )
    assert "{root_path}" in profile.command


# -- names, variants and duplicates ---------------------------------------------------------


def test_an_unknown_name_lists_every_known_column() -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets(["nope"])
    message = str(excinfo.value)
    assert message.startswith("unknown ASGI server 'nope'; known: ")
    assert message.endswith("; or give NAME='COMMAND {host} {port} {app}' or a profile .toml path")
    listed = message.split("known: ", 1)[1].split("; or", 1)[0].split(", ")
    for profile in builtin_profiles().values():
        assert {profile.name, *(f"{profile.name}:{v}" for v in profile.variants)} <= set(listed)
        for protocol, column in profile.protocol_columns.items():
            # A column limited to some variants is listed with them (uvicorn:zttp+h2).
            heads = (
                [f"{profile.name}:{v}" for v in column.variants or [None]]
                if column.variants
                else [profile.name]
            )
            assert {f"{head}+{protocol}" for head in heads} <= set(listed)
    # Every name listed resolves.
    assert [t.name for t in resolve_targets(listed)] == listed


def test_an_unknown_variant_lists_the_variants() -> None:
    variants = ", ".join(builtin_profiles()["uvicorn"].variants)
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets(["uvicorn:nope"])
    assert str(excinfo.value) == f"unknown variant 'uvicorn:nope'; variants of uvicorn: {variants}"


def test_a_profile_without_variants_says_none(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text('name = "tiny"\ncommand = ["tiny", "{port}", "{app}"]\n', encoding="utf-8")
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets([f"{path}:fast"])
    assert str(excinfo.value).endswith("; variants of tiny: none")
    assert _names([f"{path}:*"]) == ["tiny"]


@pytest.mark.parametrize(
    ("selectors", "duplicates"),
    [
        (["uvicorn", "uvicorn"], "uvicorn"),
        (["uvicorn", "uvicorn:*"], "uvicorn"),
        (["uvicorn:h11", "uvicorn:*", "daphne"], "uvicorn:h11"),
        (["daphne", "hypercorn", "hypercorn", "daphne"], "daphne, hypercorn"),
        (["uvicorn", "uvicorn={python} -m uvicorn --port {port} {app}"], "uvicorn"),
    ],
)
def test_a_column_selected_twice_is_refused(selectors: list[str], duplicates: str) -> None:
    """Two columns of one name would merge into one in the matrix."""
    with pytest.raises(ProfileError) as excinfo:
        resolve_targets(selectors)
    assert str(excinfo.value) == f"server selected twice: {duplicates}"


def test_target_name_and_arguments() -> None:
    profile = Profile(name="p", command=("p", "{port}", "{app}"), variants={"v": ("--v",)})
    assert Target(profile).name == "p"
    assert Target(profile, "v").name == "p:v"
    assert Target(profile, "v").command_template() == ["p", "{port}", "{app}", "--v"]


# -- protocol columns -------------------------------------------------------------------------


COLUMNS = {
    "name": "srv",
    "command": ["srv", "--fd", "{fd}", "{app}"],
    "variants": {"fast": {"args": ["--fast"]}},
    "protocols": {
        "h2": {
            "wire": "h2",
            "tls": True,
            "args": ["--cert", "{certfile}", "--key", "{keyfile}"],
            "client_cert_args": ["--ca", "{ca_certs}"],
        },
        "h2c": {"wire": "h2", "args": ["--h2c"]},
    },
}


def test_a_protocol_column_adds_its_arguments_after_the_variants() -> None:
    profile = parse_profile(COLUMNS, "p.toml")
    target = Target(profile, "fast", "h2")
    assert target.name == "srv:fast+h2"
    assert (target.wire, target.tls) == ("h2", True)
    assert target.command_template() == [
        "srv", "--fd", "{fd}", "{app}", "--fast", "--cert", "{certfile}", "--key", "{keyfile}"
    ]  # fmt: skip
    assert target.describe()["protocol"] == "h2"
    assert target.describe()["tls"] is True


def test_the_plain_name_is_cleartext_http11() -> None:
    target = Target(parse_profile(COLUMNS, "p.toml"))
    assert (target.name, target.wire, target.tls) == ("srv", "http/1.1", False)


def test_plus_star_selects_cleartext_and_every_protocol_column(tmp_path: Path) -> None:
    path = tmp_path / "srv.toml"
    path.write_text(
        'name = "srv"\ncommand = ["srv", "--fd", "{fd}", "{app}"]\n'
        '[variants.fast]\nargs = ["--fast"]\n'
        '[protocols.h2]\nwire = "h2"\ntls = true\nargs = ["--cert", "{certfile}"]\n'
        '[protocols.h2c]\nwire = "h2"\n',
        encoding="utf-8",
    )
    names = [t.name for t in resolve_targets([f"{path}+*"])]
    assert names == ["srv", "srv+h2", "srv+h2c"]
    assert [t.name for t in resolve_targets([f"{path}:fast+h2c"])] == ["srv:fast+h2c"]


def test_an_unknown_protocol_names_the_columns_there_are() -> None:
    with pytest.raises(ProfileError, match=r"protocol columns of hypercorn: https, h2, h2c, h3"):
        resolve_targets(["hypercorn+h4"])


def test_an_h3_column_serves_quic_on_a_socket_of_the_suites() -> None:
    [target] = resolve_targets(["hypercorn+h3"])
    assert (target.wire, target.tls, target.binds_quic_fd) == ("h3", True, True)
    assert "fd://{quic_fd}" in target.command_template()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"wire": "h4"}, "wire must be one of http/1.1, h2, h3, not 'h4'"),
        ({"wire": "h3"}, "an h3 column is TLS"),
        ({"wire": "h3", "tls": True, "args": ["--cert", "{certfile}"]}, "needs {quic_fd} or"),
        ({"wire": "h2", "tls": True, "args": ["--quic", "{quic_fd}"]}, "quic_fd"),
        ({"wire": "h2", "tls": True, "args": ["--cert", "{nope}"]}, "nope"),
        ({"wire": "h2", "colour": "red"}, "colour"),
        ({"wire": "h2", "args": ["--cert", "{certfile}"]}, "certfile"),
    ],
)
def test_malformed_protocol_columns_are_refused(spec: dict[str, Any], message: str) -> None:
    data = {"name": "srv", "command": ["srv", "{port}", "{app}"], "protocols": {"x": spec}}
    with pytest.raises(ProfileError, match=message):
        parse_profile(data, "p.toml")


def test_a_column_limited_to_a_variant_says_how_to_select_it() -> None:
    with pytest.raises(ProfileError, match=r"uvicorn serves h2 only as uvicorn:zttp\+h2"):
        resolve_targets(["uvicorn+h2"])
    assert [t.name for t in resolve_targets(["uvicorn+*"])] == ["uvicorn", "uvicorn+https"]
    assert [t.name for t in resolve_targets(["uvicorn:zttp+*"])] == [
        "uvicorn:zttp", "uvicorn:zttp+https", "uvicorn:zttp+h2", "uvicorn:zttp+h2c"
    ]  # fmt: skip
