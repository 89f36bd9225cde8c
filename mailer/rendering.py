"""Templates rendered safely: Jinja2 in its immutable sandbox, for the stored templates of
``POST /templates`` and the mail rendered from them.

A template version has up to three fields, ``subject``, ``text`` and ``html``. Each is compiled
in one of two environments: ``html`` with autoescaping (a variable holding ``<script>`` comes out
as ``&lt;script&gt;``), ``subject`` and ``text`` without (they are not HTML). Both are
``ImmutableSandboxedEnvironment``: a template reads its variables, attributes and items of them,
and calls the safe methods of strings, lists and dicts; it reaches no Python object's insides
(``__class__``, ``__globals__``), no file (no loader: ``include``, ``import`` and ``extends``
find nothing), no environment variable and no network. ``StrictUndefined`` makes a variable the
template uses and the request did not give an error, never an empty string.

Rendering is bounded, so that one request can neither hang a process nor fill its memory:

- ``range`` gives at most ``MAX_RANGE`` items, and every ``{% for %}`` of one render together at
  most ``MAX_LOOP_ITERATIONS`` (loops nest: three ranges of 10,000 would be 10^12 steps);
- the output is produced piece by piece (the template's render function is a generator) and
  counted: past
  ``max_bytes`` the render stops;
- the operations that make a large string out of small ones (``*``, ``**``, ``%``,
  ``str.format``, ``center``, ``replace``, ``join``, ...) are refused before they run when
  their result would exceed ``max_bytes``;
- any other failure of a template (a division by zero, a recursion too deep) is a
  ``RenderError`` naming the field, never an exception of the caller's.

Compiled templates are cached per (template id, version) in a bounded LRU (``Renderer``): a
version never changes, so neither does its compiled code, and a batch of a thousand mails from
one version compiles it once.
"""

import contextvars
import re
import threading
from collections import OrderedDict
from typing import NamedTuple

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import do_center, do_format, do_indent, do_join, do_replace
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment
from jinja2.utils import Namespace

FIELDS = ("subject", "text", "html")
AUTOESCAPED = ("html",)
MAX_RANGE = 10_000  # items of one range()
MAX_LOOP_ITERATIONS = 100_000  # steps of every loop of one render together
DEFAULT_MAX_BYTES = 1024 * 1024  # MAX_RENDERED_BYTES's default
CACHE_SIZE = 512  # compiled versions kept
LOOP_GUARD = "__loop_guard__"  # the global every for loop iterates through
MISSING = re.compile(r"^'([^']+)' is undefined$")
NUMBER = re.compile(r"\d+")


class RenderError(Exception):
    """A template that does not compile or render: ``field`` is the request's field at fault
    (``subject``, ``text``, ``html``, or ``variables.<name>`` for a variable not given)."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_error(self):
        """The error as the API lists it."""
        return {"field": self.field, "message": self.message}


class Rendered(NamedTuple):
    """A version rendered with its variables: each field's text, or None if it has none."""

    subject: str | None
    text: str | None
    html: str | None


class _Limit(Exception):
    """A bound of rendering was reached (raised inside a template, reported as RenderError)."""


class _Budget:
    """What one render may still spend: loop steps, and the size any one string may reach."""

    def __init__(self, max_bytes):
        self.steps = MAX_LOOP_ITERATIONS
        self.max_chars = max_bytes


_budget = contextvars.ContextVar("render budget")


def _spend_budget():
    """The current render's budget (a template rendered outside ``render`` gets the defaults)."""
    budget = _budget.get(None)
    return budget if budget is not None else _Budget(DEFAULT_MAX_BYTES)


def _limited_size(size):
    """Refuse a string of ``size`` characters before it is made, if it is over the bound."""
    if size > _spend_budget().max_chars:
        raise _Limit(f"would make a string of {size:,} characters, more than the output allows")


def _bounded_range(*args):
    """``range`` of at most ``MAX_RANGE`` items."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise _Limit(f"range() of {len(items):,} items: at most {MAX_RANGE:,}")
    return items


def _loop_guard(iterable):
    """Every item of a for loop's ``iterable``, each counted against the render's budget."""
    budget = _spend_budget()
    for item in iterable:
        budget.steps -= 1
        if budget.steps < 0:
            raise _Limit(f"loops ran more than {MAX_LOOP_ITERATIONS:,} steps")
        yield item


def _widths(text):
    """Refuse a format string (``%`` or ``str.format``) that pads past the bound."""
    for number in NUMBER.findall(text):
        _limited_size(int(number))


def _center(value, width=80):
    """The ``center`` filter, bounded."""
    _limited_size(width)
    return do_center(value, width)


def _indent(value, width=4, first=False, blank=False):
    """The ``indent`` filter, bounded (each line gains ``width``)."""
    indent = width if isinstance(width, int) else len(str(width))
    _limited_size(len(str(value)) + indent * (str(value).count("\n") + 1))
    return do_indent(value, width, first, blank)


def _format(value, *args, **kwargs):
    """The ``format`` filter, bounded."""
    _widths(str(value))
    return do_format(value, *args, **kwargs)


def _replace(eval_ctx, value, old, new, count=None):
    """The ``replace`` filter, bounded."""
    _replaced_size(str(value), str(old), str(new))
    return do_replace(eval_ctx, value, old, new, count)


def _replaced_size(value, old, new):
    """Refuse a replacement whose result would be over the bound."""
    matches = value.count(old) if old else len(value) + 1
    _limited_size(len(value) + matches * max(len(new) - len(old), 0))


def _join(eval_ctx, value, d="", attribute=None):
    """The ``join`` filter, bounded."""
    items = list(value)
    _limited_size(len(str(d)) * len(items) + sum(len(str(item)) for item in items))
    return do_join(eval_ctx, items, d, attribute)


_replace.jinja_pass_arg = do_replace.jinja_pass_arg
_join.jinja_pass_arg = do_join.jinja_pass_arg


def _method_size(method, args):
    """Refuse a call of a string method that would make a string over the bound."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _limited_size(args[0])
    elif name == "expandtabs":
        _limited_size(len(owner) * (args[0] if args and isinstance(args[0], int) else 8))
    elif name == "replace" and len(args) >= 2:
        _replaced_size(owner, str(args[0]), str(args[1]))
    elif name == "join" and args:
        _limited_size(len(owner) * _countable(args[0]))


def _countable(value):
    """How many items ``value`` has, at most the bound (an iterator counts as the bound)."""
    try:
        return len(value)
    except TypeError:
        return _spend_budget().max_chars


class _Namespace(Namespace):
    """``namespace()``, whose members, which carry values from one loop step to the next, are
    bounded: a member doubled at every step would otherwise outgrow any memory."""

    def __setitem__(self, name, value):
        if isinstance(value, str):
            _limited_size(len(value))
        super().__setitem__(name, value)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with the bounds above: ``range``, loops, and the operations that grow
    strings."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, autoescape):
        super().__init__(undefined=StrictUndefined, autoescape=autoescape, loader=None)
        del self.globals["lipsum"]  # lipsum(n) writes n paragraphs
        self.globals["range"] = _bounded_range
        self.globals["namespace"] = _Namespace
        self.globals[LOOP_GUARD] = _loop_guard
        self.filters.update(
            center=_center, indent=_indent, format=_format, replace=_replace, join=_join
        )

    def _parse(self, source, name, filename):
        """The template's tree, each ``for`` iterating through ``_loop_guard``."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            guard = nodes.Name(LOOP_GUARD, "load", lineno=loop.lineno)
            call = nodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)
            loop.iter = call.set_environment(self)
        return tree

    def call_binop(self, context, operator, left, right):
        """``*``, ``**`` and ``%``, refused when their result would be too large."""
        if operator == "*":
            for text, times in ((left, right), (right, left)):
                if isinstance(text, str | list | tuple) and isinstance(times, int):
                    _limited_size(len(text) * times)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and left.bit_length() * right > 4096:
                raise _Limit("a power larger than 4,096 bits")
        elif operator == "%" and isinstance(left, str):
            _widths(left)
        return SandboxedEnvironment.call_binop(self, context, operator, left, right)

    def wrap_str_format(self, value):
        """``str.format`` and ``format_map`` as the sandbox wraps them, refused first when
        their padding is past the bound."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _widths(value.__self__)
        return wrapped

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (the sandbox's signature)
        """A call from the template (a macro's too): its string arguments and result
        measured, string methods bounded before they run."""
        for value in (*args, *kwargs.values()):
            if isinstance(value, str):
                _limited_size(len(value))
        _method_size(__obj, args)
        result = ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        if isinstance(result, str):
            _limited_size(len(result))
        return result


class Renderer:
    """Compiles and renders template versions, keeping the latest ``cache_size`` compiled."""

    def __init__(self, cache_size=CACHE_SIZE):
        self.environments = {False: _Environment(False), True: _Environment(True)}
        self.cache_size = cache_size
        self._compiled = OrderedDict()
        self._lock = threading.Lock()

    def compile_errors(self, sources):
        """The errors of ``sources`` ({field: template text or None}) that do not compile, as
        the API lists them: each field with the line and Jinja's message."""
        errors = []
        for field in FIELDS:
            try:
                self._compile(field, sources.get(field))
            except TemplateSyntaxError as err:
                errors.append({"field": field, "message": f"line {err.lineno}: {err.message}"})
            except TemplateError as err:
                errors.append({"field": field, "message": str(err)})
        return errors

    def compiled(self, key, sources):
        """The compiled fields of the version ``key`` ((template id, version)) whose texts are
        ``sources``: compiled on first use, then from the cache."""
        with self._lock:
            found = self._compiled.get(key)
            if found is not None:
                self._compiled.move_to_end(key)
                return found
        found = tuple(self._compile(field, sources.get(field)) for field in FIELDS)
        with self._lock:
            self._compiled[key] = found
            while len(self._compiled) > self.cache_size:
                self._compiled.popitem(last=False)
        return found

    def version(self, key, sources):
        """The version ``key`` whose texts are ``sources``, ready to render as often as asked:
        a batch's mails look it up once."""
        return Version(self.compiled(key, sources))

    def render(self, key, sources, variables, max_bytes=DEFAULT_MAX_BYTES):
        """The version ``key`` rendered once with ``variables`` (``Version.render``)."""
        return self.version(key, sources).render(variables, max_bytes)

    def _compile(self, field, source):
        """The compiled template of one field's text (None for none)."""
        if source is None:
            return None
        template = self.environments[field in AUTOESCAPED].from_string(source)
        return Compiled(template, dict(template.globals))


class Compiled(NamedTuple):
    """A field's compiled template, and its globals as one plain dict: Jinja's own context
    reads them through a ChainMap, copied for every render, which costs more than rendering a
    short template."""

    template: object
    globals: dict


class Version:
    """A version's compiled fields, rendered with one mail's variables at a time.

    The fields it has are listed once, so a field the version lacks costs nothing per mail,
    and each render builds the values its fields read once: the variables over the globals
    (the same in both environments), the loop guard over both (a variable cannot take its
    place). Every field's context reads that one dict and writes its own ``{% set %}``s to its
    own ``vars``, as Jinja's contexts do.
    """

    def __init__(self, compiled):
        self.fields = [
            (index, field, found)
            for index, (field, found) in enumerate(zip(FIELDS, compiled, strict=True))
            if found is not None
        ]
        self.globals = self.fields[0][2].globals if self.fields else {}

    def render(self, variables, max_bytes=DEFAULT_MAX_BYTES):
        """The fields rendered with ``variables``: a ``Rendered``, or RenderError naming what
        is at fault. The fields together make at most ``max_bytes`` of UTF-8."""
        values = {**self.globals, **variables, LOOP_GUARD: _loop_guard}
        texts = [None] * len(FIELDS)
        token = _budget.set(_Budget(max_bytes))
        try:
            left = max_bytes
            for index, field, compiled in self.fields:
                texts[index], left = _render_field(field, compiled, values, left, max_bytes)
        finally:
            _budget.reset(token)
        return Rendered(*texts)


def _context(compiled, values):
    """The context of one field's render: it reads ``values`` and never changes them."""
    template = compiled.template
    return new_context(
        template.environment, template.name, template.blocks, values, True, compiled.globals
    )


def _render_field(field, compiled, values, left, max_bytes):
    """One field rendered, and the bytes still allowed after it."""
    pieces = []
    try:
        for piece in compiled.template.root_render_func(_context(compiled, values)):
            left -= len(piece) if piece.isascii() else len(piece.encode("utf-8"))
            if left < 0:
                raise RenderError(field, f"Renders to more than {max_bytes:,} bytes")
            pieces.append(piece)
    except RenderError:
        raise
    except UndefinedError as err:
        raise _undefined(field, err) from None
    except SecurityError as err:
        raise RenderError(field, f"Not allowed in a template: {err}") from None
    except _Limit as err:
        raise RenderError(field, f"Too large to render: {err}") from None
    except RecursionError:
        raise RenderError(field, "Recursion too deep") from None
    except Exception as err:  # the template's own failure (1/0, int('x')): the request's fault
        raise RenderError(field, f"Could not render: {err.__class__.__name__}: {err}") from None
    return "".join(pieces), left


def _undefined(field, err):
    """The RenderError of a variable (or attribute) the template used and nobody gave."""
    missing = MISSING.match(str(err.message or ""))
    if missing:
        return RenderError(f"variables.{missing.group(1)}", "Used by the template, not given")
    return RenderError(field, f"Undefined: {err.message}")
