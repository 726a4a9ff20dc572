"""The dashboard's static files (index.html, dashboard.js, dashboard.css), shipped inside the
package and loaded into memory once: they are small and never change while the API runs.

``index.html`` names the script and stylesheet with a content hash (``?v=…``), so those are
cached by browsers for a year (``immutable``) and a new version of the package is a new URL;
``index.html`` itself, and an asset asked for without the current hash, is revalidated on every
load (``no-cache`` + ``ETag`` → 304). The page may only talk to its own origin (CSP).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
VERSIONED = ("dashboard.js", "dashboard.css")  # referenced from index.html as {{name}}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = {
    **SECURITY_HEADERS,
    # nothing from elsewhere: no CDN, no inline script; fetches to this API only
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # first 16 hex digits of the body's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _asset(body: bytes, name: str) -> Asset:
    suffix = name[name.rfind(".") :]
    return Asset(body, CONTENT_TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])


def load_assets() -> dict[str, Asset]:
    """Every file of the page by name, index.html with the versioned URLs filled in."""
    folder = resources.files(__package__)
    assets = {name: _asset(folder.joinpath(name).read_bytes(), name) for name in VERSIONED}
    page = folder.joinpath("index.html").read_text(encoding="utf-8")
    for name in VERSIONED:
        page = page.replace("{{" + name + "}}", f"dashboard/{name}?v={assets[name].version}")
    assets["index.html"] = _asset(page.encode(), "index.html")
    return assets


def headers(name: str, asset: Asset, version: str | None) -> dict[str, str]:
    """Response headers for ``asset`` asked for with ``?v=version`` (or without)."""
    if name == "index.html":
        return {**PAGE_HEADERS, "Cache-Control": REVALIDATE, "ETag": asset.etag}
    cache = IMMUTABLE if version == asset.version else REVALIDATE
    return {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": asset.etag}
