"""Auth objects with the same TLS settings share one SSL context."""

from __future__ import annotations

import ssl

from authplug._call import transport as transport_module
from authplug.providers import PROVIDERS
from authplug.testing import MogoplusEmulator


def test_auth_objects_share_one_ssl_context_per_setting() -> None:
    """Fifty auth objects with the same TLS settings build and use one SSL context.

    A context loads a CA bundle (hundreds of kilobytes) and a client certificate; one
    per auth object would cost that fifty times. Each object makes a real mutual-TLS
    token call with it. A different ``verify`` gets a context of its own, and a
    caller's own SSLContext is used as it is.
    """
    with MogoplusEmulator() as emulator:
        kwargs = emulator.auth_kwargs()
        ca_file = kwargs["verify"]

        def settings_for(verify: object) -> list[tuple[object, ...]]:
            return [key for key in transport_module._contexts if key[0] == verify]

        assert settings_for(ca_file) == []
        auths = [PROVIDERS["mogoplus"](**kwargs) for _ in range(50)]
        for auth in auths:
            auth.get_token()
        assert emulator.token_calls == {"client_credentials": 50}
        assert len(settings_for(ca_file)) == 1
        contexts = {id(auth._client._transport._context()) for auth in auths}
        assert len(contexts) == 1
        shared = auths[0]._client._transport._context()
        assert transport_module.ssl_context(ca_file, emulator.client_cert) is shared

        without_cert = transport_module.ssl_context(ca_file, None)
        assert without_cert is not shared
        assert transport_module.ssl_context(ca_file, None) is without_cert
        assert len(settings_for(ca_file)) == 2  # one per distinct (verify, cert)

        other = PROVIDERS["mogoplus"](**{**kwargs, "verify": True})
        system = other._client._transport._context()
        assert system is not shared
        assert transport_module.ssl_context(True, emulator.client_cert) is system

        own = emulator.client_ssl_context()
        assert transport_module.ssl_context(own, None) is own
        unverified = transport_module.ssl_context(False, None)
        assert unverified.verify_mode == ssl.CERT_NONE
        assert unverified is not transport_module.ssl_context(True, None)
