"""Command-line options built from the monitor registry: each registered type's own baseline or run
options become `--flag`s in a help panel of their own, and a command receives them as one dict to
validate against the type it runs (an option of another type is an error, not ignored)."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic_core import PydanticUndefined

Kind = Literal["baseline", "run"]


def _base(annotation: Any) -> Any:
    """The annotation without None (str | None -> str)."""
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [a for a in get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else str
    return annotation


def _default_text(info: Any) -> str | None:
    if info.default is PydanticUndefined or info.default is None or info.default == []:
        return None
    return str(info.default)


def _split_default(description: str) -> tuple[str, str | None]:
    """(help without its "[default: ...]", what the default is said to be)."""
    head, found, tail = description.partition(" [default: ")
    return (head, tail.rstrip("]")) if found else (description, None)


def type_option_fields(kind: Kind) -> dict[str, tuple[Any, list[str]]]:
    """Option name -> (its field info in the first type that declares it, the types taking it)."""
    from modelwatch.flows.monitor_types import monitors

    fields: dict[str, tuple[Any, list[str]]] = {}
    for monitor in monitors():
        options = monitor.baseline_options if kind == "baseline" else monitor.run_options
        for name, info in options.model_fields.items():
            first, owners = fields.setdefault(name, (info, []))
            owners.append(monitor.name)
            if _base(first.annotation) != _base(info.annotation):
                # Types disagree on the value's type: each type's own model parses the text.
                fields[name] = (info.model_copy(update={"annotation": str | None}), owners)
    return fields


def type_option_parameters(kind: Kind, reserved: set[str]) -> list[inspect.Parameter]:
    """Keyword parameters (typer annotations, default None = not given) for every type option."""
    parameters = []
    for name, (info, owners) in type_option_fields(kind).items():
        if name in reserved:
            raise ValueError(f"monitor type option {name!r} of {', '.join(owners)} clashes with a "
                             "common option of the command")
        flag = name.replace("_", "-")
        base = _base(info.annotation)
        help_text, said = _split_default(info.description or "")
        shown = said or (str(info.default).lower() if isinstance(info.default, bool)
                         else _default_text(info))
        if shown:
            help_text += f" \\[default: {shown}]"  # escaped: rich reads bare brackets as markup
        panel = f"{', '.join(owners)} options"
        if base is bool:
            option = typer.Option(f"--{flag}/--no-{flag}", help=help_text, rich_help_panel=panel,
                                  show_default=False)
            annotation: Any = Annotated[bool | None, option]
        elif get_origin(base) is list:
            option = typer.Option(f"--{flag}", help=help_text + " (repeatable)"
                                  if "repeatable" not in help_text else help_text,
                                  rich_help_panel=panel, show_default=False)
            annotation = Annotated[list[str] | None, option]
        else:
            option = typer.Option(f"--{flag}", help=help_text, rich_help_panel=panel,
                                  show_default=False)
            annotation = Annotated[base | None, option]
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=annotation))
    return parameters


class _WithTypeOptions:
    """A command whose signature is its own parameters plus every registered type's options, read
    from the registry each time the CLI is built (typer asks for it then), so a monitor package
    registered in a running process is offered too."""

    def __init__(self, command: Callable[..., Any], kind: Kind) -> None:
        self.command, self.kind = command, kind
        self.__name__, self.__doc__ = command.__name__, command.__doc__
        self.__module__ = command.__module__
        signature = inspect.signature(command, eval_str=True)
        self.common = [p.replace(kind=p.KEYWORD_ONLY) for p in signature.parameters.values()
                       if p.kind is not p.VAR_KEYWORD]

    @property
    def __signature__(self) -> inspect.Signature:
        from modelwatch.flows.monitor_types import monitor_types

        types = monitor_types()
        if getattr(self, "_built_for", None) != types:  # built once per set of registered types
            extra = type_option_parameters(self.kind, {p.name for p in self.common})
            self._signature, self._built_for = inspect.Signature(self.common + extra), types
        return self._signature

    @property
    def __annotations__(self) -> dict[str, Any]:  # typing.get_type_hints reads them
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **given: Any) -> Any:
        common = {p.name for p in self.common}
        options = {k: v for k, v in given.items()
                   if k not in common and v is not None and v != []}
        return self.command(**{k: v for k, v in given.items() if k in common}, **options)


def with_type_options(kind: Kind) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command whose last parameter is `**type_options`: its signature gains every
    registered type's options, and it receives those given (not None) in `type_options`."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        return _WithTypeOptions(command, kind)

    return decorate
