"""``authplug login``, ``authplug logout`` and ``authplug token`` for a person's login.

The three take the same options (the server, the client, the scope, the cache) so that
they name the same login: ``login`` always asks the person (that is what it is for),
``token`` prints the access token of the cached login (renewed with its refresh token,
never asking anyone: it says to run ``login`` when there is none), ``logout`` revokes
the login where the server can and forgets it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import AuthError, ConfigurationError

__all__ = ["LOGIN_COMMANDS", "run"]

#: The commands this module serves.
LOGIN_COMMANDS = ("login", "logout", "token")


def default_cache_path() -> Path:
    """Where the command keeps logins by default: ``$XDG_CACHE_HOME/authplug/logins``
    (``~/.cache/authplug/logins``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "authplug" / "logins"


def _parser(command: str) -> argparse.ArgumentParser:
    what = {
        "login": "Log a person in (always asks: a browser, or a user code with --device) and "
        "keep the login in the cache, for programs using the same issuer, client, scope "
        "and cache.",
        "logout": "Revoke the cached login where the server can, and forget it.",
        "token": "Print the access token of the cached login (renewed with its refresh "
        "token when needed; never asks anyone: run authplug login first).",
    }[command]
    parser = argparse.ArgumentParser(prog=f"authplug {command}", description=what)
    parser.add_argument("--issuer", metavar="URL", help="the authorization server (discovery)")
    parser.add_argument("--client-id", required=True, metavar="ID", help="the client's id")
    parser.add_argument("--scope", metavar="SCOPE", help='the scope, e.g. "openid offline_access"')
    parser.add_argument(
        "--cache",
        metavar="PATH",
        help=f"the login's file (default: {default_cache_path()})",
    )
    parser.add_argument("--token-url", metavar="URL", help="the token endpoint, without --issuer")
    parser.add_argument(
        "--authorization-url", metavar="URL", help="the authorization endpoint, without --issuer"
    )
    parser.add_argument(
        "--device-authorization-url",
        metavar="URL",
        help="the device authorization endpoint, without --issuer",
    )
    parser.add_argument(
        "--revocation-url", metavar="URL", help="the revocation endpoint, without --issuer"
    )
    parser.add_argument("--verify", metavar="CA_FILE", help="CA bundle to verify TLS with")
    parser.add_argument("--timeout", type=float, help="seconds for each token call")
    if command == "login":
        parser.add_argument(
            "--device",
            action="store_true",
            help="the device grant: show a code to enter on another device (no browser here)",
        )
        parser.add_argument(
            "--redirect-uri", metavar="URI", help="a fixed, registered loopback redirect URI"
        )
        parser.add_argument(
            "--login-timeout", type=float, help="seconds to wait for the person (default 300)"
        )
    if command == "token":
        parser.add_argument("--json", action="store_true", help="print the whole token as JSON")
    return parser


def _auth(command: str, args: argparse.Namespace) -> Any:
    from .cache import FileTokenCache
    from .login import OAuth2AuthorizationCodeAuth, OAuth2DeviceCodeAuth

    path = Path(args.cache) if args.cache else default_cache_path()
    if not args.cache:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "client_id": args.client_id,
        "issuer": args.issuer,
        "token_url": args.token_url,
        "scope": args.scope,
        "cache": FileTokenCache(path),
        "interactive": command == "login",
    }
    for name in ("revocation_url", "verify", "timeout"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if getattr(args, "login_timeout", None) is not None:
        kwargs["login_timeout"] = args.login_timeout
    if getattr(args, "device", False):
        kwargs["device_authorization_url"] = args.device_authorization_url
        return OAuth2DeviceCodeAuth(**kwargs)
    if getattr(args, "redirect_uri", None) is not None:
        kwargs["redirect_uri"] = args.redirect_uri
    if command != "login" and args.issuer is None and args.authorization_url is None:
        # token and logout never log in: the login endpoint is not used, only the key
        # (server, client, scope), which both classes share. The device class takes
        # any URL there; the token endpoint stands in.
        kwargs["device_authorization_url"] = args.device_authorization_url or args.token_url
        return OAuth2DeviceCodeAuth(**kwargs)
    kwargs["authorization_url"] = args.authorization_url
    return OAuth2AuthorizationCodeAuth(**kwargs)


def run(command: str, argv: Sequence[str]) -> int:
    """One of the commands; the exit status (0 done, 1 refused, 2 a wrong argument)."""
    args = _parser(command).parse_args(argv)
    prog = f"authplug {command}"
    try:
        auth = _auth(command, args)
        with auth:
            if command == "login":
                token = auth.login()
                lifetime = token.lifetime
                lasting = f", for {lifetime:.0f} s" if lifetime is not None else ""
                renewable = " (renewable)" if token.refresh_token else ""
                print(f"{prog}: logged in{lasting}{renewable}", file=sys.stderr)
            elif command == "logout":
                had = auth.logout()
                print(f"{prog}: {'logged out' if had else 'there was no login'}", file=sys.stderr)
            else:
                token = auth.get_token()
                whole = json.dumps(token.to_dict(), indent=2, sort_keys=True)
                print(whole if args.json else token.access_token)
    except ConfigurationError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except AuthError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
