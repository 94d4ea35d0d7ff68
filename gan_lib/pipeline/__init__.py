"""The book pipeline (the ``ganbook`` command) and the display helpers chapters share.

- :mod:`.params` -- validation of a chapter's papermill parameters and profiles.
- :mod:`.book` -- executing chapters with papermill and rendering the book with Jupyter Book.
- :mod:`.cli` -- the ``ganbook`` command line.
- :mod:`.display` -- what chapters show besides figures: glued numbers, tables, ``check`` callouts.
- :mod:`.sphinx_mathjax` -- a Sphinx extension serving MathJax from the site (offline math).
- :mod:`.browser` -- every built page checked in headless Chromium at a 1280-px window.

Its dependencies (papermill, Jupyter Book, matplotlib, seaborn, pandas, pyyaml, filelock, selenium,
django-static-mathjax) are the ``book`` extra; nothing in
the rest of :mod:`gan_lib` imports this package, and importing it imports none of its submodules.
"""
