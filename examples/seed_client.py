"""The seed's Node.js ``https.request`` example with our client: GET a page over HTTPS, print the
status and the headers, then the body as it streams in.

Run it:   python -m examples.seed_client                     # https://example.com/
          python -m examples.seed_client https://localhost:8443/ \
              --ca "$(python -m framework certs dev-ca)"           # against examples.hello
With curl: curl -i https://example.com/

Node's version sets the encoding to UTF-8, collects ``data`` events into a string and prints it
on ``end``; errors go to the ``error`` handler. Here the chunks come from ``response.aiter_bytes()``
and every failure is one ``ClientError`` (certificate, connection, timeout), printed with its
hint.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import sys

from framework import Client
from framework.errors import ClientError


async def fetch(url: str, ca: str | None) -> int:
    async with Client(ca=ca) as client:
        try:
            async with client.stream("GET", url) as response:
                # Handle the response headers.
                print(response.status)
                print(dict(response.headers.items()))
                # Handle the response body, decoded as UTF-8 piece by piece.
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                data = ""
                async for chunk in response.aiter_bytes():
                    data += decoder.decode(chunk)
                data += decoder.decode(b"", final=True)
                # Log the entire response body.
                print(data)
        except ClientError as exc:  # certificate, connection, timeout, protocol
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="GET a URL over HTTPS and print the response.")
    parser.add_argument("url", nargs="?", default="https://example.com/")
    parser.add_argument("--ca", help="trust only this CA certificate (PEM) instead of the system's")
    args = parser.parse_args()
    sys.exit(asyncio.run(fetch(args.url, args.ca)))


if __name__ == "__main__":
    main()
