"""Benchmarks. Run each as a module from the repository root, e.g. ``python -m bench.queue``
(as a script, ``bench/queue.py`` would shadow the standard library's ``queue``)."""
