"""The address a request came from, for sign-in throttling (django-axes).

Behind a reverse proxy REMOTE_ADDR is the proxy's: every sign-in would share one address,
and ten wrong passwords from anywhere would pause that username for everyone. With
VERNACULAR_PROXY_COUNT=N (the proxies in front of the app, each appending to
X-Forwarded-For), the address is the one the outermost trusted proxy saw. The header is
read from the right: anything a client wrote into it itself sits further left, unused.
"""

from django.conf import settings


def client_ip(request) -> str | None:
    proxies = settings.VERNACULAR_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
