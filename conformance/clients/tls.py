"""The session's certificates, made once with trustme: a CA, the server's, a client's.

Servers are given the server certificate and key as files (a profile's
``{certfile}`` and ``{keyfile}``; ``{ca_certs}`` for servers asked to verify
client certificates); the clients trust the CA and, for mutual TLS, present the
client certificate.  A second CA, which no server is given, signs a *stranger*
client certificate with the same subject: the one a server cannot verify
(tls.rst ``client_cert_error``).  Everything lives in a directory of the session
and is made on first use: a run without TLS columns never imports trustme.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


__all__ = ["CLIENT_NAME", "ClientCert", "TLSMaterial", "client_context", "session_material"]

#: The certificate the client presents: ``"session"``, signed by the CA the server was
#: given as ``{ca_certs}``; ``"stranger"``, signed by a CA it was never given; None: none.
ClientCert = Literal["session", "stranger"] | None

#: The client certificate's subject common name (what ``client_cert_name`` should carry).
CLIENT_NAME = "asgi-conformance client"


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the PEM files of one session."""

    ca_cert: Path
    server_cert: Path  # the leaf, then the chain
    server_key: Path
    client_cert: Path
    client_key: Path
    #: The CA no server is given, and the client certificate it signed (same subject).
    stranger_ca_cert: Path
    stranger_cert: Path
    stranger_key: Path

    def placeholders(self) -> dict[str, str]:
        """The command-template values for a server that serves TLS."""
        return {
            "certfile": str(self.server_cert),
            "keyfile": str(self.server_key),
            "ca_certs": str(self.ca_cert),
        }


_lock = threading.Lock()
_made: dict[Path, TLSMaterial] = {}


def session_material(directory: Path) -> TLSMaterial:
    """The material in ``directory``, made there on first use."""
    with _lock:
        if directory not in _made:
            _made[directory] = _make(directory)
        return _made[directory]


def _make(directory: Path) -> TLSMaterial:
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="asgi-conformance test CA")
    server = ca.issue_cert("127.0.0.1", "::1", "localhost")
    client = ca.issue_cert("client.asgi-conformance.test", common_name=CLIENT_NAME)
    stranger_ca = trustme.CA(organization_name="asgi-conformance stranger CA")
    stranger = stranger_ca.issue_cert("client.asgi-conformance.test", common_name=CLIENT_NAME)
    material = TLSMaterial(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        stranger_ca_cert=directory / "stranger-ca.pem",
        stranger_cert=directory / "stranger.pem",
        stranger_key=directory / "stranger.key",
    )
    ca.cert_pem.write_to_path(str(material.ca_cert))
    stranger_ca.cert_pem.write_to_path(str(material.stranger_ca_cert))
    for leaf, cert, key in (
        (server, material.server_cert, material.server_key),
        (client, material.client_cert, material.client_key),
        (stranger, material.stranger_cert, material.stranger_key),
    ):
        leaf.private_key_pem.write_to_path(str(key))
        with open(cert, "wb") as out:  # the leaf, then the chain
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
    return material


def client_context(
    material: TLSMaterial, alpn: list[str], *, client_cert: ClientCert = None
) -> ssl.SSLContext:
    """A client context that trusts the session CA, offers ``alpn``, and presents the
    ``client_cert`` certificate, if any."""
    context = ssl.create_default_context(cafile=str(material.ca_cert))
    context.set_alpn_protocols(alpn)
    if client_cert == "session":
        context.load_cert_chain(str(material.client_cert), str(material.client_key))
    elif client_cert == "stranger":
        context.load_cert_chain(str(material.stranger_cert), str(material.stranger_key))
    return context
