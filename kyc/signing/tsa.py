"""RFC 3161 timestamping: a client for a configured TSA and a local TSA for tests and development.

A signature becomes PAdES B-T when a timestamp authority is configured (``HttpTsaConfig`` for a
real TSA, ``LocalTsaConfig`` for the development one) and stays B-B when none is. The local TSA
uses pyHanko's ``DummyTimeStamper`` (RSA keys only) with the RSA certificate of the development
PKI, either in-process or behind a small HTTP server bound to 127.0.0.1, so the HTTP client path
is exercised exactly as against a real TSA.
"""
# pyHanko's PDF object, layout and timestamper constructors are unannotated:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import functools
import threading
import urllib.error
import urllib.request
from asyncio import to_thread
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from asn1crypto import tsp

from kyc.signing.errors import TimestampError
from kyc.signing.keys import dev_tsa_material

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

_MAX_TSA_BODY = 64 * 1024  # a TimeStampReq is a few hundred bytes; refuse anything large


@dataclass(frozen=True)
class HttpTsaConfig:
    """A timestamp authority reached over HTTP(S) (RFC 3161 section 3.4)."""

    url: str
    timeout: float = 5.0


@dataclass(frozen=True)
class LocalTsaConfig:
    """The development TSA, in-process, keyed by the development PKI in ``directory``."""

    directory: Path


TsaConfig = HttpTsaConfig | LocalTsaConfig


def _urllib_timestamper(url: str, timeout: float) -> TimeStamper:
    from pyhanko.sign.timestamps import TimeStamper
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError, set_tsp_headers

    class UrllibTimeStamper(TimeStamper):
        """HTTP TSA client on the standard library (pyHanko's own needs ``requests`` or a session)."""

        async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
            return await to_thread(self._post, req.dump())

        def _post(self, body: bytes) -> tsp.TimeStampResp:
            request = urllib.request.Request(url, data=body, headers=set_tsp_headers({}), method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # http(s) only
                    content_type = response.headers.get("Content-Type", "")
                    data = response.read(_MAX_TSA_BODY + 1)
            except (OSError, urllib.error.URLError) as exc:
                raise TimestampRequestError(f"timestamp authority unreachable: {exc.__class__.__name__}") from exc
            if content_type != "application/timestamp-reply" or len(data) > _MAX_TSA_BODY:
                raise TimestampRequestError("timestamp authority answered with something other than a TSA reply")
            return tsp.TimeStampResp.load(data)

    return UrllibTimeStamper()


@functools.lru_cache(maxsize=8)
def open_timestamper(config: TsaConfig) -> TimeStamper:
    """The pyHanko timestamper for ``config``, cached per process.

    Caching matters: pyHanko asks each timestamper once for a dummy token to size the signature
    placeholder, so a fresh object per signature would double the TSA round trips.
    """
    if isinstance(config, HttpTsaConfig):
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TimestampError(f"timestamp authority URL must be http(s): {config.url!r}", code="tsa_config")
        return _urllib_timestamper(config.url, config.timeout)
    from pyhanko.sign.timestamps import DummyTimeStamper

    cert, key, _ca = dev_tsa_material(config.directory)
    return DummyTimeStamper(tsa_cert=cert, tsa_key=key)


class LocalTsaServer:
    """The development TSA over HTTP on 127.0.0.1 (port 0 picks a free port).

    Use as a context manager; ``url`` is what goes into ``HttpTsaConfig``. It answers only
    ``POST`` with ``application/timestamp-query`` and never listens on other interfaces.
    """

    def __init__(self, directory: Path, port: int = 0) -> None:
        from pyhanko.sign.timestamps import DummyTimeStamper

        cert, key, _ca = dev_tsa_material(directory)
        stamper = DummyTimeStamper(tsa_cert=cert, tsa_key=key)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # name fixed by http.server
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Content-Type") != "application/timestamp-query" or not 0 < length <= _MAX_TSA_BODY:
                    self.send_error(400, "expected an RFC 3161 timestamp query")
                    return
                try:
                    request = tsp.TimeStampReq.load(self.rfile.read(length))
                    reply = stamper.request_tsa_response(request).dump()
                except (ValueError, KeyError, TypeError):
                    self.send_error(400, "malformed timestamp query")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                return  # keep test output and the CLI's stdout clean

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-tsa", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> LocalTsaServer:
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the server stops (for running it in the foreground)."""
        self._thread.join()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalTsaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
