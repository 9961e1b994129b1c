"""Mutual TLS: the server checks the client's certificate too, and greets it by name.

Make a CA, a server certificate and a client certificate:
    python -m framework certs ca --dir pki
    python -m framework certs issue --ca pki --host localhost \\
        --out-cert server.pem --out-key server.key
    python -m framework certs issue --ca pki --host alice --client \\
        --out-cert alice.pem --out-key alice.key
Run it:
    python -m framework serve examples.mtls:app --certfile server.pem --keyfile server.key \\
        --client-ca pki/ca.pem
Poke it:
    curl --cacert pki/ca.pem --cert alice.pem --key alice.key https://localhost:8443/
    curl --cacert pki/ca.pem https://localhost:8443/     # refused: no client certificate
"""

from framework import App, HTTPError, Request

app = App()


@app.get("/")
async def greet(request: Request) -> str:
    name = request.tls.peer_common_name if request.tls else None
    if name is None:
        # Reached only with --client-cert optional: the handshake let the client in without one.
        raise HTTPError(401, "a client certificate is required")
    return f"Hello, {name}!\n"
