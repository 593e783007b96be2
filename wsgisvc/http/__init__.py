"""One HTTP/1.1 core both backends drive.

- ``parser``: bytes through llhttp (httptools) into requests, within limits;
- ``guard``: the head checks llhttp leaves to us (framing, Host, target form);
- ``core``: a connection's requests in turn: its head, environ, the app call,
  closing; ``body``: ``wsgi.input`` and the bounds on bodies; ``response``:
  start_response and the response's framing;
- ``accesslog``: the access line;
- ``slots``: the eventlet scheduler's resizable pool of request slots;
- ``listeners``: listening sockets and what accept() errors mean;
- ``scheduling``: the contract a connection scheduler fulfils;
  ``green`` / ``threaded``: the connection schedulers of the two backends.
"""
