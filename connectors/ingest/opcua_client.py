"""Opening an OPC UA session the way the plant file's ``[opcua]`` table says: security, certificates, user, errors.

:func:`connect` returns a connected asyncua ``Client`` or raises :class:`~fusewatch.core.errors.ServiceUnavailableError`
whose message names the server and why it refused or could not be reached (never the password); a refusal of the
security settings (an untrusted certificate, a policy the server does not offer) says so, since retrying will not
help until the server trusts the certificate or the settings change.

>>> security_of("Basic256Sha256", "SignAndEncrypt")
('SecurityPolicyBasic256Sha256', 'SignAndEncrypt')
>>> security_of("Aes128_Sha256_RsaOaep", "Sign")
('SecurityPolicyAes128Sha256RsaOaep', 'Sign')
>>> endpoint_of("opc.tcp://user:secret@127.0.0.1:4840/fusewatch")
'opc.tcp://127.0.0.1:4840'
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from fusewatch.core.errors import ConfigError, ServiceUnavailableError
from fusewatch.core.plant import Opcua

log = logging.getLogger(__name__)
SERVER_STATE = ua.NodeId.from_string(f"i={ObjectIds.Server_ServerStatus_State}")
SECURITY_REFUSALS = ("BadSecurityChecksFailed", "BadCertificate", "BadSecurityPolicyRejected", "BadSecurityMode",
                     "BadIdentityToken", "BadUserAccessDenied", "BadNoValidCertificates")


def security_of(policy: str, mode: str) -> tuple[str, str]:
    """The asyncua class name of a plant-file security policy, and the message security mode."""
    return "SecurityPolicy" + policy.replace("_", ""), mode


def endpoint_of(url: str) -> str:
    """``opc.tcp://HOST:PORT`` of a URL (no user, password or path): the source coordinates of dead letters."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"opc.tcp://{host}:{parts.port or 4840}"


def application_uri_of(certificate: Path) -> str | None:
    """The application URI in a certificate's subject alternative names (the client must present the same)."""
    data = certificate.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") \
        else x509.load_der_x509_certificate(data)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


async def configure(client: Client, opcua: Opcua) -> None:
    """Apply ``opcua``'s security (policy, mode, certificate, key, server certificate) and user to ``client``."""
    if opcua.security_mode != "None":
        name, mode = security_of(opcua.security_policy, opcua.security_mode)
        assert opcua.certificate is not None and opcua.private_key is not None  # the plant file checks
        for key, path in (("certificate", opcua.certificate), ("private_key", opcua.private_key),
                          ("server_certificate", opcua.server_certificate)):
            if path is not None and not path.is_file():
                raise ConfigError(f"opcua.{key}: {path} is not a file")
        uri = application_uri_of(opcua.certificate)
        if uri is not None:
            client.application_uri = uri
        await client.set_security(getattr(security_policies, name), str(opcua.certificate), str(opcua.private_key),
                                  server_certificate=None if opcua.server_certificate is None
                                  else str(opcua.server_certificate),
                                  mode=getattr(ua.MessageSecurityMode, mode))
    if opcua.username is not None:
        client.set_user(opcua.username)
        password = opcua.password("opcua")
        if password is not None:
            client.set_password(password)


async def connect(opcua: Opcua, url: str, timeout_s: float) -> Client:
    """A client connected to ``url`` with ``opcua``'s settings; :class:`ServiceUnavailableError` naming why not."""
    # asyncua's own watchdog (2.x) gives up after one probe unanswered within watchdog_intervall: as long as a
    # request may take, so that a busy server is not taken for a dead one (the bridge's probes decide)
    client = Client(url, timeout=timeout_s, watchdog_intervall=timeout_s)
    client.name = client.description = "fusewatch OPC UA bridge"
    try:
        await asyncio.wait_for(configure(client, opcua), timeout_s * 2)
        await asyncio.wait_for(client.connect(), timeout_s * 2)
    except ConfigError:
        raise
    except BaseException as exc:
        await _quietly_disconnect(client, timeout_s)
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            raise
        raise ServiceUnavailableError(f"OPC UA server {endpoint_of(url)}: {reason_of(exc, opcua)}") from None
    return client


def reason_of(exc: BaseException, opcua: Opcua) -> str:
    """Why a connection failed, in words (security refusals say which settings were refused)."""
    name = type(exc).__name__
    text = str(exc).strip()
    if isinstance(exc, UaStatusCodeError) or any(name.startswith(refusal) for refusal in SECURITY_REFUSALS):
        if any(refusal in name or refusal in text for refusal in SECURITY_REFUSALS):
            return (f"refused the connection ({name}: {text}); security policy {opcua.security_policy}, mode"
                    f" {opcua.security_mode}, certificate {opcua.certificate}: the server must offer this policy"
                    " and mode and trust this certificate")
        return f"answered {name} ({text})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionError | OSError | EOFError):
        return f"connection failed ({name}: {text or 'closed by the server'})"
    if isinstance(exc, UaError) and "endpoint" in text.lower():
        return (f"offers no endpoint with security policy {opcua.security_policy} and mode {opcua.security_mode}"
                f" ({text})")
    return f"{name}: {text}"


async def alive(client: Client, timeout_s: float) -> None:
    """Read the server's state: raises when the session is dead (the keepalive probe of the bridge)."""
    await asyncio.wait_for(client.get_node(SERVER_STATE).read_value(), timeout_s)


async def _quietly_disconnect(client: Client, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), timeout_s)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        log.debug("OPC UA disconnect: %s", exc)


disconnect = _quietly_disconnect
