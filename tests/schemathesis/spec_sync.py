"""protocol/openapi.yaml names what protocol/src names, before any request is made.

    python spec_sync.py

* `ApiError.error` lists exactly the codes of `ErrorCode` (protocol/src/error.rs), and every
  response of every path that pins codes (`error: {const|enum}`) sits under the status
  `ErrorCode::status` gives each of them;
* the `Operation` branches and their discriminator are exactly the operations `Operation::name`
  knows plus `RBEE_OTHER_OPERATIONS` (protocol/src/operation.rs), and `RbeeOtherOperation` lists
  the latter;
* `Event`'s kinds are `Event::name`'s (protocol/src/event.rs).
"""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = yaml.safe_load((ROOT / "protocol" / "openapi.yaml").read_text())
schemas = spec["components"]["schemas"]


def rust_fn(path, name):
    """The body of `fn name` in a Rust source file (up to the next `fn`)."""
    text = (ROOT / path).read_text()
    start = text.index(f"fn {name}(")
    end = text.find("\n    pub fn ", start + 1)
    return text[start : end if end != -1 else None]


def arms(body):
    """`Self::A | Self::B => value` arms of a match, as {variant: value}."""
    out = {}
    # A value is a literal, or a block rustfmt wrapped a long arm's literal in (`=> {\n 404\n }`).
    for variants, value in re.findall(r"((?:\|?\s*Self::\w+(?:\s*\{\s*\.\.\s*\}|\(_\))?\s*)+)=>\s*(\{[^{}]*\}|[^,\n]+)", body):
        for variant in re.findall(r"Self::(\w+)", variants):
            out[variant] = value.strip().strip("{}").strip().strip('"')
    return out


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


def pinned_codes(schema):
    """Codes a response schema pins through `error: {const: …}` / `{enum: […]}` in its `allOf`."""
    codes = set()
    for part in resolve(schema).get("allOf", []):
        if "$ref" in part:
            continue  # `ApiError` itself, which lists every code
        error = part.get("properties", {}).get("error", {})
        codes |= set(error.get("enum", [])) | ({error["const"]} if "const" in error else set())
    return codes


def main():
    failures = []

    as_str = arms(rust_fn("protocol/src/error.rs", "as_str"))
    status = {as_str[v]: int(s) for v, s in arms(rust_fn("protocol/src/error.rs", "status")).items()}
    codes = set(as_str.values())
    if set(status) != codes:
        failures.append(f"error.rs: `as_str` and `status` disagree: {sorted(codes ^ set(status))}")
    documented = set(schemas["ApiError"]["properties"]["error"]["enum"])
    if documented != codes:
        failures.append(
            f"ApiError.error: missing {sorted(codes - documented)}, not in ErrorCode {sorted(documented - codes)}"
        )
    responses = [(f"components/responses/{n}", None, r) for n, r in spec["components"]["responses"].items()]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                responses += [(f"{method.upper()} {path}", int(c), r) for c, r in op["responses"].items()]
    for where, code, response in responses:
        response = resolve(response)
        for media in response.get("content", {}).values():
            for error in pinned_codes(media.get("schema", {})):
                if error not in status:
                    failures.append(f"{where}: `{error}` is no ErrorCode")
                elif code is not None and status[error] != code:
                    failures.append(f"{where} {code}: `{error}` is answered with {status[error]}")

    names = set(arms(rust_fn("protocol/src/operation.rs", "name")).values())
    source = (ROOT / "protocol" / "src" / "operation.rs").read_text()
    others_src = source[source.index("RBEE_OTHER_OPERATIONS") :]
    others = re.findall(r'"(\w+)"', others_src[: others_src.index("];")])
    operation = schemas["Operation"]
    branch_names = set()
    for branch in operation["oneOf"]:
        tag = resolve(branch)["properties"]["operation"]
        branch_names |= {tag["const"]} if "const" in tag else set()
    if branch_names != names:
        failures.append(f"Operation branches {sorted(branch_names)} != Operation::name {sorted(names)}")
    if schemas["RbeeOtherOperation"]["properties"]["operation"]["enum"] != others:
        failures.append("RbeeOtherOperation.operation.enum is not RBEE_OTHER_OPERATIONS (in order)")
    if set(operation["discriminator"]["mapping"]) != names | set(others):
        failures.append("Operation's discriminator does not map exactly every operation")

    kinds = set(arms(rust_fn("protocol/src/event.rs", "name")).values())
    mapping = set(schemas["Event"]["discriminator"]["mapping"])
    if mapping != kinds:
        failures.append(f"Event kinds {sorted(mapping)} != Event::name {sorted(kinds)}")

    for failure in failures:
        print(f"FAIL: openapi.yaml vs protocol/src: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"openapi.yaml names the {len(codes)} error codes, {len(names)} + {len(others)} operations and {len(kinds)} event kinds of protocol/src: ok")


if __name__ == "__main__":
    main()
