"""Rooms that read in one sitting: sizes of functions and modules, and private names kept home.

Counting rule. A line counts when it holds code or docstring text: blank lines and lines
holding only a comment do not count. A **function** counts its lines from ``def`` to its
last line, its own docstring aside (nested functions count within it), and may count at
most ``FUNCTION_LINES``. A **module** counts all its lines, docstrings included, and may
count at most ``MODULE_LINES``.

Private names stay in the module that defines them: an attribute access ``x._name``
(``_name`` not a dunder, not a ``NamedTuple`` method such as ``_fields``) is allowed
only where that module itself defines ``_name`` (a function, class, assignment or
attribute of that name), or on ``self``, ``cls``, ``super()`` or an imported module
outside the package (``sys._getframe``). So ``report._ratios()`` in ``stats`` fails:
such logic belongs behind a public name.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ccr_metrics"
FUNCTION_LINES = 80
MODULE_LINES = 700
NAMEDTUPLE_API = {"_asdict", "_field_defaults", "_fields", "_make", "_replace"}


def sources() -> dict[str, str]:
    return {
        str(path.relative_to(PACKAGE.parent)): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def counted_lines(source: str) -> set[int]:
    """1-based numbers of the lines holding code or docstring text."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return set()


def function_sizes(source: str) -> dict[str, int]:
    """``{qualified-ish name: counted lines}`` of every function in ``source``."""
    counted = counted_lines(source)
    sizes = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            span = set(range(start, (node.end_lineno or node.lineno) + 1))
            sizes[f"{node.name} (line {node.lineno})"] = len(
                (span & counted) - docstring_lines(node)
            )
    return sizes


def private_accesses(source: str) -> list[str]:
    """``x._name`` accesses in ``source`` to private names it does not define itself."""
    tree = ast.parse(source)
    own: set[str] = set()
    outside: set[str] = set()  # names bound to modules from outside the package
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            own.add(node.value)  # object.__setattr__(self, "_name", value)
        elif isinstance(node, ast.Import):
            outside.update(
                (alias.asname or alias.name).split(".")[0]
                for alias in node.names
                if not alias.name.startswith("ccr_metrics")
            )
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in NAMEDTUPLE_API:
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in {"self", "cls", *outside}:
            continue
        if isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super":
            continue
        if name not in own:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def test_the_counting_rule():
    source = '''"""Module docstring,
two lines."""

# a comment


def f(x):
    """Docstring of f,

    three lines."""
    # a comment: not counted
    y = (x +
         1)  # a trailing comment: the line counts

    def inner():
        """One line."""
        return y

    return inner()
'''
    assert len(counted_lines(source)) == 2 + 1 + 3 + 2 + 3 + 1
    # f: def, the two lines of y, inner whole (its docstring is not f's), return.
    assert function_sizes(source) == {"f (line 7)": 1 + 2 + 3 + 1, "inner (line 15)": 2}


def test_the_private_access_rule():
    source = """
import sys
from ccr_metrics.analysis import report
class A:
    def _mine(self):
        return self._other, sys._getframe(0), other._mine()
    def go(self, r):
        return r._ratios(), report._check, super()._load(), A._fields
"""
    assert private_accesses(source) == ["line 8: r._ratios", "line 8: report._check"]


def test_no_function_is_longer_than_the_limit():
    long = {
        f"{path}: {name}": size
        for path, source in sources().items()
        for name, size in function_sizes(source).items()
        if size > FUNCTION_LINES
    }
    assert long == {}, f"functions over {FUNCTION_LINES} counted lines"


def test_no_module_is_longer_than_the_limit():
    long = {
        path: size
        for path, source in sources().items()
        if (size := len(counted_lines(source))) > MODULE_LINES
    }
    assert long == {}, f"modules over {MODULE_LINES} counted lines"


def test_no_module_reaches_into_another_modules_private_names():
    found = {
        path: accesses
        for path, source in sources().items()
        if (accesses := private_accesses(source))
    }
    assert found == {}
