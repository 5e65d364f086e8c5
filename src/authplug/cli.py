"""The ``authplug`` command: ``authplug demo``, ``authplug token PROVIDER``, and a person's
``authplug login``, ``authplug logout`` and ``authplug token`` (``authplug._login_cli``).

``authplug token`` takes each keyword argument of the provider's class as an option or
an environment variable: ``client_id`` is ``--client-id`` or
``AUTHPLUG_SEMANSYS_CLIENT_ID``. Prefer the environment for secrets: command-line
arguments are visible to other users of the machine.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import AuthError, ConfigurationError
from .providers import PROVIDERS

__all__ = ["main"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parameters(provider: str) -> list[inspect.Parameter]:
    """The provider class's own keyword arguments (not the shared ``**options``)."""
    signature = inspect.signature(PROVIDERS[provider])
    return [p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _env_name(provider: str, name: str) -> str:
    return f"AUTHPLUG_{provider.upper()}_{name.upper()}"


def _convert(name: str, default: object, text: str) -> object:
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigurationError(f"{name}: expected true or false, got {text!r}")
    if name == "cert" and "," in text:
        certfile, keyfile = text.split(",", 1)
        return (certfile, keyfile)
    return text


#: The options every class shares that the command takes: (name, metavar, help).
_SHARED = (
    ("audience", "AUDIENCE", "the audience to ask for"),
    ("proxy", "URL", "the proxy for the token call"),
    ("issuer", "URL", "in place of the token URL: read it from the issuer's metadata"),
    (
        "client_auth",
        "METHOD",
        (
            "client_secret_post, client_secret_basic, client_secret_jwt, private_key_jwt, "
            "tls_client_auth or none"
        ),
    ),
    ("private_key", "KEY", "private_key_jwt's key: a PEM or JWK file, or its PEM text"),
    ("key_id", "KID", "the kid of the signed assertions"),
    ("signing_alg", "ALG", "the assertions' algorithm (RS256, PS256, ES256, Ed25519, HS256...)"),
    ("client_assertion", "FILE", "a file holding a client assertion, read at the token call"),
    ("assertion_audience", "AUD", "the aud of the signed assertions (default: the token URL)"),
)


def _token_parser(provider: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"authplug token {provider}",
        description=(
            f"Fetch a {provider} access token and print it. Each option can also be given "
            f"as an environment variable AUTHPLUG_{provider.upper()}_<NAME>; prefer the "
            "environment for secrets."
        ),
    )
    for parameter in _parameters(provider):
        flag = "--" + parameter.name.replace("_", "-")
        required = parameter.default is inspect.Parameter.empty
        hint = "required" if required else f"default: {parameter.default!r}"
        extra = "; a pair as certfile,keyfile" if parameter.name == "cert" else ""
        parser.add_argument(
            flag,
            dest=parameter.name,
            metavar=parameter.name.upper(),
            help=f"or {_env_name(provider, parameter.name)} ({hint}{extra})",
        )
    parser.add_argument(
        "--resource",
        action="append",
        metavar="URI",
        help="a resource indicator (RFC 8707), repeatable; or "
        f"{_env_name(provider, 'resource')} (space-separated)",
    )
    for name, metavar, text in _SHARED:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar=metavar,
            help=f"{text}; or {_env_name(provider, name)}",
        )
    parser.add_argument("--timeout", type=float, help="seconds for the token call")
    parser.add_argument("--verify", metavar="CA_FILE", help="CA bundle to verify TLS with")
    parser.add_argument("--json", action="store_true", help="print the whole token as JSON")
    return parser


def _token(provider: str, argv: Sequence[str]) -> int:
    args = _token_parser(provider).parse_args(argv)
    kwargs: dict[str, Any] = {}
    missing = []
    for parameter in _parameters(provider):
        value = getattr(args, parameter.name)
        if value is None:
            value = os.environ.get(_env_name(provider, parameter.name))
        if value is None:
            if parameter.default is inspect.Parameter.empty:
                flag = "--" + parameter.name.replace("_", "-")
                missing.append(f"{flag} (or {_env_name(provider, parameter.name)})")
            continue
        kwargs[parameter.name] = _convert(parameter.name, parameter.default, value)
    if missing:
        print(f"authplug token {provider}: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    resource = args.resource or os.environ.get(_env_name(provider, "resource"), "").split()
    if resource:
        kwargs["resource"] = resource
    for name, _, _ in _SHARED:
        value = getattr(args, name) or os.environ.get(_env_name(provider, name))
        if value:
            kwargs[name] = value
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    if args.verify is not None:
        kwargs["verify"] = args.verify
    try:
        token = PROVIDERS[provider](**kwargs).get_token()
    except ConfigurationError as exc:
        print(f"authplug token {provider}: {exc}", file=sys.stderr)
        return 2
    except AuthError as exc:
        print(f"authplug token {provider}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(token.to_dict(), indent=2, sort_keys=True))
    else:
        print(token.access_token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``authplug`` command.

    ``authplug demo [PROVIDER ...]`` shows the whole flow against local emulators;
    ``authplug token PROVIDER [options]`` prints a real token (``--json``: all of it).

    Args:
        argv: the arguments after the program's name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when no token could be had, 2 for a wrong or
        missing argument (reported on stderr; a command line argparse cannot parse
        exits with 2 at once).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["login"], ["logout"]) or (
        argv[:1] == ["token"] and (len(argv) == 1 or argv[1].startswith("-"))
    ):
        from ._login_cli import run

        return run(argv[0], argv[1:])
    parser = argparse.ArgumentParser(
        prog="authplug",
        description=(
            "OAuth2 plugins for requests and httpx: a demo, a token fetcher, and a "
            "person's login kept for later runs."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="show the whole flow against local emulators")
    demo.add_argument("providers", nargs="*", choices=[[], *PROVIDERS], help="only these providers")
    token = commands.add_parser(
        "token",
        help="fetch a real token and print it",
        description=(
            "authplug token PROVIDER [options]; see authplug token PROVIDER --help. Without "
            "a provider (authplug token --issuer ... --client-id ...), the access token of "
            "a person's login made by authplug login"
        ),
    )
    token.add_argument("provider", choices=sorted(PROVIDERS))
    commands.add_parser(
        "login",
        help="log a person in and keep the login (see authplug login --help)",
        add_help=False,
    )
    commands.add_parser(
        "logout", help="revoke and forget a login (see authplug logout --help)", add_help=False
    )
    if argv[:1] == ["token"] and len(argv) >= 2 and argv[1] in PROVIDERS:
        return _token(argv[1], argv[2:])
    args = parser.parse_args(argv)
    if args.command != "demo":  # "token" with a known provider returned above
        parser.error("authplug token PROVIDER: unknown provider")
    from ._demo import run_demo

    return run_demo(sys.stdout, args.providers or None)
