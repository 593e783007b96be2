"""Serve a paste app with waitress on 127.0.0.1 port 0 (the bench's reference).

waitress has no paste-ini runner of its own, so this loads the app the same way
every other server does and logs ``Serving on http://127.0.0.1:PORT``.
"""

import argparse
import logging

import waitress
from paste.deploy import loadapp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paste", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    app = loadapp(f"config:{args.paste}", name=args.app)
    waitress.serve(app, listen="127.0.0.1:0", threads=args.threads)


if __name__ == "__main__":
    main()
