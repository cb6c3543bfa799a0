"""Package data: the dbt project and the expectation suites that a built wheel carries.

In the source tree `dbt_project` and `expectations` here are symbolic links to the folders at the
repository's top level; a wheel build copies their files in (see `[tool.setuptools.package-data]`).
"""
