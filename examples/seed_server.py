"""The seed's Node.js HTTPS server, rewritten: a key and a certificate, and one page.

    const server = https.createServer({ key, cert });
    server.on("request", (req, res) => { res.writeHead(200, {"content-type": "text/html"});
                                         res.end("<h1>Hello HTTPS</h1>"); });
    server.listen(3000);

Make a CA and a certificate for localhost, then run it:
    python -m framework certs ca --dir pki
    python -m framework certs issue --ca pki --host localhost \
        --out-cert server.cert --out-key server.key
    python examples/seed_server.py
Poke it:
    curl --cacert pki/ca.pem https://localhost:3000/
"""

from framework import App, Request, Response

app = App()


@app.get("/{path:path}")
async def page(request: Request, path: str) -> Response:
    return Response("<h1>Hello HTTPS</h1>", media_type="text/html")


if __name__ == "__main__":
    app.run(port=3000, certfile="server.cert", keyfile="server.key")
