"""Which provenance type's rules apply to a PE, without changing the PE's class.

A PE that is itself a ``ProvenanceType`` subclass applies its own methods. Otherwise the
types named for it in ``s-prov:componentsType`` (default: ``ProvenanceType``) apply through
a *view*: an object of a class made from those types whose attribute lookups fall through
to the PE, so a type's ``apply_derivation_rule`` or ``extractItemMetadata`` sees the PE's
attributes and the type's provenance methods, while the PE's own class is never touched
(the original replaced every PE's ``__class__``).
"""

from __future__ import annotations

import importlib
import sys
from functools import cache
from typing import Any

from dispel4py.core import GenericPE
from dispel4py.errors import UsageError

from .provtypes import ProvenanceType

__all__ = ["component_of", "rules_for", "resolve_types"]


def component_of(components: dict[str, Any], pe: Any, pe_id: str) -> dict[str, Any]:
    """The ``s-prov:componentsType`` entry of ``pe`` (by id, name or class name), or ``{}``."""
    for key in (pe_id, getattr(pe, "name", None), type(pe).__name__):
        if key in components:
            return components[key]
    return {}


def _lookup(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def resolve_types(names: tuple[tuple[str, str], ...], pe: Any, pe_id: str) -> tuple[type, ...]:
    """The classes named ``(module, qualname)``; the PE's own module is tried too (a workflow
    loaded from a file). An unknown name is a :class:`UsageError` naming the entry."""
    found = []
    for module, qualname in names:
        candidates = [(module, qualname), (type(pe).__module__, qualname)]
        cls = None
        for mod, name in candidates:
            if mod in sys.modules or mod == module:
                try:
                    cls = _lookup(mod, name)
                    break
                except (ImportError, AttributeError):
                    continue
        if not (isinstance(cls, type) and issubclass(cls, ProvenanceType)):
            raise UsageError(
                f"provenance config key 's-prov:componentsType' entry for {pe_id}: "
                f"'s-prov:type' {qualname!r} is not a provenance type (a ProvenanceType subclass)"
            )
        found.append(cls)
    return tuple(found)


@cache
def _view_class(types: tuple[type, ...]) -> type:
    def __getattr__(self: Any, name: str) -> Any:
        return getattr(self.__dict__["_pe"], name)

    try:
        return type("ProvenanceView", types, {"__getattr__": __getattr__, "__module__": __name__})
    except TypeError:  # the types' bases cannot be ordered: the first type decides
        return type("ProvenanceView", types[:1], {"__getattr__": __getattr__, "__module__": __name__})


def rules_for(pe: Any, pe_id: str, component: dict[str, Any], context: Any) -> Any:
    """The object whose provenance methods apply to ``pe``; sets up ``context`` for it."""
    types = resolve_types(component.get("types", ()), pe, pe_id)
    if not types and isinstance(pe, ProvenanceType):
        rules = pe
    else:
        view: Any = object.__new__(_view_class(types or (ProvenanceType,)))
        view.__dict__["_pe"] = pe
        view.__dict__["_prov_ctx"] = context
        rules = view
    cls = type(rules)
    default_rule = cls.apply_derivation_rule is ProvenanceType.apply_derivation_rule
    context.default_rule = default_rule
    context.keep_history = default_rule and _defines_postprocess(pe)
    context.custom_metadata = cls.extractItemMetadata is not ProvenanceType.extractItemMetadata
    if context.wlength is None:
        context.wlength = getattr(pe, "wlength", None)
    return rules


def _defines_postprocess(pe: Any) -> bool:
    cls = type(pe)
    return cls.postprocess is not GenericPE.postprocess or cls._postprocess is not GenericPE._postprocess
