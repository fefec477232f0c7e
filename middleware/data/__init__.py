"""Survey data: countries and languages, probes, country answers and the sources they are built from, value profiles."""

__all__: list[str] = []  # the modules are the API; nothing is re-exported here
