"""The classic OpenStack API server, as a peer: a parent binds, forks two
children, and each runs ``eventlet.wsgi.server`` on a GreenPool (eventlet's
defaults otherwise, access log included).

    python -m bench._eventlet_wsgi --paste FILE --app NAME [--workers 2]
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from eventlet import wsgi  # noqa: E402
from paste import deploy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paste", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=100)
    args = parser.parse_args()
    app = deploy.loadapp(f"config:{os.path.abspath(args.paste)}", name=args.app)
    sock = eventlet.listen(("127.0.0.1", 0), backlog=1024)
    print(f"eventlet.wsgi listening on http://127.0.0.1:{sock.getsockname()[1]}")
    sys.stdout.flush()
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            wsgi.server(sock, app, custom_pool=eventlet.GreenPool(args.pool_size))
            os._exit(0)
        children.append(pid)
    signal.signal(
        signal.SIGTERM, lambda *_: [os.kill(p, signal.SIGTERM) for p in children]
    )
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue


if __name__ == "__main__":
    main()
