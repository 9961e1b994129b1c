"""framework: an asyncio HTTPS server, client and certificate authority from one set of parts."""

from .app import App
from .client import Client, ClientResponse, Timeout
from .deploy import serve
from .errors import (
    CertificateError,
    CertificateVerifyError,
    ClientDisconnect,
    ClientError,
    ConnectError,
    ConnectTimeout,
    DecodingError,
    FrameworkError,
    HTTPError,
    HTTPStatusError,
    PKIError,
    PolicyError,
    PoolTimeout,
    ProtocolError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ServerDisconnectedError,
    SigningRequestError,
    TimeoutException,
    TLSError,
    TooManyRedirects,
    WriteError,
    WriteTimeout,
)
from .messages import (
    FileResponse,
    Headers,
    JSONResponse,
    QueryParams,
    RedirectResponse,
    Request,
    Response,
    StreamingResponse,
    TLSInfo,
)
from .middleware import CompressionMiddleware, CORSMiddleware
from .routing import Route, Router
from .server import Server, ServerConfig
from .staticfiles import StaticFiles
from .tls import CertificateStore

__version__ = "0.1.0"

__all__ = [
    "App",
    "CORSMiddleware",
    "CertificateError",
    "CertificateStore",
    "CertificateVerifyError",
    "Client",
    "ClientDisconnect",
    "ClientError",
    "ClientResponse",
    "CompressionMiddleware",
    "ConnectError",
    "ConnectTimeout",
    "DecodingError",
    "FileResponse",
    "FrameworkError",
    "HTTPError",
    "HTTPStatusError",
    "Headers",
    "JSONResponse",
    "PKIError",
    "PolicyError",
    "PoolTimeout",
    "ProtocolError",
    "QueryParams",
    "ReadError",
    "ReadTimeout",
    "RedirectResponse",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Route",
    "Router",
    "Server",
    "ServerConfig",
    "ServerDisconnectedError",
    "SigningRequestError",
    "StaticFiles",
    "StreamingResponse",
    "TLSError",
    "TLSInfo",
    "Timeout",
    "TimeoutException",
    "TooManyRedirects",
    "WriteError",
    "WriteTimeout",
    "serve",
]
