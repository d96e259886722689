"""Memory hygiene for processes that train again and again (the app, the soak benchmark):
glibc's malloc arenas capped before TensorFlow starts its threads (at import), freed pages
handed back after a run, and the gradient registry entries a run leaves behind released."""
from __future__ import annotations

import contextlib

# --- pieces -------------------------------------------------------------------------------

#: glibc's malloc arenas for a training process (unless MALLOC_ARENA_MAX says otherwise).
MALLOC_ARENAS = 2


def _glibc():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas before TensorFlow starts its thread pools.

    A run allocates and frees hundreds of MB (weights, optimizer slots, batches) from many
    threads; glibc gives threads their own arenas and keeps freed pages in them, so a process
    that trained again and again grew by 6-8 MB a run although nothing was in use any more
    (benchmarks/soak.py: +326 MB over cycles 10 to 50; with 2 arenas, flat).
    """
    import os

    libc = _glibc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        m_arena_max = -8  # from malloc.h
        libc.mallopt(m_arena_max, MALLOC_ARENAS)


def return_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the system (glibc only)."""
    import gc

    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


limit_malloc_arenas()


@contextlib.contextmanager
def released_custom_gradients():
    """Release what TensorFlow keeps of a run's training graph when the run ends.

    ``tf.custom_gradient`` in graph mode (used by the distribution strategy's ``all_reduce``
    in every traced training step) registers its gradient function in TensorFlow's global
    gradient registry under a fresh name and never removes it. That function holds the traced
    graph, and the graph holds the model's variables and optimizer slots: every training run
    in a process leaked about the model's size three times over (120 MB for 'seed'), even
    after ``keras.backend.clear_session()``. The gradients are only needed while the step is
    traced, so the entries a run added are dropped when it ends. (One run at a time, as the
    app and the CLI do: a second run tracing at that moment could lose its entries.)
    """
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):  # a TensorFlow without that private registry
        yield
        return
    before = set(registry)
    try:
        yield
    finally:
        for name in [k for k in list(registry) if k not in before]:
            if name.startswith("CustomGradient-"):
                registry.pop(name, None)
