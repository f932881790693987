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
  tuple, list or dict indexed by a constant, `len`, `range` and a few more builtins of literals
  (`(*range(2, 3), 1, 0)` is `(2, 1, 0)`), and an `if` statement keeps the branch taken;
- `*[a, b]` and `*()` among a display's items or a call's arguments are spliced in (`[x, *[]]` is `[x]`),
  `**{'groups': 1}` among a call's keywords is `groups=1`, and `[a] + [b]` is `[a, b]`;
- a loop or comprehension over nothing (a constant empty sequence, or `zip`/`enumerate` of one) is dropped, or
  becomes its empty value;
- an assignment whose names are no longer read is dropped, when its value has no effect (a constant), so is a
  nested function nothing calls any more (in nested functions too), and what follows a `return` in its block;
- comments and blank lines go (the source is printed from its syntax tree).

`unwrap(text)` goes one step further for a script: a specialised function that reads none of its
parameters any more and returns the step it defines is the same as its statements run at the script's top
level, which is how a maintainer would write the repro (no function of the harness's making to call).

The result is checked: it must compile and define the same function name; anything else (a construct it
does not know, a source it cannot read) leaves the program's source as it is. No name of a framework is
known here: the rewriting is of Python, whatever the function does.
"""

from __future__ import annotations

import ast
import copy
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from convparity.harness.backends.program import Program


def _short_range(*arguments: int) -> range:
    """range, refused past 10,000 items (a fold evaluates it whole)."""
    values = range(*arguments)
    if len(values) > 10_000:
        raise ValueError("too long to fold")
    return values


FOLDABLE_CALLS: dict[str, Callable[..., Any]] = {"len": len, "max": max, "min": min, "tuple": tuple, "abs": abs,
                                                 "range": _short_range}
# The nodes a constant expression may hold (a call only of FOLDABLE_CALLS, by name).
_FOLDABLE_NODES = (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Starred, ast.BinOp, ast.UnaryOp, ast.Compare,
                   ast.BoolOp, ast.IfExp, ast.Subscript, ast.Slice, ast.Call, ast.Name, ast.expr_context,
                   ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


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
        text = _without_blank_lines(text)  # unparse spaces out nested defs
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
        node = _spliced(super().generic_visit(node))
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


@dataclass(frozen=True)
class Unwrapped:
    """A specialised program as a script's own statements: `imports` (its statements up to its last import: what
    raises ImportError where the framework is missing), then `body`, which defines `result`, the step."""

    imports: list[str]
    body: list[str]
    result: str


def unwrap(text: str, *, taken: Collection[str], present: Collection[str] = ()) -> Unwrapped | None:
    """The function `text` defines as top-level statements, when it reads none of its parameters any more (every
    one was a constant, put in place), ends in `return <name>` (its only return), holds no `nonlocal`, `global` or
    `yield`, and binds none of the names in `taken` (the script's own); statements in `present` (the script's
    own imports) are left out. None where it cannot be."""
    function = ast.parse(text).body[0]
    if not isinstance(function, ast.FunctionDef) or function.decorator_list or not function.body:
        return None
    *body, last = function.body
    if not isinstance(last, ast.Return) or not isinstance(last.value, ast.Name):
        return None
    arguments = function.args
    parameters = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                                  *(a for a in (arguments.vararg, arguments.kwarg) if a is not None))}
    nodes = [node for statement in body for node in ast.walk(statement)]
    if any(isinstance(node, (ast.Nonlocal, ast.Global, ast.Yield, ast.YieldFrom, ast.Await)) or (
            isinstance(node, ast.Name) and node.id in parameters) for node in nodes):
        return None
    kept = [statement for statement in body if ast.unparse(statement) not in present]
    own = [node for statement in kept for node in _outside_functions(statement)]
    if any(isinstance(node, ast.Return) for node in own) or _bound(own) & (set(taken) - {last.value.id}):
        return None
    imports = max((i + 1 for i, statement in enumerate(kept) if isinstance(statement, (ast.Import, ast.ImportFrom))),
                  default=0)
    return Unwrapped(_lines(kept[:imports]), _lines(kept[imports:]), last.value.id)


def _lines(statements: list[ast.stmt]) -> list[str]:
    """The statements' source, a line each, without the blank lines unparse puts around nested functions."""
    return [line for statement in statements for line in _without_blank_lines(ast.unparse(statement)).splitlines()]


def _without_blank_lines(text: str) -> str:
    """`text` without its blank lines, unless one is inside a string (the code would read differently)."""
    packed = "\n".join(line for line in text.splitlines() if line.strip())
    return packed if ast.dump(ast.parse(packed)) == ast.dump(ast.parse(text)) else text


def _outside_functions(statement: ast.stmt) -> list[ast.AST]:
    """The nodes of `statement` that run where it runs: a nested function's or class's name, not its body."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        found.append(node)
        scope = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        if isinstance(node, scope) and node is not statement:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            pending += [*node.decorator_list]
            continue
        pending += list(ast.iter_child_nodes(node))
    return found


def _bound(nodes: list[ast.AST]) -> set[str]:
    """The names `nodes` bind: assigned, imported, defined (a comprehension's own too: it errs on the safe side)."""
    names = set()
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


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
    """The value of an expression of literals, operators, indexing and FOLDABLE_CALLS (`(*range(2, 3), 1, 0)`),
    else _UNKNOWN."""
    if not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Subscript, ast.Call, ast.Tuple)):
        return _UNKNOWN
    parts = list(ast.walk(node))
    called = {id(part.func) for part in parts if isinstance(part, ast.Call)}
    for part in parts:
        if not isinstance(part, _FOLDABLE_NODES) or (isinstance(part, ast.Call) and (
                part.keywords or not isinstance(part.func, ast.Name) or part.func.id not in FOLDABLE_CALLS)):
            return _UNKNOWN
        if isinstance(part, ast.Name) and id(part) not in called:
            return _UNKNOWN  # a name that is not a foldable call's
        if isinstance(part, (ast.Subscript, ast.Starred)) and not isinstance(part.ctx, ast.Load):
            return _UNKNOWN
    try:
        with warnings.catch_warnings():  # `None is None` warns when compiled: it is what is meant here
            warnings.simplefilter("ignore")
            code = compile(ast.Expression(node), "<fold>", "eval")
        return eval(code, {"__builtins__": {}, **FOLDABLE_CALLS})  # noqa: S307 - literals, operators, FOLDABLE_CALLS
    except Exception:  # noqa: BLE001
        return _UNKNOWN


def _spliced(node: ast.AST) -> ast.AST:
    """`node` with each `*[a, b]` or `*()` among its items (a list, tuple or set display's, a call's arguments) put
    in place as its items, each `**{'name': value}` among a call's keywords as `name=value`, and `[a] + [b]` as
    `[a, b]`."""
    for field in ("elts", "args"):
        items = getattr(node, field, None)
        if isinstance(items, list):
            setattr(node, field, [part for item in items for part in _spread(item)])
    if isinstance(node, ast.Call) and any(k.arg is None and _named_items(k.value) for k in node.keywords):
        keywords: list[ast.keyword] = []
        for keyword in node.keywords:
            named = _named_items(keyword.value) if keyword.arg is None else None
            keywords += [ast.keyword(arg=name, value=value) for name, value in named] if named else [keyword]
        if len({k.arg for k in keywords if k.arg}) == sum(1 for k in keywords if k.arg):  # no name given twice
            node.keywords = keywords
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.List) \
            and isinstance(node.right, ast.List):
        return ast.copy_location(ast.List(elts=[*node.left.elts, *node.right.elts], ctx=ast.Load()), node)
    return node


def _spread(item: ast.expr) -> list[ast.expr]:
    """`*[a, b]` as [a, b]; any other item as itself."""
    if isinstance(item, ast.Starred) and isinstance(item.value, (ast.List, ast.Tuple)):
        return item.value.elts
    return [item]


def _named_items(node: ast.AST) -> list[tuple[str, ast.expr]] | None:
    """A dict display's items when every key is a constant identifier (`**{'groups': 1}` is `groups=1`)."""
    if not isinstance(node, ast.Dict) or any(key is None for key in node.keys):
        return None
    names = [_constant(key) for key in node.keys if key is not None]
    if not all(isinstance(name, str) and name.isidentifier() for name in names):
        return None
    return list(zip(names, node.values))


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
    """`body` less assignments of constants to names nothing reads, and nested functions nothing calls, in it and
    in the functions it defines (repeated until none is left)."""
    while True:
        loaded = {n.id for n in ast.walk(scope) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        kept = []
        for statement in body:
            if isinstance(statement, ast.FunctionDef):
                statement.body = _without_dead(statement.body, scope) or [ast.Pass()]
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                names = [n.id for n in ast.walk(statement.targets[0]) if isinstance(n, ast.Name)]
                if _constant(statement.value) is not _UNKNOWN and all(name not in loaded for name in names):
                    continue
            if isinstance(statement, ast.FunctionDef) and not statement.decorator_list and statement.name not in loaded:
                continue  # a nested function nothing calls
            kept.append(statement)
        if len(kept) == len(body):
            return kept
        body[:] = kept
