"""The config reference, generated from the schema (``nqs keys``, docs/config.md).

Every key's type, default (or how an automatic value is chosen), allowed values, the kinds it
belongs to and its meaning come from the field definitions in schema.py, so the reference
cannot drift from what the parser accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from nqs_cli.config.export import toml_value
from nqs_cli.config.schema import SECTIONS, SUBSECTIONS, TOP_DOCS, TOP_KEYS

CONVENTIONS = """\
Units: ħ = 1; lattice energies in units of the couplings; particles in the length and energy
units of their potential (`aziz`: kelvin and ångström). ⟨ij⟩ runs over the nearest-neighbour
bonds of the lattice (or the edges of a custom graph), ⟨⟨ij⟩⟩ over the next-nearest ones, each
bond once; r_i is the position of site i (nearest neighbours at distance 1).

- `bose-hubbard` (`[hilbert] kind = "fock"`):
  H = −J Σ_⟨ij⟩ (b†_i b_j + b†_j b_i) + U/2 Σ_i n_i (n_i − 1) + V Σ_⟨ij⟩ n_i n_j − μ Σ_i n_i
  + Σ_i [V_trap |r_i − center|² + ε_i] n_i, occupations n_i = 0..n_max, optionally
  Σ_i n_i = n_particles; V_trap and center from `trap`, ε_i from `onsite`.
- `heisenberg` (`[hilbert] kind = "spin"`):
  H = J Σ_⟨ij⟩ [S^x_i S^x_j + S^y_i S^y_j + Δ S^z_i S^z_j + β (S_i·S_j)²]
  + J2 Σ_⟨⟨ij⟩⟩ [S^x_i S^x_j + S^y_i S^y_j + Δ S^z_i S^z_j] + D Σ_i (S^z_i)² − h Σ_i S^z_i,
  spin-s operators S (S = σ/2 for s = ½), Δ = `delta`, optionally Σ_i S^z_i = total_sz (then
  the field term is a constant). With `sign_rule` (on by default on a bipartite lattice when
  every J > 0 and J2 = 0) one sublattice is rotated by π about z (Marshall's rule): the
  off-diagonal elements change sign, the spectrum does not. With J2 ≠ 0 the rule is not exact;
  with complex parameters it stays on as a reference sign that the amplitudes correct,
  rotating the sites of the collinear classical order of lowest energy (Néel, or stripes on
  the square lattice beyond J2 = J/2). J may
  be a list, one coupling per bond colour of a custom graph.
- `continuous` (`[space]`):
  H = −1/(2m) Σ_i ∇_i² + ½ m ω² Σ_i |x_i|² + Σ_{i<j} v(|x_i − x_j|), ω = `trap_omega`,
  m = `space.mass`, v the `[hamiltonian.pair]` potential (minimum image in a periodic box of
  side `space.extent`, truncated at `pair.cutoff`); `extent = 0` is open space.

Models: `rbm-multival` log ψ(x) = Σ_j log cosh(Σ_k W_kj v_k + b_j) + Σ_k a_k v_k on the
one-hot encoding v of the local states (with `symmetry = "translation"` the hidden features
are shared by every translation of the lattice: a zero-momentum state with fewer parameters;
`spiral_phase` adds the fixed i Σ_i Q·c_i m(x_i) of the classical spiral); `deepsets` log ψ = ρ(Σ_i φ(x_i)) − a Σ_i |x_i|²;
`deepsets-reldist` log ψ = ρ(Σ_{i<j} φ(y_ij)) (+ cusp) on the periodic pair features
y_ij = (sin(π r_ij/L)/2)². The energy estimate is the mean of the local energy
E_loc(x) = Σ_x′ H_xx′ ψ(x′)/ψ(x) over samples of |ψ|².
"""

_TYPES = {"int": "integer", "float": "number", "bool": "true/false", "str": "string",
          "tuple[int, ...]": "list of integers", "tuple[float, ...]": "list of numbers", "tuple[str, ...]": "list of strings",
          "tuple[bool, ...]": "list of true/false", "tuple[tuple[int, ...], ...]": "list of integer lists"}


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str
    allowed: str
    kinds: str
    meaning: str


def _type_text(annotation: Any, is_table: bool) -> str:
    if is_table:
        return "table or false"
    parts = [p.strip() for p in str(annotation).split("|") if p.strip() != "None"]
    return " or ".join(_TYPES.get(p, p) for p in parts)


def _allowed_text(check) -> str:
    if check is None:
        return ""
    choices = getattr(check, "choices", None)
    if choices is not None:
        return " \\| ".join(f'"{c}"' for c in choices)
    for probe in (-1, 0.25, "?"):  # a check returns its expectation for a value it refuses
        try:
            text = check(probe)
        except (TypeError, AttributeError, ValueError):
            continue
        if text:
            return text
    return ""


def _default_text(f: dataclasses.Field, is_table: bool) -> str:
    auto = f.metadata.get("auto", "")
    if is_table:
        return "on (defaults below)" if f.default is not None else "off"
    if auto:
        return f"auto: {auto}"
    if f.default is None:
        return "unset"
    return toml_value(f.default)


def section_docs(name: str, cls) -> list[KeyDoc]:
    docs = []
    for f in dataclasses.fields(cls):
        is_table = (name, f.name) in SUBSECTIONS
        kinds = f.metadata.get("kinds")
        docs.append(KeyDoc(
            key=f"{name}.{f.name}",
            type=_type_text(f.type, is_table),
            default=_default_text(f, is_table),
            allowed=_allowed_text(f.metadata.get("check")),
            kinds=", ".join(kinds) if kinds else "",
            meaning=f.metadata.get("doc", ""),
        ))
    return docs


def sections() -> Iterator[tuple[str, list[KeyDoc]]]:
    """(section name, its keys) in file order: top-level keys, then each table and its sub-tables."""
    yield "", [KeyDoc(k, _TYPES[tp.__name__], toml_value(TOP_DOCS[k][0]) if k != "name" else TOP_DOCS[k][0],
                      '"float64" \\| "float32"' if k == "dtype" else (">= 0" if k == "seed" else ""), "", TOP_DOCS[k][1])
               for k, tp in TOP_KEYS.items()]
    for name, cls in SECTIONS.items():
        yield name, section_docs(name, cls)
        for (parent, child), sub in SUBSECTIONS.items():
            if parent == name:
                yield f"{parent}.{child}", section_docs(f"{parent}.{child}", sub)


def all_keys() -> list[str]:
    return [d.key for _, docs in sections() for d in docs]


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if "\\|" not in text else text


def markdown(only: str | None = None) -> str:
    """The reference as Markdown: everything, or one section (``sampler``, ``optimizer.sr``)
    or one key (``sampler.n_chains``); raises KeyError for an unknown name."""
    blocks = []
    for name, docs in sections():
        if only is not None:
            if only == name or (only == "top" and name == ""):
                pass
            elif any(d.key == only for d in docs):
                docs = [d for d in docs if d.key == only]
            else:
                continue
        title = f"[{name}]" if name else "top-level keys"
        rows = ["| key | type | default | allowed | kinds | meaning |", "| --- | --- | --- | --- | --- | --- |"]
        for d in docs:
            rows.append(f"| `{d.key}` | {d.type} | {_cell(d.default)} | {d.allowed} | {d.kinds} | {_cell(d.meaning)} |")
        blocks.append(f"## {title}\n\n" + "\n".join(rows) + "\n")
    if not blocks:
        raise KeyError(only)
    if only is not None:
        return "\n".join(blocks)
    head = (
        "# Config reference\n\n"
        "Generated from the schema by `nqs keys` (`nqs keys > docs/config.md`); a test fails when this\n"
        "file and the schema differ. `kinds`: the section kinds a key belongs to (empty: all of them);\n"
        "a key of another kind is an error. `auto`: chosen from the rest of the config when unset\n"
        "(`nqs validate CONFIG` prints the value and why).\n\n"
        "## Hamiltonians and models\n\n" + CONVENTIONS + "\n"
    )
    return head + "\n".join(blocks)
