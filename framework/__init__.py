"""framework: an asyncio HTTPS server, client and certificate authority from one set of parts."""

# The names are imported on first use (PEP 562), so that importing a submodule alone (the pytest
# plugin, loaded into every pytest run where the package is installed; ``framework.pki``) does
# not pay for the whole package: ``import framework`` takes well under a millisecond.
import typing as _typing

if _typing.TYPE_CHECKING:
    from .app import App, CallNext, ExceptionHandler, Lifespan, Middleware
    from .client import (
        BasicAuth,
        BearerAuth,
        Client,
        ClientResponse,
        Cookies,
        SyncClient,
        Timeout,
        delete,
        get,
        head,
        options,
        patch,
        post,
        put,
    )
    from .client.sync import request
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
        ProxyError,
        ReadError,
        ReadTimeout,
        RemoteProtocolError,
        ServerDisconnectedError,
        SigningRequestError,
        TimeoutException,
        TLSError,
        TooManyRedirects,
        ValidationError,
        WriteError,
        WriteTimeout,
    )
    from .forms import FormData, UploadFile
    from .messages import (
        FileResponse,
        Handler,
        Headers,
        Hook,
        JSONResponse,
        QueryParams,
        RedirectResponse,
        Request,
        Response,
        State,
        StreamingResponse,
        TLSInfo,
    )
    from .middleware import CompressionMiddleware, CORSMiddleware
    from .routing import Route, Router
    from .server import Server, ServerConfig
    from .sessions import SessionMiddleware
    from .staticfiles import StaticFiles
    from .tls import CertificateStore
    from .websocket import WebSocket, WebSocketDisconnect

__version__ = "0.1.0"

_SOURCES = {
    "App": ".app",
    "BasicAuth": ".client",
    "BearerAuth": ".client",
    "CORSMiddleware": ".middleware",
    "CallNext": ".app",
    "CertificateError": ".errors",
    "CertificateStore": ".tls",
    "CertificateVerifyError": ".errors",
    "Client": ".client",
    "ClientDisconnect": ".errors",
    "ClientError": ".errors",
    "ClientResponse": ".client",
    "CompressionMiddleware": ".middleware",
    "ConnectError": ".errors",
    "ConnectTimeout": ".errors",
    "Cookies": ".client",
    "DecodingError": ".errors",
    "ExceptionHandler": ".app",
    "FileResponse": ".messages",
    "FormData": ".forms",
    "FrameworkError": ".errors",
    "HTTPError": ".errors",
    "HTTPStatusError": ".errors",
    "Handler": ".messages",
    "Headers": ".messages",
    "Hook": ".messages",
    "JSONResponse": ".messages",
    "Lifespan": ".app",
    "Middleware": ".app",
    "PKIError": ".errors",
    "PolicyError": ".errors",
    "PoolTimeout": ".errors",
    "ProtocolError": ".errors",
    "ProxyError": ".errors",
    "QueryParams": ".messages",
    "ReadError": ".errors",
    "ReadTimeout": ".errors",
    "RedirectResponse": ".messages",
    "RemoteProtocolError": ".errors",
    "Request": ".messages",
    "Response": ".messages",
    "Route": ".routing",
    "Router": ".routing",
    "Server": ".server",
    "ServerConfig": ".server",
    "ServerDisconnectedError": ".errors",
    "SessionMiddleware": ".sessions",
    "SigningRequestError": ".errors",
    "State": ".messages",
    "StaticFiles": ".staticfiles",
    "StreamingResponse": ".messages",
    "SyncClient": ".client",
    "TLSError": ".errors",
    "TLSInfo": ".messages",
    "Timeout": ".client",
    "TimeoutException": ".errors",
    "TooManyRedirects": ".errors",
    "UploadFile": ".forms",
    "ValidationError": ".errors",
    "WebSocket": ".websocket",
    "WebSocketDisconnect": ".websocket",
    "WriteError": ".errors",
    "WriteTimeout": ".errors",
    "delete": ".client",
    "get": ".client",
    "head": ".client",
    "options": ".client",
    "patch": ".client",
    "post": ".client",
    "put": ".client",
    "request": ".client",
    "serve": ".deploy",
}

__all__ = [
    "App",
    "BasicAuth",
    "BearerAuth",
    "CORSMiddleware",
    "CallNext",
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
    "Cookies",
    "DecodingError",
    "ExceptionHandler",
    "FileResponse",
    "FormData",
    "FrameworkError",
    "HTTPError",
    "HTTPStatusError",
    "Handler",
    "Headers",
    "Hook",
    "JSONResponse",
    "Lifespan",
    "Middleware",
    "PKIError",
    "PolicyError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
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
    "SessionMiddleware",
    "SigningRequestError",
    "State",
    "StaticFiles",
    "StreamingResponse",
    "SyncClient",
    "TLSError",
    "TLSInfo",
    "Timeout",
    "TimeoutException",
    "TooManyRedirects",
    "UploadFile",
    "ValidationError",
    "WebSocket",
    "WebSocketDisconnect",
    "WriteError",
    "WriteTimeout",
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "post",
    "put",
    "request",
    "serve",
]


def __getattr__(name: str) -> _typing.Any:
    """Import a public name from the submodule that defines it, on first use."""
    if name in _SOURCES:
        from importlib import import_module

        value = getattr(import_module(_SOURCES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
