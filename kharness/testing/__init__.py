"""Stand-ins for unit tests (a fake guest), shipped so that the pytest plugin and other projects'
tests can use them too."""
