"""The log as C2SP serves it (checkpoint, verifier key, tiles, entry bundles) and the public /transparency/ page."""

from __future__ import annotations

import re

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from core.merkle import TILE_WIDTH, tile_number_parse
from optout.transparency import selectors, services

# tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>], N in the C2SP three-digit groups (x001/x234/067).
_TILE_PATH = re.compile(
    r"(?P<level>entries|[0-9]{1,2})/(?P<number>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[0-9]{1,3}))?"
)
IMMUTABLE = "public, max-age=31536000, immutable"


def _public(response: HttpResponse, cache: str) -> HttpResponse:
    response["Cache-Control"] = cache
    # Verifiers and witnesses run anywhere, browsers included.
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def log_checkpoint(request: HttpRequest) -> HttpResponse:
    """The latest signed checkpoint (a log that never issued one issues its first now, of size 0 or more)."""
    checkpoint = selectors.log_checkpoint_latest() or services.log_checkpoint_issue()
    return _public(HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8"), "no-cache")


@require_safe
def log_key(request: HttpRequest) -> HttpResponse:
    """The log's C2SP signed-note verifier key."""
    return _public(
        HttpResponse(selectors.log_verifier_key() + "\n", content_type="text/plain; charset=utf-8"),
        "public, max-age=300",
    )


@require_safe
def log_tile(request: HttpRequest, path: str) -> HttpResponse:
    match = _TILE_PATH.fullmatch(path)
    if match is None:
        raise Http404()
    try:
        number = tile_number_parse(match["number"].split("/"))
    except ValueError:
        raise Http404() from None
    width = int(match["width"]) if match["width"] else TILE_WIDTH
    # A partial tile is asked for with its width; .p/256 is not a name the specification gives out.
    if match["width"] and (width >= TILE_WIDTH or match["width"] != str(width)):
        raise Http404()
    if match["level"] == "entries":
        tile = selectors.log_entry_bundle(number=number, width=width)
    else:
        tile = selectors.log_tile(level=int(match["level"]), number=number, width=width)
    if tile is None:
        raise Http404()
    # Full tiles never change. A partial one never changes either, but clients only ask for it until it fills.
    return _public(
        HttpResponse(tile.data, content_type="application/octet-stream"),
        IMMUTABLE if tile.full else "public, max-age=60",
    )


@require_safe
def transparency_page(request: HttpRequest) -> HttpResponse:
    checkpoint = selectors.log_checkpoint_latest()
    base = request.build_absolute_uri("/").rstrip("/")
    return render(
        request,
        "optout/transparency.html",
        {
            "checkpoint": checkpoint,
            "checkpoint_ref": selectors.log_checkpoint_ref(checkpoint),
            "verifier_key": selectors.log_verifier_key(),
            "origin": selectors.log_origin(),
            "base": base,
        },
    )
