"""Validating with each expectation's configuration built once, not once per setting read.

GX's ``Expectation.configuration`` is a property that builds a new
``ExpectationConfiguration`` from the pydantic model on every read: ``self.dict()``, a
regular expression to name the type, and a new object. While validating, GX reads it once
per domain and success setting it looks up (``_get_domain_kwargs``, ``_get_success_kwargs``
and ``_get_success_kwarg`` read ``self.configuration.kwargs`` inside their loops), about a
hundred times per expectation and a thousand per validation of one of our suites: a third
of the Python time of a validation of a few hundred rows.

Inside ``kept_configurations()`` the property returns, for the same expectation object, the
configuration it built on the first read. What makes that safe during a validation:

- GX validates expectations it makes itself from configurations
  (``ExpectationConfiguration.to_domain_obj``, after the batch id is set on a deep copy)
  and does not change them afterwards; only saving an expectation to a data context and
  rendering it for GX Cloud assign fields, and neither happens here.
- Nothing we know of changes a configuration returned by the property: readers read its
  ``kwargs``, and the validation result carries it as ``expectation_config``.
- An object is recognised by identity and kept alive by the cache, so a new object at the
  address of a freed one is never mistaken for it.

The property is replaced on the class for the duration of the block and restored after,
so callers must hold the lock that serialises validations (``quality.gx_session.VALIDATION_LOCK``).
Only a GX whose property is still the one this was written against is changed: another
version validates as it comes (``GX_VERSIONS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# GX versions whose Expectation.configuration builds a fresh object from the model on
# every read and is read per setting while validating (checked in
# tests/quality/test_gx_configurations.py).
GX_VERSIONS = ("1.24.",)


@contextmanager
def kept_configurations() -> Iterator[None]:
    """Within the block, each GX expectation builds its configuration once."""
    import great_expectations
    from great_expectations.expectations.expectation import Expectation

    original = Expectation.__dict__.get("configuration")
    if not isinstance(original, property) or not great_expectations.__version__.startswith(
        GX_VERSIONS
    ):
        yield
        return
    built: dict[int, tuple[Any, Any]] = {}

    def configuration(self: Any) -> Any:
        found = built.get(id(self))
        if found is None or found[0] is not self:
            found = built[id(self)] = (self, original.fget(self))
        return found[1]

    Expectation.configuration = property(configuration, doc=original.__doc__)
    try:
        yield
    finally:
        Expectation.configuration = original
