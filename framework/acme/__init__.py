"""Automatic HTTPS: certificates from an ACME CA (RFC 8555), obtained and renewed in place.

``AcmeService`` is what ``framework serve --acme NAME`` runs; ``AcmeClient`` is the protocol
alone, for other uses.
"""

from __future__ import annotations

from .client import LETS_ENCRYPT, LETS_ENCRYPT_STAGING, AcmeClient, Order
from .dns01 import DnsProvider, txt_record
from .errors import AcmeError, problem_error
from .http01 import Http01Responder
from .service import AcmeService, AcmeSettings, start_acme
from .storage import AcmeStorage, StoredCertificate

__all__ = [
    "LETS_ENCRYPT",
    "LETS_ENCRYPT_STAGING",
    "AcmeClient",
    "AcmeError",
    "AcmeService",
    "AcmeSettings",
    "AcmeStorage",
    "DnsProvider",
    "Http01Responder",
    "Order",
    "StoredCertificate",
    "problem_error",
    "start_acme",
    "txt_record",
]
