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

import json
import os
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


def check_strategy(name: str, environ=None) -> None:
    """Check, without TensorFlow, what :func:`make_strategy` will need: a known name and, for
    ``multiworker``, a good TF_CONFIG (a FacekpError saying what is wrong otherwise)."""
    if name not in STRATEGIES:
        raise FacekpError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "multiworker":
        parse_tf_config((os.environ if environ is None else environ).get("TF_CONFIG"))


def make_strategy(name: str, environ=None):
    """The strategy called ``name`` (one of :data:`STRATEGIES`); None for ``auto`` (the
    Trainer then takes :func:`default_strategy`). Call it before anything
    else runs TensorFlow operations."""
    check_strategy(name, environ)  # a clear error before TensorFlow reads TF_CONFIG
    if name == "auto":
        return None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


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
