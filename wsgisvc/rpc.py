"""oslo.messaging wiring: the transport, an RPC server, a client.

A service listens on ``Target(topic, server=host)``: oslo.messaging then
consumes the shared ``topic`` queue (any worker of the topic), the
``topic.host`` queue (this host) and a fanout queue of its own (every
worker). Nothing here touches the broker before ``start()`` or the first
call, so a process that never uses RPC never needs a broker.

Executor: always ``threading``. Left to itself, oslo.messaging (18.x) picks
its ``eventlet`` executor in a monkey-patched process; that executor is
deprecated (removal planned for 2026.1) and was measured slower
(doc/source/rpc.rst, "Executor"); ``threading``'s threads are green threads
once patched. oslo.messaging warns about the ``executor`` argument
itself (it will go once threading is the only model); that one warning is
silenced, and an oslo.messaging that no longer takes the argument gets none.

Stopping: oslo.messaging's rabbit listener only notices a stop between two
waits for the broker, and an idle one waits up to 5 s; then closing the
connection deletes the fanout queue under a live consumer, so RabbitMQ
cancels it and amqp warns "Received method (60, 30) during closing channel".
``stop()`` therefore first cancels the consumers at the broker
(``_cancel_consumers``): the reply wakes the listener at once, and the
queues are closed in the order AMQP expects. Then futurist's executor
threads, which look for a shutdown only once a second, are woken by
``_wake_executor_threads``. Those two functions are the only ones here that
touch oslo.messaging's and futurist's internals; tests/functional/
test_rpc_stop.py fails when an upgrade moves them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterable
from typing import Any

import futurist
import oslo_messaging as messaging
from futurist import _utils as futurist_utils
from oslo_config import cfg
from oslo_messaging import opts as messaging_opts
from oslo_messaging.rpc import dispatcher
from oslo_messaging.rpc import server as rpc_server

from wsgisvc import loopingcall, metrics, opts

LOG = logging.getLogger(__name__)

EXECUTOR = "threading"

#: Errors that mean "the broker could not be reached", as opposed to a reply
#: that did not come in time (messaging.MessagingTimeout).
BrokerUnreachable = (messaging.MessageDeliveryFailure, messaging.ServerListenError)


def _register_global_only_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging registers its tracing and metrics options on the global
    ``cfg.CONF`` only, then reads them from the conf it is handed; register
    them on ours too, or every call fails with NoSuchOptError."""
    try:
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing
    except ImportError:  # an oslo.messaging without them needs nothing
        return
    conf.register_opts(tracing.oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf.register_opts(metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Every option oslo.messaging lists, registered now: its drivers register
    theirs only when a worker first connects, so without this a bad value
    would surface there, after the fork, instead of in the parent."""
    for group, found in messaging_opts.list_opts():
        conf.register_opts(found, group=getattr(group, "name", group))
    _register_global_only_opts(conf)


def _default_transport_opts() -> list[cfg.Opt]:
    """transport_url and its [DEFAULT] siblings, as oslo.messaging lists them."""
    return next(found for group, found in messaging_opts.list_opts() if group is None)


def get_transport(conf: cfg.ConfigOpts, url: str | None = None) -> messaging.Transport:
    """The RPC transport of ``transport_url`` (or ``url``); connects lazily."""
    _register_global_only_opts(conf)
    return messaging.get_rpc_transport(conf, url=url)


def broker_reachable(conf: cfg.ConfigOpts, timeout: float = 2.0) -> bool:
    """Can a TCP connection reach any broker of ``transport_url``?

    Needed because oslo.messaging opens a caller's reply queue with unbounded
    retries whatever ``retry`` says, so the first call to a dead broker
    would hang instead of failing.
    """
    conf.register_opts(_default_transport_opts())
    url = messaging.TransportURL.parse(conf, conf.transport_url or "rabbit://")
    hosts = url.hosts or [messaging.TransportHost(hostname="localhost")]
    default_port = 5672 if url.transport.startswith(("rabbit", "amqp")) else None
    for host in hosts:
        port = host.port or default_port
        if port is None:
            return True  # not a TCP broker we know how to probe
        try:
            socket.create_connection(
                (host.hostname or "localhost", port), timeout
            ).close()
            return True
        except OSError:
            continue
    return False


class BrokerWatch:
    """Says once that the broker went away and once that it came back.

    oslo.messaging reconnects by itself but logs every retry; an operator
    wants one line when the service lost its broker and one when it has it
    back, with how long it was gone. The service keeps running meanwhile.
    """

    def __init__(self, conf: cfg.ConfigOpts, interval: float):
        self.conf = conf
        self.interval = interval
        self._lost_since: float | None = None
        self._loop: loopingcall.FixedIntervalLoopingCall | None = None

    @property
    def reachable(self) -> bool:
        return self._lost_since is None

    def start(self) -> None:
        self._loop = loopingcall.FixedIntervalLoopingCall(self.check)
        self._loop.start(self.interval, initial_delay=self.interval)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
            self._loop.wait()
            self._loop = None

    def check(self) -> None:
        reachable = broker_reachable(self.conf, timeout=min(2.0, self.interval))
        if not reachable and self._lost_since is None:
            self._lost_since = time.monotonic()
            LOG.error(
                "Lost the message broker %s; the service keeps running and RPC "
                "resumes when it is back",
                _broker_hosts(self.conf),
            )
        elif reachable and self._lost_since is not None:
            LOG.warning(
                "Message broker %s reachable again after %.1f s",
                _broker_hosts(self.conf),
                time.monotonic() - self._lost_since,
            )
            self._lost_since = None


def _broker_hosts(conf: cfg.ConfigOpts) -> str:
    url = messaging.TransportURL.parse(conf, conf.transport_url or "rabbit://")
    hosts = ",".join(f"{h.hostname}:{h.port}" for h in url.hosts) or "localhost"
    return f"{url.transport}://{hosts}"


class HiddenMethodsPolicy(dispatcher.RPCAccessPolicyBase):
    """Private methods and those an endpoint names in ``rpc_hidden`` (a
    manager's lifecycle hooks) cannot be called over RPC."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        hidden = getattr(endpoint, "rpc_hidden", ())
        return not method.startswith("_") and method not in hidden


class _MeteredDispatcher(dispatcher.RPCDispatcher):
    """Counts and times every message dispatched (wsgisvc_rpc_calls_total,
    wsgisvc_rpc_call_duration_seconds); used only when metrics are on.

    The method label is one of the endpoints' methods a message can call, or
    ``other``: the name comes from the sender, and each new label is one
    more set of series in every scrape and in the worker's file, for good.
    """

    def __init__(self, endpoints, serializer, access_policy=None) -> None:
        super().__init__(endpoints, serializer, access_policy)
        self._methods = frozenset(
            name
            for endpoint in self.endpoints
            for name in dir(type(endpoint))
            if callable(getattr(type(endpoint), name, None))
            and self.access_policy.is_allowed(endpoint, name)
        )

    def dispatch(self, incoming):
        method = incoming.message.get("method")
        if not (isinstance(method, str) and method in self._methods):
            method = metrics.OTHER
        begin = time.perf_counter()
        outcome = "error"
        try:
            result = super().dispatch(incoming)
            outcome = "ok"
            return result
        finally:
            metrics.rpc_call_finished(method, outcome, time.perf_counter() - begin)


def _rpc_server(transport, target, endpoints) -> messaging.MessageHandlingServer:
    """get_rpc_server() with the threading executor (see the module doc) and,
    when metrics are on, a dispatcher that counts calls."""
    dispatcher_class = (
        _MeteredDispatcher if metrics.enabled() else dispatcher.RPCDispatcher
    )
    rpc_dispatcher = dispatcher_class(endpoints, None, HiddenMethodsPolicy)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*executor.*", category=DeprecationWarning
            )
            return rpc_server.RPCServer(transport, target, rpc_dispatcher, EXECUTOR)
    except TypeError:  # an oslo.messaging without the argument: threading only
        return rpc_server.RPCServer(transport, target, rpc_dispatcher)


def _listener_connection(server: messaging.MessageHandlingServer):
    """The rabbit driver's listening connection of a started ``server``
    (oslo.messaging internals), or None for another driver."""
    poll_style = getattr(server.listener, "_poll_style_listener", None)
    connection = getattr(poll_style, "conn", None)
    return connection if hasattr(connection, "_consumers") else None


def _cancel_consumers(server: messaging.MessageHandlingServer) -> None:
    """Send basic.cancel for every consumer of ``server``'s connection.

    Sent without waiting for the reply: the listener thread, blocked reading
    the connection, reads the cancel-ok, which ends its wait, and it then
    sees the stop. (Waiting here would make a second reader on one socket.)
    Messages already delivered are still handled.
    """
    import amqp.spec

    connection = _listener_connection(server)
    if connection is None or connection.channel is None:
        return
    try:
        for tag in list(connection._consumers.values()):
            connection.channel.send_method(
                amqp.spec.Basic.Cancel, "sb", (str(tag), False)
            )
    except (OSError, *connection.connection.recoverable_connection_errors) as exc:
        LOG.debug("could not cancel the RPC consumers: %s", exc)


def _wake_executor_threads(server: messaging.MessageHandlingServer) -> None:
    """Wait for the calls in progress, then let the executor's threads go now.

    A futurist worker thread waits for work one second at a time and sees a
    shutdown only when a wait ends, so MessageHandlingServer.wait() would
    take up to a second more than the calls it waits for. Here the executor
    is shut down once its queue is done (so wait() does not do it again),
    and every thread is handed a no-op that wakes it to see it is stopping.
    """
    executor = getattr(server, "_work_executor", None)
    if not isinstance(executor, futurist.ThreadPoolExecutor):
        return
    executor._work_queue.join()  # every call taken from the broker answered
    threads = executor.num_workers
    executor.shutdown(wait=False)
    for _ in range(threads):
        executor._work_queue.put(
            futurist_utils.WorkItem(futurist.Future(), lambda: None)
        )


class RPCServer:
    """An RPC server with the ServiceBase lifecycle: ``start()``, ``stop()``
    (stop consuming), ``wait()`` (let in-flight calls finish within
    ``graceful_shutdown_timeout``, then close the transport)."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        topic: str,
        host: str,
        endpoints: Iterable[Any],
        transport: messaging.Transport | None = None,
        watch_interval: float | None = None,
    ):
        opts.register(conf, opts.launcher_opts)
        self._watch = BrokerWatch(conf, watch_interval) if watch_interval else None
        self.conf = conf
        self.target = messaging.Target(topic=topic, server=host)
        self.endpoints = list(endpoints)
        self._transport = transport
        self._owns_transport = transport is None
        self._server: messaging.MessageHandlingServer | None = None

    def start(self) -> None:
        if self._transport is None:
            self._transport = get_transport(self.conf)
        self._server = _rpc_server(self._transport, self.target, self.endpoints)
        self._server.start()
        if self._watch is not None:
            self._watch.start()
        LOG.info(
            "RPC server consuming %s, %s.%s and fanout on %s",
            self.target.topic,
            self.target.topic,
            self.target.server,
            self._transport_name(),
        )

    def stop(self) -> None:
        """Stop taking new messages; calls in progress go on."""
        if self._watch is not None:
            self._watch.stop()
        if self._server is not None:
            _cancel_consumers(self._server)
            self._server.stop()

    def wait(self) -> None:
        """Wait for in-flight calls (bounded), then release the broker."""
        if self._server is None:
            return
        server, self._server = self._server, None
        timeout = self.conf.graceful_shutdown_timeout or None
        # A (green, when patched) thread bounds the wait for either executor.
        waiter = threading.Thread(
            target=_drain, args=(server,), name="rpc-drain", daemon=True
        )
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            LOG.warning(
                "RPC calls on %s still running after %s s; closing the transport",
                self.target.topic,
                timeout,
            )
        self._close_transport()

    def _close_transport(self) -> None:
        if self._owns_transport and self._transport is not None:
            self._transport.cleanup()
            self._transport = None

    def _transport_name(self) -> str:
        url = self.conf.transport_url or "rabbit://"
        try:
            return messaging.TransportURL.parse(self.conf, url).transport
        except messaging.InvalidTransportURL:
            return "?"


def _drain(server: messaging.MessageHandlingServer) -> None:
    _wake_executor_threads(server)
    server.wait()


class RPCClient:
    """Calls and casts to a topic, as a caller writes them::

        client = RPCClient(conf, "worker")
        client.call({}, "echo", payload="hi")            # any worker
        client.call({}, "echo", server="h1", payload=1)  # that host
        client.cast({}, "reset", fanout=True)            # every worker

    ``retry=0`` makes a call fail fast (MessageDeliveryFailure) when the
    broker is unreachable instead of retrying until the timeout: before each
    call the broker is probed (one TCP connect), see broker_reachable().
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        topic: str,
        version: str = "1.0",
        timeout: float | None = None,
        retry: int | None = None,
        transport: messaging.Transport | None = None,
    ):
        self._owns_transport = transport is None
        self.transport = transport or get_transport(conf)
        self.conf = conf
        self.fail_fast = retry is not None
        self._client = messaging.get_rpc_client(
            self.transport,
            messaging.Target(topic=topic, version=version),
            timeout=timeout,
            retry=retry,
        )

    def call(
        self,
        ctxt: dict,
        method: str,
        *,
        server: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        self._check_broker()
        options: dict[str, Any] = {"server": server}
        if timeout is not None:  # None would mean "wait forever", not "default"
            options["timeout"] = timeout
        return self._client.prepare(**options).call(ctxt, method, **kwargs)

    def cast(
        self,
        ctxt: dict,
        method: str,
        *,
        server: str | None = None,
        fanout: bool = False,
        **kwargs: Any,
    ) -> None:
        self._check_broker()
        self._client.prepare(server=server, fanout=fanout).cast(ctxt, method, **kwargs)

    def _check_broker(self) -> None:
        if self.fail_fast and not broker_reachable(self.transport.conf):
            raise messaging.MessageDeliveryFailure(
                "the message broker of transport_url cannot be reached"
            )

    def close(self) -> None:
        if self._owns_transport:
            self.transport.cleanup()


__all__ = [
    "BrokerUnreachable",
    "HiddenMethodsPolicy",
    "RPCClient",
    "RPCServer",
    "broker_reachable",
    "get_transport",
]
