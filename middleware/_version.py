__version__ = "0.1.0"  # the only place the version is written (pyproject and the signature read it)
