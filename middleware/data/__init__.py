"""Survey data: countries and languages, probes, country answers and the sources they are built from, value profiles."""
