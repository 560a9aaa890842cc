"""moto's server with one request handled at a time (used by moto.sh).

`moto_server` handles requests on parallel threads and moto's DynamoDB backend has no lock:
a conditional PutItem checks, then writes, and TransactWriteItems rolls back by restoring a
copy of the whole table, so concurrent requests can both pass one condition or erase each
other's writes. Seen with moto 5.2.5 under plain `moto_server`: in 20 runs of the six 50-way
race cases of tests/contract/store.rs, 2 runs had two winners (a binding create, an instance
delete); in 5 runs of 8 catalog writers on separate clients, 4 handed out one version twice.
DynamoDB evaluates each conditional write and transaction atomically; holding
one lock around each request gives moto that property, so the store's race tests check the
store's condition expressions instead of moto's thread scheduling.

usage: python moto_serial.py HOST PORT
"""

import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    run_simple(
        host,
        port,
        one_at_a_time,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
