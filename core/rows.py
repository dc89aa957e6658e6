"""Model instances from rows of hand-written SQL.

A hot read written as one statement (``core.prepared``) still answers with
model instances, so the code after it is the code the ORM path runs. What
the ORM would do to each raw value - the backend's converters (SQLite hands
dates back as text) and the field's own (a JSON column arrives as text on
PostgreSQL) - is done here too, with the converters looked up once per
database vendor instead of per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Field, Model


@dataclass(frozen=True)
class RowReader:
    """Reads ``fields`` of ``model`` from consecutive columns of a row."""

    model: type[Model]
    fields: tuple[Field, ...]
    # vendor -> [(column index, field, converters)] for the columns that need any
    _converters: dict[str, list] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, model: type[Model], names: list[str] | None = None) -> RowReader:
        """All concrete fields, or the named ones (the primary key first is
        not required: a deferred field loads on access, as with ``only()``)."""
        fields = model._meta.concrete_fields if names is None else [model._meta.get_field(n) for n in names]
        return cls(model=model, fields=tuple(fields))  # type: ignore[arg-type]

    def columns(self, table_alias: str) -> str:
        """``alias.col1, alias.col2, ...`` in the order ``instance`` reads them."""
        quote = connection.ops.quote_name
        return ", ".join(f"{table_alias}.{quote(str(f.column))}" for f in self.fields)

    def instance(self, values: tuple | list) -> Any:
        """An instance from ``len(self.fields)`` raw values, as loaded from the database."""
        values = list(values)
        for i, column, converters in self._converters_here():
            for converter in converters:
                values[i] = converter(values[i], column, connection)
        return self.model.from_db(connection.alias, [f.attname for f in self.fields], values)

    def _converters_here(self) -> list:
        found = self._converters.get(connection.vendor)
        if found is None:
            # As the SQL compiler does: the backend's converters, then the
            # field's, each called with the column expression.
            found = [
                (i, column, converters)
                for i, column in enumerate(f.cached_col for f in self.fields)
                if (converters := connection.ops.get_db_converters(column) + column.get_db_converters(connection))
            ]
            self._converters[connection.vendor] = found
        return found
