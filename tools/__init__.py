"""Tools run from a checkout of the repository, never installed with the wheel."""
