"""The field reference of ``docs/api.md``, generated from the CRDs (hence from the models).

``gpufair crds --docs docs/api.md`` replaces the text between the two markers with
:func:`reference`; the prose around it is written by hand. A test fails when the committed
reference is stale, so descriptions, defaults and validation rules have one source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from gpufair.api import celcost, common

BEGIN: Final = "<!-- BEGIN GENERATED REFERENCE: `gpufair crds --docs docs/api.md` -->"
END: Final = "<!-- END GENERATED REFERENCE -->"


class MarkersMissingError(ValueError):
    """The Markdown file has no place for the generated reference."""


def splice(document: str, reference: str) -> str:
    """``document`` with the generated part replaced (or a new document holding only it)."""
    block = f"{BEGIN}\n\n{reference.strip()}\n\n{END}"
    if not document:
        return block + "\n"
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise MarkersMissingError(f"the document has no {BEGIN!r} ... {END!r} section")
    return document[:start] + block + document[end + len(END) :]


def reference(crds: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: for each CRD its names, columns and a table of every field; then the bounds
    of every list, map and string and the estimated cost of the CEL rules."""
    parts = [_crd_reference(crd) for crd in crds]
    return "\n\n".join([*parts, _bounds(crds)])


def _bounds(crds: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "### Bounds and CEL cost",
        "",
        "Every list, map and string has a bound (`maxItems`, `maxProperties`, `maxLength`):"
        " a real API server estimates the worst-case cost of each CEL rule from these bounds"
        " and refuses a CRD whose rules could cost too much. The limits, chosen for real fleets:",
        "",
        "| what | at most | why |",
        "|---|---|---|",
    ]
    lines += [f"| {b.what} | {b.limit or 'longest value'} | {b.why} |" for b in common.BOUNDS]
    lines += [
        "",
        "Estimated worst-case CEL cost of all rules and messages (`gpufair.api.celcost`, as"
        " kube-apiserver estimates it), against the API server's limit of"
        f" {celcost.STATIC_ESTIMATED_CRD_COST_LIMIT:,} per CRD and"
        f" {celcost.STATIC_ESTIMATED_COST_LIMIT:,} per rule:",
        "",
    ]
    for crd in crds:
        (version,) = crd["spec"]["versions"]
        cost = celcost.schema_cost(version["schema"]["openAPIV3Schema"])
        dearest = max((e.total for e in cost.expressions), default=0)
        lines.append(
            f"- {crd['spec']['names']['kind']}: {cost.total:,} in total, {dearest:,} for the"
            " dearest rule."
        )
    return "\n".join(lines)


def _crd_reference(crd: Mapping[str, Any]) -> str:
    names = crd["spec"]["names"]
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    group = crd["spec"]["group"]
    columns = ", ".join(
        f"{c['name']}{' (wide)' if c.get('priority') else ''}"
        for c in version["additionalPrinterColumns"]
    )
    lines = [
        f"### {names['kind']}",
        "",
        schema["description"],
        "",
        f"`apiVersion: {group}/{version['name']}`, cluster-scoped, short names "
        + ", ".join(f"`{n}`" for n in names["shortNames"])
        + f"; `kubectl get {names['shortNames'][0]}` columns: {columns}.",
    ]
    for part in ("spec", "status"):
        lines += [
            "",
            f"#### {part}",
            "",
            "| field | type | default | description |",
            "|---|---|---|---|",
        ]
        lines += _rows(schema["properties"][part], part)
        rules = list(_rules(schema["properties"][part], part))
        if rules:
            lines += ["", f"Rules the API server checks (CEL) on `{part}`:", ""]
            lines += [f"- `{path}`: {rule}" for path, rule in rules]
    return "\n".join(lines)


def _rows(schema: Mapping[str, Any], path: str) -> Iterator[str]:
    required = set(schema.get("required", ()))
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}"
        kind = _type(child)
        default = f"`{_yaml(child['default'])}`" if "default" in child else ""
        notes = [child.get("description", "").replace("\n\n", " ")]
        notes += _constraints(child, required=name in required)
        text = " ".join(n for n in notes if n).replace("|", "\\|")  # a pipe would end the cell
        yield f"| `{child_path}` | {kind} | {default} | {text} |"
        if child.get("type") == "object" and "properties" in child:
            yield from _rows(child, child_path)
        elif child.get("type") == "array" and "properties" in child.get("items", {}):
            yield from _rows(child["items"], f"{child_path}[]")


def _type(schema: Mapping[str, Any]) -> str:
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{_type(schema['additionalProperties'])}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return kind


def _constraints(schema: Mapping[str, Any], *, required: bool) -> list[str]:
    notes = ["**Required.**"] if required else []
    if "enum" in schema:
        notes.append("One of " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".")
    if "minimum" in schema:
        op = ">" if schema.get("exclusiveMinimum") else ">="
        notes.append(f"{op} {schema['minimum']}.")
    if "maximum" in schema:
        op = "<" if schema.get("exclusiveMaximum") else "<="
        notes.append(f"{op} {schema['maximum']}.")
    if "pattern" in schema:
        notes.append(f"Pattern `{schema['pattern']}`.")
    if "maxLength" in schema:
        notes.append(f"At most {schema['maxLength']} characters.")
    if "minItems" in schema:
        notes.append(f"At least {schema['minItems']} item(s).")
    if "maxItems" in schema:
        notes.append(f"At most {schema['maxItems']} items.")
    if "maxProperties" in schema:
        notes.append(f"At most {schema['maxProperties']} entries.")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        notes.append("Unique values.")
    elif list_type == "map":
        keys = ", ".join(f"`{k}`" for k in schema["x-kubernetes-list-map-keys"])
        notes.append(f"One entry per {keys}.")
    return notes


def _rules(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations", ()):
        where = path + rule.get("fieldPath", "")
        yield where, f"{rule['message']} (`{rule['rule']}`)"
    for name, child in schema.get("properties", {}).items():
        yield from _rules(child, f"{path}.{name}")
    if "items" in schema:
        yield from _rules(schema["items"], f"{path}[]")


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == {}:
        return "{}"
    if value == "":
        return '""'
    return str(value)
