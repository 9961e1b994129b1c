"""The smallest app: GET / answers "Hello, world!" over HTTPS.

Run it:   python -m framework serve examples.hello:app
Poke it:  curl --cacert "$(python -m framework certs dev-ca)" https://localhost:8443/
"""

from framework import App, Request

app = App()


@app.get("/")
async def hello(request: Request) -> str:
    return "Hello, world!"


if __name__ == "__main__":
    app.run(port=8443)
