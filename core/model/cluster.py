"""Training on one machine or several: the ``tf.distribute`` strategy a run uses.

- ``auto``: :func:`default_strategy` (``MirroredStrategy`` over several
  GPUs, else the default strategy).
- ``mirrored``: ``MirroredStrategy`` over this machine's GPUs (its CPU when it has none).
- ``multiworker``: ``MultiWorkerMirroredStrategy`` over the machines named by the standard
  ``TF_CONFIG`` environment variable, checked first (:func:`parse_tf_config`) so that a
  mistake there is one clear line, not a hang or a TensorFlow traceback.

A strategy must exist before TensorFlow runs any operation (``MultiWorkerMirroredStrategy``
configures the process's collective ops), so a program makes it first (:func:`make_strategy`)
and hands it to the Trainer. Constructing the multi-worker strategy waits until every task of
the cluster has started.

This module imports TensorFlow only inside the functions that need it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass

from facekp.core.errors import FacekpError

STRATEGIES = ("auto", "mirrored", "multiworker")
#: The jobs a multi-worker run has: at most one chief (the worker that writes the model) and
#: workers; without a chief, worker 0 is the chief.
JOBS = ("chief", "worker")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


class ClusterError(FacekpError):
    """A TF_CONFIG that cannot describe a multi-worker run."""


@dataclass(frozen=True)
class ClusterSpec:
    """A checked TF_CONFIG: ``cluster`` maps each job to its tasks' ``host:port`` addresses;
    this process is task ``task_index`` of job ``task_type``."""
    cluster: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return sum(len(self.cluster[job]) for job in JOBS if job in self.cluster)

    @property
    def is_chief(self) -> bool:
        """The task that writes the model: the chief, or worker 0 when there is no chief."""
        if self.task_type == "chief":
            return True
        return "chief" not in self.cluster and self.task_index == 0


def _bad(what: str) -> ClusterError:
    return ClusterError(f"TF_CONFIG: {what}; expected JSON like {TF_CONFIG_EXAMPLE} (the same "
                        "cluster on every machine, each with its own task index)")


def parse_tf_config(text: str | None) -> ClusterSpec:
    """Check a ``TF_CONFIG`` value and return what it says (a ClusterError saying what is
    wrong and what was expected otherwise): a JSON object with ``cluster`` (job -> list of
    ``host:port``, jobs ``chief`` (one task at most) and ``worker``) and ``task`` (``type``, one
    of the cluster's jobs, and ``index``, a position in that job's list)."""
    if text is None or not text.strip():
        raise _bad("the environment variable is not set (--strategy multiworker reads the "
                   "cluster from it)")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _bad(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _bad(f"a JSON {type(value).__name__}, not an object")
    cluster, task = value.get("cluster"), value.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _bad("no \"cluster\" object with the machines' addresses")
    for job, addresses in cluster.items():
        _check_job(job, addresses)
    if not isinstance(task, dict):
        raise _bad("no \"task\" object saying which of the cluster's tasks this process is")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _bad(f"task type {task_type!r} is not one of the cluster's jobs "
                   f"({', '.join(map(repr, cluster))})")
    if isinstance(index, bool) or not isinstance(index, int):
        raise _bad(f"task index {index!r} is not a whole number")
    count = len(cluster[task_type])
    if not 0 <= index < count:
        raise _bad(f"task index {index} is outside the cluster's {task_type!r} list "
                   f"({count} address{'es' if count != 1 else ''}: index 0 to {count - 1})")
    return ClusterSpec(cluster=cluster, task_type=task_type, task_index=index)


def _check_job(job, addresses) -> None:
    if job not in JOBS:
        raise _bad(f"job {job!r} in \"cluster\"; multi-worker training has the jobs "
                   f"{' and '.join(map(repr, JOBS))}")
    if not isinstance(addresses, list) or not addresses:
        raise _bad(f"cluster job {job!r} is not a non-empty list of \"host:port\" addresses")
    if job == "chief" and len(addresses) > 1:
        raise _bad(f"{len(addresses)} chief addresses; a cluster has at most one chief")
    for address in addresses:
        host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(f"address {address!r} of job {job!r} is not \"host:port\" with a port "
                       "from 1 to 65535")


def check_strategy(name: str, environ=None, connect_timeout: float | None = None) -> None:
    """Check, without TensorFlow, what :func:`make_strategy` will need: a known name and, for
    ``multiworker``, a good TF_CONFIG and a positive ``connect_timeout`` (seconds, or None: no
    limit); a FacekpError saying what is wrong otherwise."""
    if name not in STRATEGIES:
        raise FacekpError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if connect_timeout is not None and name != "multiworker":
        raise FacekpError("--connect-timeout goes with --strategy multiworker (the wait for "
                          "the other machines to start)")
    if connect_timeout is not None and not connect_timeout > 0:
        raise FacekpError(f"--connect-timeout must be a positive number of seconds, got "
                          f"{connect_timeout:g}")
    if name == "multiworker":
        parse_tf_config((os.environ if environ is None else environ).get("TF_CONFIG"))


def make_strategy(name: str, environ=None, connect_timeout: float | None = None,
                  note=None):
    """The strategy called ``name`` (one of :data:`STRATEGIES`); None for ``auto`` (the
    Trainer then takes :func:`default_strategy`). Call it before
    anything else runs TensorFlow operations. ``multiworker`` first checks that this task's
    port is free and waits (``connect_timeout`` seconds at most) until every other task has
    started (:func:`wait_for_workers`), saying so through ``note`` (default: stderr)."""
    check_strategy(name, environ, connect_timeout)  # before TensorFlow reads TF_CONFIG
    if name == "auto":
        return None
    if name == "mirrored":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy()
    spec = parse_tf_config((os.environ if environ is None else environ).get("TF_CONFIG"))
    with listening(spec):  # this task's port, held (and seen by the others) while it waits
        import tensorflow as tf

        wait_for_workers(spec, connect_timeout, note or _to_stderr)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.OpError as exc:  # e.g. "Could not start gRPC server"
        raise ClusterError(f"TF_CONFIG: this task ({_who(spec)}) could not join the cluster: "
                           f"{exc.message.splitlines()[0]}") from None


def _to_stderr(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


def _address(spec: ClusterSpec, job: str, index: int) -> tuple[str, int]:
    host, _, port = spec.cluster[job][index].rpartition(":")
    return host.strip("[]"), int(port)


def _who(spec: ClusterSpec) -> str:
    role = ", the chief" if spec.is_chief else ""
    return (f"{spec.task_type} {spec.task_index} at "
            f"{spec.cluster[spec.task_type][spec.task_index]}{role}")


@contextlib.contextmanager
def listening(spec: ClusterSpec):
    """Hold this task's port (all interfaces, as TensorFlow's server binds it) while the block
    runs, so that the other tasks see this one has started; a ClusterError naming the port when
    something else has it. Released at the end, for TensorFlow's server to take."""
    _, port = _address(spec, spec.task_type, spec.task_index)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", port))
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise ClusterError(f"TF_CONFIG: this task's port {port} ({_who(spec)}) is taken on "
                           f"this machine ({exc.strerror or exc}); stop what uses it, or give "
                           "this task another port in TF_CONFIG on every machine") from None
    import threading

    done = threading.Event()
    answering = threading.Thread(target=_answer, args=(sock, done), daemon=True)
    answering.start()
    try:
        yield sock
    finally:
        done.set()
        answering.join()
        sock.close()


def _answer(sock: socket.socket, done) -> None:
    """Accept and close the other tasks' checks (:func:`_answers`) until ``done``, so that
    however long a wait, its queue never fills."""
    sock.settimeout(0.2)
    while not done.is_set():
        try:
            conn, _ = sock.accept()
        except OSError:  # the timeout: look at ``done`` again
            continue
        conn.close()


def wait_for_workers(spec: ClusterSpec, timeout: float | None = None, note=_to_stderr,
                     poll_s: float = 0.25) -> None:
    """Wait until every other task of the cluster answers at its address (it has started:
    :func:`listening`, then TensorFlow's server, hold its port), saying at once whom it waits
    for; a ClusterError naming the tasks still missing after ``timeout`` seconds (None: wait
    as long as it takes)."""
    import time

    others = [(job, i) for job in JOBS for i in range(len(spec.cluster.get(job, [])))
              if (job, i) != (spec.task_type, spec.task_index)]
    if not others:
        return
    limit = ("no time limit; --connect-timeout S gives up after S seconds" if timeout is None
             else f"giving up after {timeout:g} s (--connect-timeout)")
    note(f"{_who(spec)}: waiting for the other {len(others)} of the cluster's tasks to start: "
         f"{', '.join(spec.cluster[j][i] for j, i in others)} ({limit})")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        others = [(j, i) for j, i in others if not _answers(*_address(spec, j, i))]
        if not others:
            return
        if deadline is not None and time.monotonic() >= deadline:
            missing = ", ".join(f"{j} {i} at {spec.cluster[j][i]}" for j, i in others)
            raise ClusterError(f"TF_CONFIG: gave up after {timeout:g} s (--connect-timeout) "
                               f"waiting for {missing} to start; start 'facekp train --strategy "
                               "multiworker' there with the same TF_CONFIG cluster, or give a "
                               "longer --connect-timeout")
        time.sleep(poll_s)


def _answers(host: str, port: int) -> bool:
    """Whether something accepts a TCP connection at host:port within a second."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def workers(strategy) -> int:
    """How many machines (processes) train together under ``strategy``."""
    try:
        local = len(strategy.extended.worker_devices) or 1
    except (RuntimeError, AttributeError):  # the default strategy has no worker devices
        return 1
    return max(1, strategy.num_replicas_in_sync // local)


def is_chief(strategy) -> bool:
    """Whether this process writes the model and its record (TensorFlow's
    ``should_checkpoint``: True except on the non-chief workers of a multi-worker run)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def any_worker(strategy, flag: bool) -> bool:
    """True on every worker when ``flag`` is true on any of them (an all-reduce: every worker
    must call it at the same point). On one machine, ``flag`` itself."""
    if workers(strategy) == 1:
        return bool(flag)
    import tensorflow as tf

    votes = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant(1.0 if flag else 0.0))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)
    return float(total) > 0


def default_strategy():
    """MirroredStrategy over all GPUs when several are visible, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    return tf.distribute.get_strategy()
