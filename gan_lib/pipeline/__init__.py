"""The book pipeline (the ``ganbook`` command) and the display helpers chapters share.

- :mod:`.params` -- validation of a chapter's papermill parameters and profiles.
- :mod:`.book` -- executing chapters with papermill and rendering the book with Jupyter Book.
- :mod:`.cli` -- the ``ganbook`` command line.

Its dependencies (papermill, Jupyter Book, matplotlib, pandas) are the ``book`` extra; nothing in
the rest of :mod:`gan_lib` imports this package, and importing it imports none of its submodules.
"""
