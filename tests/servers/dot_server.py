"""A real django-oauth-toolkit 3.x server, run as a child process by the tests.

Usage, from the repository root::

    python -m tests.servers.dot_server DATA_DIR [--access-token-lifetime SECONDS]
                                                [--no-migrations] [--no-rotation]
                                                [--reuse-protection]
                                                [--refresh-delay SECONDS]

Django is configured in code (no project folder): sqlite in ``DATA_DIR``, migrations
(or, with ``--no-migrations``, tables made straight from the models),
the user :data:`~tests.servers.USERNAME` and one confidential Application per grant x
client authentication method x secret (client ids such as
``password-client_secret_basic-tricky``). DOT's own views do the OAuth2: ``/o/token/``,
the RFC 7009 ``/o/revoke_token/`` and ``/o/authorize/``. People log in there: the public
Application :data:`LOGIN_CLIENT_ID` (authorization code; PKCE required, S256 only:
``PKCE_REQUIRED`` and ``COMPLIANT_BCP_RFC9700_PKCE_METHOD``) registers
:data:`LOGIN_REDIRECT_URI`, which DOT 3 matches on any port (its
``check_redirect_to_uri_allowed`` skips the port of an ``http`` loopback IP URI, RFC 8252
§7.3); the authorize view sends a signed-out person to Django's own ``LoginView`` at
``/accounts/login/`` (a one-form template), and asks every time (``REQUEST_APPROVAL_PROMPT``
``force``, DOT's default). Scopes: ``read`` and ``write`` (no OIDC here). On top of DOT's
views this module adds only:

* ``GET /api/me``: 200 ``{"ok": true, "user": ..., "client_id": ...}`` for a token DOT
  accepts, else an RFC 6750 401 (``error="invalid_token"`` when a token was sent, a
  bare ``Bearer`` challenge when none was);
* ``GET /api/default``: DOT's stock ``ProtectedResourceView`` (a bare 403 on refusal);
* ``GET /test/calls`` (token requests received, by ``grant_type``) and ``POST
  /test/reset``: the server-side count of token calls;
* ``GET /test/stats``: what the rotation soak counts, since the last reset: token
  answers by ``grant_type`` and outcome (``"refresh_token:ok"``,
  ``"refresh_token:invalid_grant"``, ...), ``family_revocations`` (DOT's reuse
  protection revoking a token family: ``RefreshToken.revoke_family`` with a family),
  the API's answers by status, and a person's answers: ``login:ok`` and
  ``login:refused`` (the login form sent), ``consent:ok`` and ``consent:denied`` (DOT's
  authorize form sent with or without ``allow``);
* ``GET /test/holding``: ``{"holding": N}``, the refresh answers held back right now
  (``--refresh-delay``): a client may leave once its refresh is surely in flight.

Rotation (``ROTATE_REFRESH_TOKEN``) is on unless ``--no-rotation``; reuse protection
(``REFRESH_TOKEN_REUSE_PROTECTION``: a rotated refresh token used again revokes its
whole family) with ``--reuse-protection``. ``--refresh-delay`` holds each refresh
answer that long *after* DOT has rotated (committed), so that a client can be made to
leave while its refresh is in flight. ``--access-token-lifetime`` may be fractional.

It serves on a free loopback port with Django's threaded WSGI server, prints one JSON
line ``{"port": N, "pid": N, "startup_seconds": S}`` to stdout when ready, and runs
until it is terminated or its stdin is closed (so a crashed test run leaves no orphan
behind).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from tests.servers import AUTH_METHODS, PASSWORD, PLAIN_SECRET, TRICKY_SECRET, USERNAME

#: The grants served, as DOT names them on an Application.
GRANTS = {"client_credentials": "client-credentials", "password": "password"}

#: The public client people log in with (authorization code + PKCE; refresh tokens come with
#: every code exchange on DOT).
LOGIN_CLIENT_ID = "login-cli"
#: Registered for it; DOT 3 matches a loopback IP redirect on any port (RFC 8252 §7.3).
LOGIN_REDIRECT_URI = "http://127.0.0.1/callback"

#: Django's LoginView needs a template; DOT ships none for it. Its form posts back to itself,
#: ``next`` included.
LOGIN_TEMPLATE = """<!DOCTYPE html>
<html><head><title>Log in</title></head><body>
<form method="post" action="">{% csrf_token %}{{ form.as_p }}
<input type="hidden" name="next" value="{{ next }}">
<input type="submit" value="Log in"></form>
</body></html>"""


def client_id_for(grant: str, auth_method: str, *, tricky: bool) -> str:
    """The deterministic client id of the Application for this combination."""
    return f"{grant}-{auth_method}-{'tricky' if tricky else 'plain'}"


def _define_fast_hasher() -> None:
    """Define ``FastPBKDF2PasswordHasher`` here, for ``PASSWORD_HASHERS`` to name.

    DOT hashes client secrets (and Django users' passwords) with Django's default
    PBKDF2, whose million-plus iterations cost about a second per Application created
    and per token request on a small machine. Same algorithm, fewer rounds. Defined
    late so that importing this module (the harness reads :func:`client_id_for`)
    needs no Django.
    """
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    globals()["FastPBKDF2PasswordHasher"] = type(
        "FastPBKDF2PasswordHasher", (PBKDF2PasswordHasher,), {"iterations": 1_000}
    )


_APPS = ("contenttypes", "auth", "sessions", "oauth2_provider")  # app labels

_calls: Counter[str] = Counter()
_stats: Counter[str] = Counter()  # "grant:outcome", "family_revocations", "api:STATUS"
_calls_lock = threading.Lock()
_refresh_delay = 0.0
_holding = [0]  # refresh answers being held back right now


def _sqlite_options() -> dict[str, Any]:
    """Several request threads write (tokens, rotation): wait for the lock, don't fail."""
    import django

    options: dict[str, Any] = {"timeout": 30}
    if django.VERSION >= (5, 1):  # DOT 3 still allows Django 4.2, which lacks these
        # Take the write lock when a transaction begins, not half-way through it.
        options["transaction_mode"] = "IMMEDIATE"
        options["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
    return options


def _settings(
    data_dir: Path,
    access_token_lifetime: float,
    *,
    migrate: bool,
    rotate: bool = True,
    reuse_protection: bool = False,
) -> dict[str, Any]:
    return {
        "DEBUG": False,
        "SECRET_KEY": "authplug-tests-not-secret",
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "ROOT_URLCONF": __name__,  # urlpatterns is set by main() once Django is set up
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "oauth2_provider",
        ],
        # A person's login: a session, CSRF on the login and authorize forms (DOT's token,
        # revocation and introspection views are csrf_exempt), request.user.
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [
                        (
                            "django.template.loaders.locmem.Loader",
                            {"registration/login.html": LOGIN_TEMPLATE},
                        ),
                        "django.template.loaders.app_directories.Loader",
                    ],
                },
            }
        ],
        "STATIC_URL": "/static/",  # DOT's base template loads "static"; nothing is served
        "LOGIN_URL": "/accounts/login/",
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(data_dir / "dot.sqlite3"),
                "OPTIONS": _sqlite_options(),
            }
        },
        # Without migrations, "migrate --run-syncdb" creates the tables from the models
        # (as Django's test runner does with TEST["MIGRATE"] = False): ~0.1 s, not ~2 s.
        "MIGRATION_MODULES": {} if migrate else dict.fromkeys(_APPS),
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "PASSWORD_HASHERS": [f"{__name__}.FastPBKDF2PasswordHasher"],
        "OAUTH2_PROVIDER": {
            "ACCESS_TOKEN_EXPIRE_SECONDS": access_token_lifetime,
            "ROTATE_REFRESH_TOKEN": rotate,
            "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
            "REFRESH_TOKEN_REUSE_PROTECTION": reuse_protection,
            "SCOPES": {"read": "Reading scope", "write": "Writing scope"},
            "PKCE_REQUIRED": True,
            "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # "plain" refused: S256 only
        },
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler"}},
            "loggers": {
                # Per-request access lines and 4xx warnings are noise; keep errors.
                "django.server": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
                "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
                "oauth2_provider": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
            },
        },
    }


def _populate() -> None:
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    application = get_application_model()
    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    for grant, dot_grant in GRANTS.items():
        for auth_method in AUTH_METHODS:
            for tricky in (False, True):
                application.objects.create(
                    name=client_id_for(grant, auth_method, tricky=tricky),
                    client_id=client_id_for(grant, auth_method, tricky=tricky),
                    client_secret=TRICKY_SECRET if tricky else PLAIN_SECRET,
                    hash_client_secret=True,
                    client_type=application.CLIENT_CONFIDENTIAL,
                    authorization_grant_type=dot_grant,
                    redirect_uris="",
                )
    login = application(
        name=LOGIN_CLIENT_ID,
        client_id=LOGIN_CLIENT_ID,
        client_type=application.CLIENT_PUBLIC,
        authorization_grant_type=application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=LOGIN_REDIRECT_URI,
        skip_authorization=False,
    )
    login.full_clean()  # DOT's own validation of the registration: a bad one stops the start
    login.save()


def _count(name: str) -> None:
    with _calls_lock:
        _stats[name] += 1


def _count_family_revocations() -> None:
    """Count DOT's reuse protection at work: each ``revoke_family`` call with a family."""
    from oauth2_provider.models import get_refresh_token_model

    model = get_refresh_token_model()
    original = model.revoke_family.__func__  # type: ignore[attr-defined]

    def revoke_family(cls: Any, token_family: Any) -> None:
        if token_family:
            _count("family_revocations")
        original(cls, token_family)

    model.revoke_family = classmethod(revoke_family)  # type: ignore[assignment]


def _outcome(response: Any) -> str:
    """``ok`` for a 200, else the answer's ``error`` code (or ``http-NNN``)."""
    if response.status_code == 200:
        return "ok"
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error) if error else f"http-{response.status_code}"


def _urlpatterns() -> list[Any]:
    from django.contrib.auth.views import LoginView
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt
    from oauth2_provider.oauth2_backends import get_oauthlib_core
    from oauth2_provider.views import AuthorizationView, ProtectedResourceView, TokenView

    class DefaultView(ProtectedResourceView):
        """DOT's stock protection: a bare 403 when the token is refused."""

        def get(self, request: HttpRequest) -> HttpResponse:
            return JsonResponse({"ok": True})

    dot_token_view = TokenView.as_view()

    @csrf_exempt
    def token(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        grant_type = request.POST.get("grant_type", "") if request.method == "POST" else ""
        with _calls_lock:
            _calls[grant_type] += 1
        response = dot_token_view(request, *args, **kwargs)
        _count(f"{grant_type}:{_outcome(response)}")
        if grant_type == "refresh_token" and _refresh_delay > 0:
            # DOT has rotated (and committed): the answer is only late, as over a slow link.
            with _calls_lock:
                _holding[0] += 1
            try:
                time.sleep(_refresh_delay)
            finally:
                with _calls_lock:
                    _holding[0] -= 1
        return response

    dot_login_view = LoginView.as_view()
    dot_authorize_view = AuthorizationView.as_view()

    # Not csrf_exempt: Django's CSRF check still guards both forms.
    def login(request: HttpRequest) -> HttpResponse:
        response = dot_login_view(request)
        if request.method == "POST":  # LoginView redirects once signed in, else shows the form
            _count("login:ok" if response.status_code == 302 else "login:refused")
        return response

    def authorize(request: HttpRequest) -> HttpResponse:
        response = dot_authorize_view(request)
        if request.method == "POST":
            _count("consent:ok" if "allow" in request.POST else "consent:denied")
        return response

    def me(request: HttpRequest) -> HttpResponse:
        response = _me(request)
        _count(f"api:{response.status_code}")
        return response

    def _me(request: HttpRequest) -> HttpResponse:
        valid, oauth_request = get_oauthlib_core().verify_request(request, scopes=[])
        if valid:
            application = oauth_request.access_token.application
            user = oauth_request.access_token.user
            return JsonResponse(
                {
                    "ok": True,
                    "user": user.get_username() if user is not None else None,
                    "client_id": application.client_id,
                }
            )
        response = JsonResponse({"ok": False}, status=401)
        authorization = request.headers.get("Authorization", "")
        if authorization.split(" ", 1)[0].lower() == "bearer":
            error = getattr(oauth_request, "oauth2_error", None) or {}
            description = error.get("error_description", "The access token is invalid.")
            response["WWW-Authenticate"] = (
                f'Bearer error="invalid_token", error_description="{description}"'
            )
        else:
            response["WWW-Authenticate"] = "Bearer"
        return response

    def calls(request: HttpRequest) -> HttpResponse:
        with _calls_lock:
            return JsonResponse(dict(_calls))

    def stats(request: HttpRequest) -> HttpResponse:
        with _calls_lock:
            return JsonResponse(dict(_stats))

    def holding(request: HttpRequest) -> HttpResponse:
        with _calls_lock:
            return JsonResponse({"holding": _holding[0]})

    @csrf_exempt
    def reset(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        with _calls_lock:
            _calls.clear()
            _stats.clear()
        return HttpResponse(status=204)

    return [
        path("accounts/login/", login),
        path("o/authorize/", authorize),
        path("o/token/", token),
        path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
        path("api/me", me),
        path("api/default", DefaultView.as_view()),
        path("test/calls", calls),
        path("test/stats", stats),
        path("test/holding", holding),
        path("test/reset", reset),
    ]


def _exit_when_stdin_closes() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="an empty folder for the sqlite database")
    parser.add_argument("--access-token-lifetime", type=float, default=120, metavar="SECONDS")
    parser.add_argument("--no-rotation", action="store_true", help="ROTATE_REFRESH_TOKEN off")
    parser.add_argument(
        "--reuse-protection",
        action="store_true",
        help="REFRESH_TOKEN_REUSE_PROTECTION on: reusing a rotated token revokes its family",
    )
    parser.add_argument(
        "--refresh-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="hold each refresh answer this long after the rotation is committed",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--no-migrations",
        action="store_true",
        help="create the tables straight from the models instead of running migrations",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()

    # The RFC 9700 nags (password grant) are for an operator; nobody reads them here.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)

    import django
    from django.conf import settings

    _define_fast_hasher()
    migrate = not args.no_migrations
    settings.configure(
        **_settings(
            args.data_dir,
            args.access_token_lifetime,
            migrate=migrate,
            rotate=not args.no_rotation,
            reuse_protection=args.reuse_protection,
        )
    )
    django.setup()
    globals()["_refresh_delay"] = args.refresh_delay
    _count_family_revocations()

    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    call_command("migrate", verbosity=0, interactive=False, run_syncdb=not migrate)
    _populate()
    connections.close_all()
    globals()["urlpatterns"] = _urlpatterns()

    server = ThreadedWSGIServer((args.host, args.port), WSGIRequestHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=_exit_when_stdin_closes, name="stdin-watch", daemon=True).start()
    ready = {"port": server.server_port, "pid": os.getpid()}
    ready["startup_seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
