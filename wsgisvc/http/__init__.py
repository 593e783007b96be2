"""One HTTP/1.1 core both backends drive, in the order its modules import:

- ``limits``: a server's limits, and the sizes and times every server shares;
- ``guard``: the head checks llhttp leaves to us (framing, Host, target form);
  ``parser``: bytes through llhttp (httptools) into requests, within limits;
- ``protocol``: one connection's HTTP/1.1 without I/O: bytes and time in,
  events and bytes out, every HTTP decision;
- ``core``: the WSGI adapter (environ, the app call, the access line), with
  ``body`` (``wsgi.input``) and ``response`` (start_response, write);
  ``accesslog``: the access line;
- ``scheduling``: the runtime contract; ``green`` / ``threaded``: the
  runtimes of the two backends, which move bytes, wake at deadlines and give
  requests slots (``slots``: the eventlet runtime's resizable pool);
  ``listeners``: listening sockets and what accept() errors mean.
"""
