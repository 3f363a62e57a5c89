"""A small HTTP client over the standard library: API-key authentication, JSON, retries, ranged downloads."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

# urllib.request is imported on first use: it brings in ssl and OpenSSL's libraries (several MB), which a process
# that only filters offline does not need.

__all__ = ["HttpClient", "RegistryHTTPError"]

USER_AGENT = "optout-registry-client/0.2"
_RETRY_STATUSES = (429, 502, 503, 504)


class RegistryHTTPError(RuntimeError):
    """The registry answered with an error (``status``, and the API's machine ``code`` when it sent one)."""

    def __init__(self, message: str, *, status: int | None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class HttpClient:
    base_url: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0

    def __post_init__(self) -> None:
        if not self.base_url.lower().startswith(("http://", "https://")):
            raise ValueError(f"The registry URL must start with http:// or https://, not {self.base_url!r}.")

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return url

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Api-Key {self.api_key}"
        if extra:
            headers.update(extra)
        return headers

    def open(
        self,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        method: str | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """The response (a file-like object with ``.status`` and ``.headers``) of a request, retried on 429/5xx."""
        import urllib.error
        import urllib.request

        data = None
        all_headers = self._headers(headers)
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        url = self.url(path, query)
        attempt = 0
        while True:
            # The base URL is checked to be http(s) in __post_init__, so no file: or custom scheme reaches urlopen.
            request = urllib.request.Request(url, data=data, headers=all_headers, method=method)  # noqa: S310
            try:
                response = urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
            except urllib.error.HTTPError as error:
                if error.code in ok:
                    return error
                if error.code in _RETRY_STATUSES and attempt < self.retries:
                    attempt += 1
                    time.sleep(_retry_after(error.headers.get("Retry-After"), self.backoff * 2 ** (attempt - 1)))
                    continue
                raise _http_error(url, error) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                reason = getattr(error, "reason", error)
                raise RegistryHTTPError(f"{url}: cannot reach the registry ({reason}).", status=None) from None
            if response.status not in ok:
                response.close()
                raise RegistryHTTPError(f"{url}: unexpected HTTP status {response.status}.", status=response.status)
            return response

    def get_json(self, path: str, *, query: Mapping[str, Any] | None = None) -> Any:
        with self.open(path, query=query) as response:
            return _json(response, self.url(path, query))

    def post_json(self, path: str, body: Any) -> Any:
        with self.open(path, body=body, method="POST") as response:
            return _json(response, self.url(path))


def _json(response: IO[bytes], url: str) -> Any:
    try:
        return json.loads(response.read())
    except ValueError:
        raise RegistryHTTPError(f"{url}: the registry's answer is not JSON.", status=None) from None


def _retry_after(header: str | None, default: float) -> float:
    try:
        return min(max(float(header), 0.0), 60.0) if header else default
    except ValueError:
        return default


def _http_error(url: str, error: Any) -> RegistryHTTPError:
    code = None
    message = error.reason
    try:
        body = json.loads(error.read())
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
            message = body["error"].get("message") or message
    except (ValueError, OSError):
        pass
    hint = ""
    if error.code == 401:
        hint = " Pass an API key with the lookup scope (--api-key or OPTOUT_API_KEY)."
    elif error.code == 403:
        hint = " The API key needs the lookup scope."
    return RegistryHTTPError(f"{url}: HTTP {error.code} {message}.{hint}", status=error.code, code=code)
