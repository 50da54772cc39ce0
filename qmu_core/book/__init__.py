"""The book pipeline (tooling, not science): list, run and build the chapters.

One module per concern, each importing only those above it in this list:

* :mod:`~qmu_core.book.locations`: the folders of an invocation (notebooks, book, results);
* :mod:`~qmu_core.book.errors`: the errors shown to the user as one line;
* :mod:`~qmu_core.book.registry`: the chapters, their parameter classes and ``ci`` sets;
* :mod:`~qmu_core.book.cells`: notebook surgery (tags, staleness, stored errors, the box);
* :mod:`~qmu_core.book.timings`: execution times, machine and versions (``timings.csv``);
* :mod:`~qmu_core.book.execution`: papermill, atomic replacement, failed executions kept;
* :mod:`~qmu_core.book.parameters`: reading, parsing, checking and presenting parameters;
* :mod:`~qmu_core.book.build`: the Jupyter Book build;
* :mod:`~qmu_core.book.commands`: run, run-all, baselines, refresh-prose;
* :mod:`~qmu_core.book.cli`: the command line ``python -m qmu_core``.

:mod:`~qmu_core.book.sphinx` is the Sphinx extension named in ``_config.yml``; it imports
nothing from the rest. This ``__init__`` imports nothing, so that loading one module (the
Sphinx extension, the registry) does not load the others.
"""
