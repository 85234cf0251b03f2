"""Stand-in images for integration tests: the real images cannot be pulled on test machines.

``build.py`` builds them (``build_all(docker_client)``); the other modules run inside them (or
as plain local processes in unit tests). See build.py's docstring for what each one honours.
"""
