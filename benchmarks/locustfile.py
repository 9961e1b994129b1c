"""locust's fastest user class, for comparing load generators (an optional extra).

Run by ``python -m benchmarks.compare --generators`` as
``locust -f benchmarks/locustfile.py --headless -u 64 -r 64 -t 10s --host https://...``.
FastHttpUser does not check the server's certificate by default (``insecure = True``); that
saves it nothing per request on a kept-alive connection.
"""

from locust import FastHttpUser, constant, task


class Hello(FastHttpUser):
    wait_time = constant(0)

    @task
    def hello(self) -> None:
        self.client.get("/")
