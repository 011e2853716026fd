"""Chapter 06: a crawler on gevent, against a local site (see each module's docstring)."""
