"""A tiny calculator: the demo project of Stepwise's fix-and-test workflow."""


def add(a, b):
    """Return the sum of a and b."""
    return a + b


# TODO: factorial
