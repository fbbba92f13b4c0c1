"""Shape and dtype aliases shared across ssmflow (jaxtyping)."""

from jaxtyping import Array, ArrayLike, Bool, Complex, Float, Int, PRNGKeyArray, PyTree

RealScalarLike = Float[ArrayLike, ""]

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "Complex",
    "Float",
    "Int",
    "PRNGKeyArray",
    "PyTree",
    "RealScalarLike",
]
