"""Which URLs may be fetched, and how a URL is shown without secrets."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# NASA's public file host serves every file over https too, while collection.json (and older search
# answers) list http:// URLs. Other hosts (a mirror, the offline test double) keep their scheme.
HTTPS_HOSTS = frozenset({"images-assets.nasa.gov"})
SECRET_PARAMS = {"api_key", "apikey", "key", "token", "x-amz-credential", "x-amz-signature"}


def parse_allowed_hosts(spec: str) -> tuple[tuple[str, int | None], ...]:
    """"images-assets.nasa.gov,127.0.0.1:8080,[::1]:8080" ->
    (("images-assets.nasa.gov", None), ("127.0.0.1", 8080), ("::1", 8080)).

    An IPv6 address takes brackets as in a URL ("[::1]", "[::1]:8080"); a bare one ("::1") has no port."""
    out = []
    for entry in (e.strip().lower() for e in spec.split(",")):
        if not entry:
            continue
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else rest
            if not bracket or not host or (rest and not rest.startswith(":")):
                raise ValueError(f"bad [IPv6]:port in NASA_ALLOWED_HOSTS: {entry!r}")
        else:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if (port or entry.endswith(":")) and not (port.isascii() and port.isdigit() and int(port) <= 65535):
            raise ValueError(f"bad host:port in NASA_ALLOWED_HOSTS: {entry!r}")
        out.append((host, int(port) if port else None))
    if not out:
        raise ValueError("NASA_ALLOWED_HOSTS is empty: no image could be downloaded")
    return tuple(out)


def url_block_reason(url: object, allowed: tuple[tuple[str, int | None], ...]) -> str | None:
    """None when `url` may be fetched; otherwise why not.

    Only http(s) to an allowed host, on that entry's port (a bare host: the scheme's default port).
    """
    if not isinstance(url, str) or not url:
        return "no URL"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "malformed URL"
    if parts.scheme not in _DEFAULT_PORTS:
        return f"scheme {parts.scheme or '(none)'!r} is not http(s)"
    if parts.username is not None or parts.password is not None:
        return "URL carries credentials"
    host = (parts.hostname or "").lower()
    effective_port = port if port is not None else _DEFAULT_PORTS[parts.scheme]
    for allowed_host, allowed_port in allowed:
        if host == allowed_host:
            wanted = allowed_port if allowed_port is not None else _DEFAULT_PORTS[parts.scheme]
            if effective_port == wanted:
                return None
    shown = f"[{host}]" if ":" in host else host
    return f"host {shown}:{effective_port} is not in NASA_ALLOWED_HOSTS"


def upgraded(url: str) -> str:
    """The URL to fetch: http:// on NASA's public file host becomes https://, so files come
    over TLS; any other URL is unchanged."""
    try:
        parts = urlsplit(url)
        explicit_port = parts.port is not None
    except ValueError:
        return url  # refused later, with its reason
    if parts.scheme == "http" and not explicit_port and (parts.hostname or "").lower() in HTTPS_HOSTS:
        return urlunsplit(parts._replace(scheme="https"))
    return url


def redact(url: str) -> str:
    """The URL with secret query values replaced, for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed url>"
    # A fragment can look like a query too ("#?api_key=..."): it is shown, so it is redacted.
    query, fragment = _redact_pairs(parts.query), _redact_pairs(parts.fragment)
    if (query, fragment) == (parts.query, parts.fragment):
        return url
    return urlunsplit(parts._replace(query=query, fragment=fragment))


def _redact_pairs(text: str) -> str:
    if "=" not in text:
        return text
    pairs = parse_qsl(text, keep_blank_values=True)
    secret = [k.strip("?&").lower() in SECRET_PARAMS for k, _ in pairs]
    if not any(secret):
        return text
    return urlencode([(k, "REDACTED" if s else v) for (k, v), s in zip(pairs, secret)])
