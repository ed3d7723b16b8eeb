"""One keep-alive HTTP(S) session to the API server: TLS trust, auth headers, timeouts.

Exists so ApiSource only deals in paths and JSON. Counts every request and response byte,
turns every failure into an ApiError, and after a 401 refreshes rotating credentials (token
file, exec plugin) and retries once.
"""
from __future__ import annotations

import codecs
import io
import json
import warnings
from typing import Any, Dict, Iterator, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from lbsync import __version__
from lbsync.kube import cutter, errors, held
from lbsync.kube import signature as sig
from lbsync.kube.credentials import Credentials

USER_AGENT = "lbsync/%s" % __version__


class _ServerNameAdapter(HTTPAdapter):
    """Verify (and send SNI for) `tls-server-name` instead of the host in the URL."""

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kw: Any) -> None:
        kw.update(server_hostname=self._server_name, assert_hostname=self._server_name)
        super().init_poolmanager(connections, maxsize, block, **kw)


class Transport:
    """GETs JSON from the API server (and sends the few writes lbsync makes: Events);
    `requests` / `bytes` count what it cost."""

    def __init__(self, credentials: Credentials, *, timeout: float = 10.0) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self.requests = 0
        self.bytes = 0
        self.session = requests.Session()
        # Not trust_env: REQUESTS_CA_BUNDLE would replace our CA and ~/.netrc our token.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(credentials.server)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        if credentials.disable_compression:  # else gzip, as client-go asks: the server gzips lists over 128 KiB
            self.session.headers["Accept-Encoding"] = "identity"
        if credentials.tls_server_name and credentials.server.startswith("https://"):
            self.session.mount("https://", _ServerNameAdapter(credentials.tls_server_name))
        self._verify: Union[bool, str] = False if credentials.insecure else (credentials.ca_file or True)
        self.held = held.Body()  # a changed List's body, from a poll's probe to its fetch

    def close(self) -> None:
        self.session.close()

    def display_url(self, path: str) -> str:
        """The URL for messages: no userinfo, no query string."""
        parts = urlsplit(self.credentials.server + path)
        host = parts.hostname or ""
        if ":" in host:
            host = "[%s]" % host
        netloc = host + (":%d" % parts.port if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def get_list(self, path: str, params: Dict[str, str], *, unless_version: str = "",
                 unused: Tuple[str, ...] = errors.UNUSED_KEYS, hold: bool = False) -> Dict[str, Any]:
        """GET a List; raises the matching ApiError subclass on any failure. With
        `unless_version` (a list token, "resourceVersion/signature"), nothing is decoded: the
        answer only says whether the List still has that resourceVersion or the very same
        items (`{"unchanged": True|False, ...}`); with `hold` too, a changed body is held for
        the next `get_cut` of the same path and query (lbsync.kube.held). A decoded List has
        its items' `signature` (lbsync.kube.signature). `unused`: the keys dropped from every
        object while decoding."""
        url = self.display_url(path)
        resp = self._open_list(path, params, url)
        if unless_version:  # only asking "did it change?": never decode, the caller lists again
            if not hold:
                return self._unchanged(resp, url, unless_version, None)
            try:
                answer = self._unchanged(resp, url, unless_version, self.held)
            except BaseException:
                self.held.drop()  # nothing to hold from a failed read
                raise
            if answer["unchanged"]:
                self.held.drop()
            else:
                self.held.hold(held.key(path, params), answer.pop("signature"), resp)
            return answer
        signer = sig.Signer()
        text = _text(self._chunks(resp, url, signer))
        return dict(errors.parse_list(text, resp, url, unused), signature=signer.result())

    def get_cut(self, path: str, params: Dict[str, str]) -> Tuple[cutter.Cut, str, requests.Response]:
        """GET a List cut into its items' bytes as it streams in (lbsync.kube.cutter), its
        items' signature, and the (read) response, for messages. A body the probe of this
        poll holds (`get_list(hold=True)`) is cut instead of downloaded again."""
        cut = cutter.Cutter()
        found = self.held.take(held.key(path, params))
        if found is not None:
            body, signature, resp = found
            cut.feed(body)
            return cut.finish(), signature, resp
        url = self.display_url(path)
        resp = self._open_list(path, params, url)
        signer = sig.Signer()
        for chunk in self._chunks(resp, url, signer):
            cut.feed(chunk)
        return cut.finish(), signer.result(), resp

    def _open_list(self, path: str, params: Dict[str, str], url: str) -> requests.Response:
        """A streamed 200 answer to a GET; the matching ApiError otherwise."""
        resp = self._get(path, params, url, stream=True)
        if resp.status_code == 401 and self.credentials.refresh():
            resp.close()
            resp = self._get(path, params, url, stream=True)
        if resp.status_code != 200:
            self._read(resp, url)  # an error answer is small: read it for its Status message
            raise errors.from_response(resp, url)
        return resp

    def _unchanged(self, resp: requests.Response, url: str, token: str,
                   body: Optional[held.Body]) -> Dict[str, Any]:
        """Whether a List answer still has the resourceVersion, or the very same items, of
        `token` ("resourceVersion/signature"), read as it streams in: an unchanged poll of a
        big cluster never holds its 20 MB body; a changed one is copied into `body`, if given."""
        rv, _, signature = token.partition("/")
        signer, chunks = sig.Signer(), self._chunks(resp, url)
        if body is not None:
            body.start()
        for chunk in chunks:
            signer.update(chunk)
            if body is not None:
                body.add(chunk)
            if signer.head_done:
                break
        if errors.head_version(signer.head) == rv:  # the same List: the rest is only read, for the connection
            for _ in chunks:
                pass
            return {"metadata": {"resourceVersion": token}, "unchanged": True}
        for chunk in chunks:
            signer.update(chunk)
            if body is not None:
                body.add(chunk)
        found = signer.result()
        same = bool(signature and found == signature)  # a real cluster's churn
        return {"metadata": {"resourceVersion": token if same else ""}, "unchanged": same, "signature": found}

    def _chunks(self, resp: requests.Response, url: str, signer: Optional[sig.Signer] = None) -> Iterator[bytes]:
        """A streamed body's chunks, counted as received (gzipped or not) and signed as
        decoded; failures as ApiError."""
        raw, read = resp.raw, 0
        try:
            for chunk in resp.iter_content(1 << 20):
                self.bytes += raw.tell() - read
                read = raw.tell()
                if signer is not None:
                    signer.update(chunk)
                yield chunk
        except requests.RequestException as e:
            raise errors.from_exception(e, url, self.timeout) from e
        finally:
            resp.close()

    def _read(self, resp: requests.Response, url: str) -> None:
        """Read a streamed answer whole into `resp.content`."""
        if resp._content_consumed:  # type: ignore[attr-defined]
            return
        resp._content = b"".join(self._chunks(resp, url))

    def send(self, method: str, path: str, body: Dict[str, Any], content_type: str) -> requests.Response:
        """POST or PATCH a JSON body (a write: never retried but after a 401 refresh); the 2xx
        answer, or the matching ApiError."""
        url = self.display_url(path)
        data = json.dumps(body, separators=(",", ":")).encode()
        kw = dict(data=data, content_type=content_type)
        resp = self._get(path, {}, url, method=method, **kw)
        if resp.status_code == 401 and self.credentials.refresh():
            resp = self._get(path, {}, url, method=method, **kw)
        if not 200 <= resp.status_code < 300:
            raise errors.from_response(resp, url, method)
        return resp

    def open_stream(self, path: str, params: Dict[str, str], *, read_timeout: float) -> requests.Response:
        """GET a long-lived streaming answer (a watch); raises ApiError unless it is a 200.
        `read_timeout`: the longest wait for the next bytes before requests gives up."""
        url = self.display_url(path)
        resp = self._get(path, params, url, stream=True, read_timeout=read_timeout)
        if resp.status_code == 401 and self.credentials.refresh():
            resp.close()
            resp = self._get(path, params, url, stream=True, read_timeout=read_timeout)
        if resp.status_code != 200:
            try:
                resp.content  # an error answer is small: read it for its Status message
            except requests.RequestException as e:
                raise errors.from_exception(e, url, self.timeout) from e
            raise errors.from_response(resp, url)
        return resp

    def _get(self, path: str, params: Dict[str, str], url: str, *, method: str = "GET",
             data: Optional[bytes] = None, content_type: str = "", stream: bool = False,
             read_timeout: Optional[float] = None) -> requests.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        token = self.credentials.token()
        if token:
            headers["Authorization"] = "Bearer " + token
        cert: Optional[Tuple[str, str]] = self.credentials.cert()
        self.requests += 1
        try:
            with warnings.catch_warnings():
                if self._verify is False:  # the user chose insecure-skip-tls-verify; once is enough
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                resp = self.session.request(method, self.credentials.server + path, params=params,
                                            data=data, headers=headers,
                                            timeout=(self.timeout, read_timeout or self.timeout),
                                            verify=self._verify, cert=cert, allow_redirects=False, stream=True)
                if not stream:  # the body in one read where its length is known: `resp.content`
                    # would join 10 kB chunks, holding a big list twice (+16 MB at 5,000 Services)
                    resp._content = b"".join(resp.iter_content(None))
        except requests.RequestException as e:
            raise errors.from_exception(e, url, self.timeout, method) from e
        if not stream:
            self.bytes += resp.raw.tell()  # the bytes received: gzipped, when the server gzipped
        return resp


def _text(chunks: Iterator[bytes]) -> str:
    """A body's text (UTF-8, bad bytes replaced, as bytes.decode gives), decoded as it streams
    in: its bytes are never whole in memory beside its text. Building it still costs about
    twice its size at the end (measured: +31 MB of RSS for 16 MB), so a poll's changed list is
    cut into items instead (get_cut); this serves a watch's relist, Nodes and errors."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with io.StringIO() as buffer:
        for chunk in chunks:
            buffer.write(decoder.decode(chunk))
        buffer.write(decoder.decode(b"", True))
        return buffer.getvalue()
