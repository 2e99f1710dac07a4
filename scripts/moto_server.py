"""moto server for the AWS tests, with DynamoDB requests serialized.

moto evaluates a DynamoDB ConditionExpression and applies the write as separate steps without
a lock, so concurrent conditional writes on one item can all succeed (measured: 8 threads
racing one `SET v = :n IF v = :e`, 30 of 200 trials had more than one winner). Real DynamoDB
applies a conditional write atomically, and the lifecycle's guard (version-conditioned
commits) relies on that. This server runs moto's own application, but lets one DynamoDB request
at a time through; S3 and SQS (long polls included) stay concurrent.

Usage: python3 scripts/moto_server.py HOST PORT
"""
import os
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with lock:
                # Consume the whole answer under the lock: the write happens while it is built.
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(host, port, serialized, threaded=True)


if __name__ == "__main__":
    main()
