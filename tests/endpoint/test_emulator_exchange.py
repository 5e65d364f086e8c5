"""The emulator's token exchange (RFC 8693) and JWT bearer grant (RFC 7523 §2.1) over raw
HTTP, as a strict server: every check, with the answer it gives when it passes and the
error it gives when it fails. JWTs are signed with joserfc by keys the emulator trusts."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authplug.testing import FakeClock, OAuth2Emulator

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
ISSUER = "https://ci.example.com"
CLIENT, SECRET = "gateway", "gateway-secret"

EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
OKP = OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"})
STRANGER = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})  # same kid, not trusted
KEYS = {
    "ec": (EC, "ES256"),
    "rsa": (RSA, "RS256"),
    "ed": (OKP, "EdDSA"),
    "ed25519": (OKP, "Ed25519"),
}


@pytest.fixture
def sts(clock: FakeClock) -> Iterator[OAuth2Emulator]:
    """A confidential client's server that trusts ISSUER's three keys."""
    jwks = {"keys": [key.as_dict(private=False) for key in (EC, RSA, OKP)]}
    with OAuth2Emulator(
        client_id=CLIENT,
        client_secret=SECRET,
        token_lifetime=3600,
        clock=clock,
        trusted_issuers={ISSUER: jwks},
    ) as emulator:
        yield emulator


def sign(claims: dict[str, Any], key: Any = EC, alg: str = "ES256") -> str:
    """A compact JWT; "EdDSA" warns in joserfc (RFC 9864) but servers still accept it."""
    header = {"alg": alg, "kid": key.kid} if key.kid else {"alg": alg}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(header, claims, key, algorithms=[alg])


def claims_for(sts: OAuth2Emulator, clock: FakeClock, **change: Any) -> dict[str, Any]:
    """Valid RFC 7523 grant claims, with ``change`` applied (None removes a claim)."""
    now = int(clock.time())
    claims = {
        "iss": ISSUER,
        "sub": "repo:acme/api",
        "aud": sts.token_url,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": f"jti-{now}-{len(change)}-{sorted(change)}",
    }
    claims.update(change)
    return {k: v for k, v in claims.items() if v is not None}


def token_call(
    sts: OAuth2Emulator, data: dict[str, Any] | list[tuple[str, str]], client: bool = True
) -> requests.Response:
    auth = (CLIENT, SECRET) if client else None
    return requests.post(sts.token_url, data=data, auth=auth, timeout=10)


def client_token(sts: OAuth2Emulator) -> str:
    return str(token_call(sts, {"grant_type": "client_credentials"}).json()["access_token"])


def api(sts: OAuth2Emulator, access: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access}"}
    return requests.get(sts.api_url(), headers=headers, timeout=10)


def refused(response: requests.Response, code: str, status: int = 400) -> str:
    """The error description of a refusal with ``code``."""
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    return str(response.json()["error_description"])


def exchange(sts: OAuth2Emulator, subject: str, subject_type: str = ACCESS, **more: str) -> Any:
    return token_call(
        sts,
        {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": subject_type}
        | more,
    )


# -- token exchange ----------------------------------------------------------------


def test_the_metadata_lists_both_grants(sts: OAuth2Emulator) -> None:
    """Discovery's grant_types_supported names token exchange and JWT bearer."""
    document = requests.get(sts.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert {EXCHANGE, JWT_BEARER} <= set(document["grant_types_supported"])


def test_an_access_token_is_exchanged_for_audiences_and_resources(sts: OAuth2Emulator) -> None:
    """An issued access token becomes a new token whose API answer names its sub and aud."""
    subject = client_token(sts)
    form = [
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
        ("audience", "orders"),
        ("audience", "billing"),
        ("resource", "https://orders.example.com/v1"),
    ]
    answer = token_call(sts, form).json()
    assert answer["issued_token_type"] == ACCESS
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600
    assert "refresh_token" not in answer
    assert "scope" not in answer
    seen = api(sts, answer["access_token"]).json()
    assert seen["sub"] == CLIENT
    assert seen["aud"] == ["orders", "billing", "https://orders.example.com/v1"]
    assert sts.issued_for(answer["access_token"]) == {
        "sub": CLIENT,
        "act": None,
        "aud": ["orders", "billing", "https://orders.example.com/v1"],
        "scope": None,
    }
    assert sts.token_calls[EXCHANGE] == 1
    assert sts.exchanges_by_audience == {"orders": 1, "billing": 1}
    assert sts.exchanges_by_resource == {"https://orders.example.com/v1": 1}
    sts.reset_counters()
    assert not sts.exchanges_by_audience
    assert not sts.exchanges_by_resource


def test_an_exchanged_token_never_outlives_its_subject(
    sts: OAuth2Emulator, clock: FakeClock
) -> None:
    """expires_in is capped at the subject's remaining life, and the API agrees."""
    subject = client_token(sts)
    clock.advance(3000)
    answer = exchange(sts, subject, audience="orders").json()
    assert answer["expires_in"] == 600
    clock.advance(599)
    assert api(sts, answer["access_token"]).status_code == 200
    clock.advance(1)
    assert api(sts, answer["access_token"]).status_code == 401
    assert "expired" in refused(exchange(sts, subject), "invalid_request")


@pytest.mark.parametrize("subject_type", [JWT, ID_TOKEN, ACCESS])
def test_a_trusted_jwt_is_exchanged(
    sts: OAuth2Emulator, clock: FakeClock, subject_type: str
) -> None:
    """A JWT of a trusted issuer is a subject token; its sub and exp carry over."""
    subject = sign(claims_for(sts, clock, aud="gateway", exp=int(clock.time()) + 120))
    answer = exchange(sts, subject, subject_type, audience="orders").json()
    assert answer["expires_in"] == 120
    assert api(sts, answer["access_token"]).json()["sub"] == "repo:acme/api"


def test_a_jwt_is_issued_when_asked_for(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """requested_token_type jwt gives a JWT signed by the emulator's key, token_type N_A
    (RFC 8693 §2.2.1): not accepted as an access token, but exchangeable again."""
    subject = exchange(sts, client_token(sts), scope="read").json()["access_token"]
    clock.advance(3000)
    actor = sign(claims_for(sts, clock, sub="spiffe://gateway"))
    answer = exchange(
        sts,
        subject,
        requested_token_type=JWT,
        audience="orders",
        actor_token=actor,
        actor_token_type=JWT,
    ).json()
    assert (answer["token_type"], answer["issued_token_type"]) == ("N_A", JWT)
    assert (answer["expires_in"], answer["scope"]) == (600, "read")
    claims = jwt.decode(answer["access_token"], ECKey.import_key(sts.jwks["keys"][0])).claims
    assert claims["iss"] == sts.issuer
    assert (claims["sub"], claims["aud"], claims["act"]) == (
        CLIENT,
        ["orders"],
        {"sub": "spiffe://gateway"},
    )
    assert claims["exp"] - claims["iat"] == 600
    assert api(sts, answer["access_token"]).status_code == 401
    again = exchange(sts, answer["access_token"], JWT, audience="billing").json()
    assert api(sts, again["access_token"]).json()["sub"] == CLIENT


def test_the_actor_is_recorded(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """An actor token (RFC 8693 §2.1) is checked and its subject recorded as act."""
    actor = sign(claims_for(sts, clock, sub="spiffe://gateway"))
    answer = exchange(sts, client_token(sts), actor_token=actor, actor_token_type=JWT).json()
    assert api(sts, answer["access_token"]).json()["act"] == "spiffe://gateway"
    broken = exchange(sts, client_token(sts), actor_token="nope", actor_token_type=JWT)
    assert refused(broken, "invalid_request").startswith("actor_token:")


def test_scope_is_answered_when_it_differs(sts: OAuth2Emulator) -> None:
    """The answer names the scope only when it is not the one asked for (§2.2.1), and a
    scope wider than the subject's is invalid_scope."""
    subject = client_token(sts)
    scoped = exchange(sts, subject, scope="read write").json()
    assert "scope" not in scoped
    narrower = exchange(sts, scoped["access_token"], scope="read").json()
    assert "scope" not in narrower
    inherited = exchange(sts, scoped["access_token"]).json()
    assert inherited["scope"] == "read write"
    refused(exchange(sts, scoped["access_token"], scope="read admin"), "invalid_scope")


def test_a_chain_of_exchanges_keeps_the_first_subject(sts: OAuth2Emulator) -> None:
    """Three hops: each exchanges the previous hop's token; sub stays, aud is the hop's."""
    token = client_token(sts)
    for hop in ("a", "b", "c"):
        token = exchange(sts, token, audience=hop).json()["access_token"]
    assert (api(sts, token).json()["sub"], api(sts, token).json()["aud"]) == (CLIENT, ["c"])
    assert sts.token_calls[EXCHANGE] == 3
    assert sts.exchanges_by_audience == {"a": 1, "b": 1, "c": 1}


def _bad_exchanges(clock: FakeClock, sts: OAuth2Emulator) -> dict[str, dict[str, str]]:
    other = sign(claims_for(sts, clock), STRANGER)
    expired = sign(claims_for(sts, clock, exp=int(clock.time()) - 1))
    untrusted = sign(claims_for(sts, clock, iss="https://evil.example.com"))
    hmac = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2NpLmV4YW1wbGUuY29tIn0.c2ln"
    return {
        "no subject_token": {"subject_token_type": ACCESS},
        "no subject_token_type": {"subject_token": "x"},
        "actor_token without type": {"actor_token": "x"},
        "actor_token_type without token": {"actor_token_type": JWT},
        "an id_token cannot be issued": {"requested_token_type": ID_TOKEN},
        "unknown access token": {"subject_token": "at-unknown"},
        "a refresh token type": {
            "subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"
        },
        "signed by a stranger": {"subject_token": other, "subject_token_type": JWT},
        "expired JWT": {"subject_token": expired, "subject_token_type": JWT},
        "untrusted issuer": {"subject_token": untrusted, "subject_token_type": JWT},
        "HMAC": {"subject_token": hmac, "subject_token_type": JWT},
        "not a JWT": {"subject_token": "a.b", "subject_token_type": ID_TOKEN},
    }


def test_each_malformed_or_invalid_exchange_is_invalid_request(
    sts: OAuth2Emulator, clock: FakeClock
) -> None:
    """RFC 8693 §2.2.2: a malformed request or an invalid subject or actor token is
    invalid_request, with a description that never repeats the token."""
    for why, change in _bad_exchanges(clock, sts).items():
        form = {
            "grant_type": EXCHANGE,
            "subject_token": client_token(sts),
            "subject_token_type": ACCESS,
        } | change
        if why.startswith("no "):
            form.pop(why[3:])
        description = refused(token_call(sts, form), "invalid_request")
        assert form.get("subject_token", "-") not in description, why
    assert sts.issued_for("at-unknown") is None


def test_only_the_token_types_it_knows_are_exchanged(sts: OAuth2Emulator) -> None:
    """A subject_token_type other than access_token, jwt and id_token is refused by name."""
    why = refused(exchange(sts, client_token(sts), REFRESH), "invalid_request")
    assert "token type" in why


def test_a_revoked_subject_is_refused(sts: OAuth2Emulator) -> None:
    """A revoked access token exchanges for nothing."""
    subject = client_token(sts)
    sts.revoke_all()
    refused(exchange(sts, subject), "invalid_request")


def test_a_parameter_sent_twice_is_refused(sts: OAuth2Emulator) -> None:
    """Only audience and resource may be repeated (RFC 6749 §3.2, RFC 8693 §2.1)."""
    subject = client_token(sts)
    form = [
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
    ]
    assert "subject_token" in refused(token_call(sts, form), "invalid_request")


@pytest.mark.parametrize(
    "target",
    [
        {"resource": "/relative"},
        {"resource": "https://orders.example.com/#frag"},
        {"audience": "not-allowed"},
        {"audience": ""},
    ],
)
def test_a_target_it_will_not_serve_is_invalid_target(
    sts: OAuth2Emulator, target: dict[str, str]
) -> None:
    """A resource that is no absolute URI, or has a fragment, or an audience outside
    allowed_targets, is invalid_target (RFC 8693 §2.2.2, RFC 8707)."""
    sts.allowed_targets = {"orders", "https://orders.example.com/"}
    assert exchange(sts, client_token(sts), audience="orders").status_code == 200
    refused(exchange(sts, client_token(sts), **target), "invalid_target")


def test_the_client_authenticates_unless_public_clients_are_allowed(
    sts: OAuth2Emulator,
) -> None:
    """A confidential client authenticates for an exchange; exchange_public_clients lets a
    client without credentials in."""
    form = {"grant_type": EXCHANGE, "subject_token": client_token(sts)}
    form["subject_token_type"] = ACCESS
    refused(token_call(sts, form, client=False), "invalid_client", 401)
    wrong = requests.post(sts.token_url, data=form, auth=(CLIENT, "wrong"), timeout=10)
    refused(wrong, "invalid_client", 401)
    sts.exchange_public_clients = True
    assert token_call(sts, form | {"client_id": CLIENT}, client=False).status_code == 200
    again = requests.post(sts.token_url, data=form, auth=(CLIENT, "wrong"), timeout=10)
    refused(again, "invalid_client", 401)  # credentials sent are still checked


# -- JWT bearer -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_a_signed_assertion_is_a_grant(sts: OAuth2Emulator, clock: FakeClock, kind: str) -> None:
    """An assertion signed by a trusted key (RS256, ES256, EdDSA, Ed25519) gets a token
    for its sub, with no client authentication needed."""
    key, alg = KEYS[kind]
    assertion = sign(claims_for(sts, clock), key, alg)
    answer = token_call(sts, {"grant_type": JWT_BEARER, "assertion": assertion}, client=False)
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600), answer.text
    assert "refresh_token" not in body
    assert api(sts, body["access_token"]).json()["sub"] == "repo:acme/api"
    assert sts.token_calls[JWT_BEARER] == 1


def test_the_issuer_is_an_audience_too(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """aud may name the issuer instead of the token endpoint, in a list too."""
    for aud in (sts.issuer, ["https://other.example.com", sts.issuer]):
        assertion = sign(claims_for(sts, clock, aud=aud, jti=str(aud)))
        assert token_call(sts, {"grant_type": JWT_BEARER, "assertion": assertion}).ok


def test_a_client_that_authenticates_must_do_so_rightly(
    sts: OAuth2Emulator, clock: FakeClock
) -> None:
    """Client authentication is optional (RFC 7523 §2.1), but wrong credentials fail."""
    form = {"grant_type": JWT_BEARER, "assertion": sign(claims_for(sts, clock))}
    wrong = requests.post(sts.token_url, data=form, auth=(CLIENT, "wrong"), timeout=10)
    refused(wrong, "invalid_client", 401)
    assert token_call(sts, form).status_code == 200


def _bad_claims(now: int) -> dict[str, dict[str, Any]]:
    return {
        "iss": {"iss": "https://evil.example.com"},
        "sub": {"sub": None},
        "aud": {"aud": "https://elsewhere.example.com/token"},
        "no exp": {"exp": None},
        "expired": {"exp": now},
        "exp text": {"exp": str(now + 60)},
        "nbf": {"nbf": now + 60},
        "iat": {"iat": now + 60},
        "jti": {"jti": 42},
    }


@pytest.mark.parametrize("claim", sorted(_bad_claims(0)))
def test_each_rfc7523_check_is_invalid_grant(
    sts: OAuth2Emulator, clock: FakeClock, claim: str
) -> None:
    """RFC 7523 §3: iss, sub, aud, exp, nbf, iat and jti are checked; each failure is
    invalid_grant with a description (§3.1)."""
    change = _bad_claims(int(clock.time()))[claim]
    assertion = sign(claims_for(sts, clock, **change))
    description = refused(
        token_call(sts, {"grant_type": JWT_BEARER, "assertion": assertion}), "invalid_grant"
    )
    assert description
    assert assertion not in description


def test_an_issuer_is_trusted_later(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """trusted_issuers.trust() adds an issuer and its keys to a running emulator."""
    form = {"grant_type": JWT_BEARER, "assertion": sign(claims_for(sts, clock), STRANGER)}
    refused(token_call(sts, form), "invalid_grant")
    sts.trusted_issuers.trust(ISSUER, STRANGER.as_dict(private=False))
    assert token_call(sts, form).status_code == 200


def test_a_bad_signature_is_invalid_grant(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """A key the issuer does not have, an unsigned JWT, or no assertion: refused."""
    by_stranger = sign(claims_for(sts, clock), STRANGER)
    head, payload, _ = sign(claims_for(sts, clock)).split(".")
    unsigned = "eyJhbGciOiJub25lIn0." + payload + "."
    tampered = head + "." + payload[:-2] + "." + by_stranger.split(".")[2]
    for assertion in (by_stranger, unsigned, tampered, "not-a-jwt"):
        form = {"grant_type": JWT_BEARER, "assertion": assertion}
        why = refused(token_call(sts, form), "invalid_grant")
        assert ("alg" in why) == (assertion == unsigned), why
    refused(token_call(sts, {"grant_type": JWT_BEARER}), "invalid_request")


def test_a_replayed_jti_is_refused_until_its_exp(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """The same jti is accepted once; refuse_replayed_assertions=False accepts it again
    (one file-held JWT presented at every renewal)."""
    form = {"grant_type": JWT_BEARER, "assertion": sign(claims_for(sts, clock))}
    assert token_call(sts, form).status_code == 200
    assert "replay" in refused(token_call(sts, form), "invalid_grant")
    sts.refuse_replayed_assertions = False
    assert token_call(sts, form).status_code == 200
    no_jti = {"grant_type": JWT_BEARER, "assertion": sign(claims_for(sts, clock, jti=None))}
    sts.refuse_replayed_assertions = True
    assert [token_call(sts, no_jti).status_code for _ in range(2)] == [200, 200]


def test_a_bearer_grant_counts_its_targets(sts: OAuth2Emulator, clock: FakeClock) -> None:
    """One call per resource is counted by resource; the token records it as its aud."""
    for n, resource in enumerate(("https://a.example.com", "https://b.example.com")):
        assertion = sign(claims_for(sts, clock, jti=f"r{n}"))
        form = {"grant_type": JWT_BEARER, "assertion": assertion, "resource": resource}
        access = token_call(sts, form).json()["access_token"]
        assert api(sts, access).json()["aud"] == [resource]
    assert sts.exchanges_by_resource == {"https://a.example.com": 1, "https://b.example.com": 1}


def test_no_token_or_assertion_in_reprs_or_logs(
    sts: OAuth2Emulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Subject tokens, assertions and issued tokens appear in no repr or log record."""
    caplog.set_level(logging.DEBUG)
    subject = client_token(sts)
    assertion = sign(claims_for(sts, clock))
    issued = exchange(sts, subject).json()["access_token"]
    token_call(sts, {"grant_type": JWT_BEARER, "assertion": assertion})
    token_call(sts, {"grant_type": JWT_BEARER, "assertion": assertion})  # a replay
    shown = "\n".join([repr(sts), repr(sts.trusted_issuers), caplog.text])
    for secret in (subject, assertion, issued, SECRET):
        assert secret not in shown
    assert ISSUER in repr(sts.trusted_issuers)


def test_concurrent_calls_are_counted_exactly(sts: OAuth2Emulator) -> None:
    """100 exchanges, one per resource, from 64 threads: 100 calls, one per resource."""
    subject = client_token(sts)
    resources = [f"https://api{n}.example.com/" for n in range(100)]
    with ThreadPoolExecutor(64) as pool:
        statuses = list(
            pool.map(lambda r: exchange(sts, subject, resource=r).status_code, resources)
        )
    assert statuses == [200] * 100
    assert sts.token_calls[EXCHANGE] == 100
    assert sts.exchanges_by_resource == dict.fromkeys(resources, 1)


def test_without_expiries_none_is_answered(sts: OAuth2Emulator) -> None:
    """With token_lifetime None and a subject that never expires, expires_in is left out."""
    sts.token_lifetime = None
    answer = exchange(sts, client_token(sts)).json()
    assert "expires_in" not in answer
    assert api(sts, answer["access_token"]).status_code == 200
