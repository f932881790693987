"""A backend's program, specialised to the one case a repro script shows: what a maintainer reads.

A backend's `program(spec)` (harness.backends.program) is one function for every case: branches for
transposed convolutions, "same" padding, crops, dtypes. A repro script needs the branch its minimal case
takes, with that case's values in it. `specialize(program)` rewrites the function's source:

- the docstring goes (the script's first line says what the program is);
- each argument that the function never assigns is a constant: its uses become the literal value, and so
  does every simple name assigned once from constants (`rank = len(stride)`); only immutable values
  (numbers, text, None, tuples of them) are put in place of a name: a list or dict assigned once may still be
  filled (`steps = []` then `steps.append(...)`), so its name stays;
- what is then constant is folded: arithmetic and comparisons, `a if c else b`, `and` / `or`, a literal
  tuple, list or dict indexed by a constant, `len` of a literal, and an `if` statement keeps the branch taken;
- a loop or comprehension over nothing (a constant empty sequence, or `zip`/`enumerate` of one) is dropped, or
  becomes its empty value;
- an assignment whose names are no longer read is dropped, when its value has no effect (a constant), so is a
  nested function nothing calls any more, and what follows a `return` in its block;
- comments and blank lines go (the source is printed from its syntax tree).

The result is checked: it must compile and define the same function name; anything else (a construct it
does not know, a source it cannot read) leaves the program's source as it is. No name of a framework is
known here: the rewriting is of Python, whatever the function does.
"""

from __future__ import annotations

import ast
import copy
import warnings
from collections.abc import Callable
from typing import Any

from convparity.harness.backends.program import Program

FOLDABLE_CALLS: dict[str, Callable[..., Any]] = {"len": len, "max": max, "min": min, "tuple": tuple, "abs": abs}


def specialize(program: Program) -> str:
    """The program's source specialised to its arguments (see the module docstring), or its source as it is."""
    source = program.source()
    try:
        tree = ast.parse(source)
        function = tree.body[0]
        if not isinstance(function, ast.FunctionDef):
            return source
        folded = _Specializer(function, dict(program.arguments)).run()
        text = ast.unparse(ast.fix_missing_locations(ast.Module(body=[folded], type_ignores=[])))
        text = "\n".join(line for line in text.splitlines() if line.strip())  # unparse spaces out nested defs
        compiled: dict[str, Any] = {}
        exec(compile(text, "<specialized>", "exec"), {}, compiled)  # noqa: S102 - defines the function only
        return text + "\n" if program.name in compiled else source
    except Exception:  # noqa: BLE001 - a program this cannot rewrite is shown as it is
        return source


def _stored(node: ast.AST) -> dict[str, int]:
    """How many times each name is assigned (stored) anywhere under `node`, nested functions included."""
    counts: dict[str, int] = {}
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            counts[child.id] = counts.get(child.id, 0) + 1
        elif isinstance(child, (ast.FunctionDef, ast.Lambda)):
            for argument in (*child.args.args, *child.args.kwonlyargs, *child.args.posonlyargs):
                counts[argument.arg] = counts.get(argument.arg, 0) + 1
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            for alias in child.names:
                name = (alias.asname or alias.name).split(".")[0]
                counts[name] = counts.get(name, 0) + 1
    return counts


def _literal(value: Any) -> bool:
    """Whether `value` may stand in place of a name: an immutable literal (a short one)."""
    try:
        return _immutable(value) and ast.literal_eval(repr(value)) == value and len(repr(value)) <= 200
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _immutable(value: Any) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, complex, str, bytes))


class _Specializer(ast.NodeTransformer):
    def __init__(self, function: ast.FunctionDef, arguments: dict[str, Any]) -> None:
        self.function = copy.deepcopy(function)
        stored = _stored(ast.Module(body=self.function.body, type_ignores=[]))
        defaults = {a.arg: _constant(d) for a, d in zip(self.function.args.kwonlyargs, self.function.args.kw_defaults)
                    if d is not None}
        positional = self.function.args.args[len(self.function.args.args) - len(self.function.args.defaults):]
        defaults.update({a.arg: _constant(d) for a, d in zip(positional, self.function.args.defaults)})
        given = {**{k: v for k, v in defaults.items() if v is not _UNKNOWN}, **arguments}
        self.known = {name: value for name, value in given.items() if name not in stored and _literal(value)}
        self.once = {name for name, count in stored.items() if count == 1}

    def run(self) -> ast.FunctionDef:
        body = self.function.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # the docstring
        self.function.body = self._block(body) or [ast.Pass()]
        self.function.body = _without_dead(self.function.body, self.function) or [ast.Pass()]
        return self.function

    def _block(self, statements: list[ast.stmt]) -> list[ast.stmt]:
        result: list[ast.stmt] = []
        for statement in statements:
            if result and isinstance(result[-1], (ast.Return, ast.Raise)):
                break  # what follows a return in the same block never runs
            if isinstance(statement, ast.If):
                test = self.visit(statement.test)
                value = _constant(test)
                if value is not _UNKNOWN:
                    result += self._block(statement.body if value else statement.orelse)
                    continue
                statement.test = test
                statement.body = self._block(statement.body) or [ast.Pass()]
                statement.orelse = self._block(statement.orelse)
                result.append(statement)
                continue
            if isinstance(statement, ast.For) and not statement.orelse and _over_nothing(self.visit(statement.iter)):
                continue  # a loop over nothing never runs its body
            if isinstance(statement, (ast.FunctionDef, ast.With, ast.Try, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody"):
                    if hasattr(statement, field):
                        setattr(statement, field, self._block(getattr(statement, field)) or
                                ([ast.Pass()] if field == "body" else []))
                if isinstance(statement, ast.Try):
                    for handler in statement.handlers:
                        handler.body = self._block(handler.body) or [ast.Pass()]
                for field in ("items", "iter", "test", "args", "decorator_list"):
                    if hasattr(statement, field) and field != "args":
                        setattr(statement, field, self.visit(getattr(statement, field))
                                if not isinstance(getattr(statement, field), list)
                                else [self.visit(item) for item in getattr(statement, field)])
                result.append(statement)
                continue
            statement = self.visit(statement)
            self._learn(statement)
            result.append(statement)
        return result

    def _learn(self, statement: ast.stmt) -> None:
        """Remember a name assigned once from a constant (a tuple assignment too)."""
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            return
        target, value = statement.targets[0], statement.value
        pairs = [(target, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            pairs = list(zip(target.elts, value.elts))
        for name, expression in pairs:
            constant = _constant(expression)
            if isinstance(name, ast.Name) and name.id in self.once and constant is not _UNKNOWN and _literal(constant):
                self.known[name.id] = constant

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id in self.known:
            return ast.copy_location(_to_node(self.known[node.id]), node)
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, (ast.FunctionDef, ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp,
                             ast.SetComp)):
            local = {a.arg for a in (*node.args.args, *node.args.kwonlyargs)} if isinstance(
                node, (ast.FunctionDef, ast.Lambda)) else {n.id for g in node.generators
                                                          for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            hidden = {name: self.known.pop(name) for name in local if name in self.known}
            try:
                node = super().generic_visit(node)
            finally:
                self.known.update(hidden)
            if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)) and _over_nothing(
                    node.generators[0].iter):
                empty = {ast.ListComp: "[]", ast.GeneratorExp: "()", ast.DictComp: "{}", ast.SetComp: "set()"}
                return ast.copy_location(ast.parse(empty[type(node)], mode="eval").body, node)
            return node
        node = super().generic_visit(node)
        value = _fold(node)
        if value is not _UNKNOWN and _literal(value):
            return ast.copy_location(_to_node(value), node)
        if isinstance(node, ast.IfExp):
            test = _constant(node.test)
            if test is not _UNKNOWN:
                return node.body if test else node.orelse
        if isinstance(node, ast.BoolOp):  # a leading constant decides it, or drops out
            first = _constant(node.values[0])
            if first is not _UNKNOWN:
                if bool(first) == isinstance(node.op, ast.Or):
                    return node.values[0]
                rest = node.values[1:]
                return rest[0] if len(rest) == 1 else ast.BoolOp(op=node.op, values=rest)
        if isinstance(node, ast.Subscript) and isinstance(node.value, (ast.Tuple, ast.List)):
            index = _constant(node.slice)
            if isinstance(index, int) and not isinstance(index, bool) and -len(node.value.elts) <= index < len(
                    node.value.elts) and not any(isinstance(e, ast.Starred) for e in node.value.elts):
                return node.value.elts[index]
        return node


class _Unknown:
    pass


_UNKNOWN = _Unknown()


def _constant(node: ast.AST) -> Any:
    """The node's value when it is a literal, else _UNKNOWN."""
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _UNKNOWN


def _fold(node: ast.AST) -> Any:
    """The value of an operation on literals (arithmetic, comparison, boolean, a few builtins), else _UNKNOWN."""
    if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp)):
        parts = [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.expr)]
        if all(_constant(part) is not _UNKNOWN for part in parts):
            try:
                with warnings.catch_warnings():  # `None is None` warns when compiled: it is what is meant here
                    warnings.simplefilter("ignore")
                    code = compile(ast.Expression(node), "<fold>", "eval")
                return eval(code, {"__builtins__": {}})  # noqa: S307 - literals and operators only
            except Exception:  # noqa: BLE001
                return _UNKNOWN
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):  # a literal indexed by a constant
        container, key = _constant(node.value), _constant(node.slice)
        if container is not _UNKNOWN and key is not _UNKNOWN:
            try:
                return container[key]
            except Exception:  # noqa: BLE001
                return _UNKNOWN
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FOLDABLE_CALLS \
            and not node.keywords:
        values = [_constant(argument) for argument in node.args]
        if values and all(value is not _UNKNOWN for value in values):
            try:
                return FOLDABLE_CALLS[node.func.id](*values)
            except Exception:  # noqa: BLE001
                return _UNKNOWN
    return _UNKNOWN


def _over_nothing(node: ast.AST) -> bool:
    """Whether iterating over `node` yields nothing: a constant empty sequence, or zip / enumerate / reversed /
    sorted / iter of one (zip: of any of its arguments)."""
    value = _constant(node)
    if value is not _UNKNOWN:
        return isinstance(value, (tuple, list, str, bytes, dict, set, frozenset)) and len(value) == 0
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords and node.args:
        if node.func.id == "zip":
            return any(_over_nothing(argument) for argument in node.args)
        if node.func.id in ("enumerate", "reversed", "sorted", "iter", "tuple", "list"):
            return _over_nothing(node.args[0])
    return False


def _to_node(value: Any) -> ast.expr:
    return ast.parse(repr(value), mode="eval").body


def _without_dead(body: list[ast.stmt], scope: ast.AST) -> list[ast.stmt]:
    """`body` less assignments of constants to names nothing reads (repeated until none is left)."""
    while True:
        loaded = {n.id for n in ast.walk(scope) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        kept = []
        for statement in body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                names = [n.id for n in ast.walk(statement.targets[0]) if isinstance(n, ast.Name)]
                if _constant(statement.value) is not _UNKNOWN and all(name not in loaded for name in names):
                    continue
            if isinstance(statement, ast.FunctionDef) and not statement.decorator_list and statement.name not in loaded:
                continue  # a nested function nothing calls
            kept.append(statement)
        if len(kept) == len(body):
            return kept
        body = kept
        if isinstance(scope, ast.FunctionDef):
            scope.body = body
