"""SOQL: a lark grammar for the subset the sandbox serves, and its translation into SQLite.

The translation binds every value as an SQL parameter. Identifiers (tables, columns) come only
from the object metadata after a field path has been resolved against it, so nothing written in
a query ever reaches the SQL text verbatim.

Semantics kept from Salesforce because pipeline code must not come to rely on anything else:
string comparisons ignore case; ``!=`` and ``NOT IN`` match nulls; AND and OR cannot be mixed
without parentheses; datetime fields need unquoted datetime literals; OFFSET is capped at 2,000;
queryAll sees deleted records only while they are in the Recycle Bin (15 days).

Two limits keep hostile queries from costing the server more than a 400: WHERE clauses nest at
most ``MAX_CONDITION_DEPTH`` levels of NOT / AND / OR (deeper ones answer MALFORMED_QUERY instead
of overflowing the parser stacks), and LIKE matches in time linear in the value for a given
pattern (no backtracking regex).
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, VisitError

from crm_sandbox import deletion_log, store
from crm_sandbox.errors import SalesforceApiError, invalid_field, malformed_query
from crm_sandbox.ids import is_valid_id, to_18
from crm_sandbox.objects import FieldDef, FieldType, ObjectDef, get_object

MAX_QUERY_LENGTH = 100_000
MAX_OFFSET = 2000
# Levels of NOT / AND / OR a WHERE clause may nest (parentheses alone add none). SQLite's own
# parser overflows at about 30 nested boolean groups and Python's recursion later still; 20 is
# far beyond any real filter. Salesforce documents no figure; it answers MALFORMED_QUERY.
MAX_CONDITION_DEPTH = 20
_NESTING_RULES = frozenset({"not_", "and_chain", "or_chain"})
# Terms per group when a long AND / OR chain is written as SQL (see ``_chain``).
_CHAIN_GROUP = 100
# SQLite names of the helpers registered by install_sql_functions.
CI_COLLATION = "sf_ci"
_LIKE_FN = "sf_like"
_INCLUDES_FN = "sf_includes"

# Keywords are regex terminals with a word boundary and a higher priority than NAME, so that
# ``COUNT()`` and ``NOT`` win over field names while ``Counter__c`` or ``Notes`` stay fields.
_GRAMMAR = r"""
start: SELECT select_list FROM NAME where_clause? order_clause? limit_clause? offset_clause?

select_list: select_item ("," select_item)*
?select_item: count_all | field_path
count_all: COUNT "(" ")"
field_path: NAME ("." NAME)*

where_clause: WHERE condition
?condition: factor | and_chain | or_chain
and_chain: factor (AND factor)+
or_chain: factor (OR factor)+
?factor: NOT factor -> not_
       | "(" condition ")"
       | predicate
?predicate: field_path COMP_OP value -> compare
          | field_path IN value_list -> in_
          | field_path NOT IN value_list -> not_in
          | field_path LIKE STRING -> like
          | field_path INCLUDES value_list -> includes
          | field_path EXCLUDES value_list -> excludes
value_list: "(" value ("," value)* ")"
?value: STRING -> string
      | NUMBER -> number
      | DATETIME -> datetime_value
      | DATE -> date_value
      | NULL -> null
      | TRUE -> true
      | FALSE -> false
      | DATE_LITERAL -> date_literal

order_clause: ORDER BY order_item ("," order_item)*
order_item: field_path direction? nulls?
direction: ASC | DESC
nulls: NULLS (FIRST | LAST)
limit_clause: LIMIT INT
offset_clause: OFFSET INT

SELECT.2: /SELECT\b/i
FROM.2: /FROM\b/i
WHERE.2: /WHERE\b/i
COUNT.2: /COUNT\b/i
AND.2: /AND\b/i
OR.2: /OR\b/i
NOT.2: /NOT\b/i
IN.2: /IN\b/i
LIKE.2: /LIKE\b/i
INCLUDES.2: /INCLUDES\b/i
EXCLUDES.2: /EXCLUDES\b/i
ORDER.2: /ORDER\b/i
BY.2: /BY\b/i
ASC.2: /ASC\b/i
DESC.2: /DESC\b/i
NULLS.2: /NULLS\b/i
FIRST.2: /FIRST\b/i
LAST.2: /LAST\b/i
LIMIT.2: /LIMIT\b/i
OFFSET.2: /OFFSET\b/i
NULL.2: /NULL\b/i
TRUE.2: /TRUE\b/i
FALSE.2: /FALSE\b/i
DATE_LITERAL.2: /(TODAY|YESTERDAY|TOMORROW)\b|(LAST_N_DAYS|NEXT_N_DAYS|N_DAYS_AGO):\d+\b/i

DATETIME.4: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})/
DATE.3: /\d{4}-\d{2}-\d{2}/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)/
INT: /\d+/
STRING: /'(\\.|[^'\\])*'/
COMP_OP: "!=" | "<>" | "<=" | ">=" | "=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.WS
%ignore WS
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)


# --- AST -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    """A field as written in the query: ``Email`` or ``Account.Owner.Email``."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        """The path as written."""
        return ".".join(self.parts)


@dataclass(frozen=True)
class Value:
    """A literal. ``kind`` is string, number, datetime, date, null, boolean or date_literal."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Compare:
    """``field op value``."""

    field: FieldPath
    op: str
    value: Value


@dataclass(frozen=True)
class InList:
    """``field [NOT] IN (values)``."""

    field: FieldPath
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    """``field LIKE 'pattern'`` (the pattern keeps its escapes: ``\\%`` and ``\\_``)."""

    field: FieldPath
    pattern: str


@dataclass(frozen=True)
class Includes:
    """``field INCLUDES|EXCLUDES (values)`` on a multi-select picklist."""

    field: FieldPath
    values: tuple[Value, ...]
    excludes: bool


@dataclass(frozen=True)
class BoolOp:
    """Items joined by one operator, ``AND`` or ``OR``."""

    op: str
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """``NOT condition``."""

    item: Condition


Condition = Compare | InList | Like | Includes | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY item; ``nulls_last`` None means Salesforce's default for the direction."""

    field: FieldPath
    descending: bool = False
    nulls_last: bool | None = None


@dataclass(frozen=True)
class SoqlQuery:
    """A parsed query. ``fields`` is empty for ``SELECT COUNT()``."""

    sobject: str
    fields: tuple[FieldPath, ...]
    is_count: bool
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


_STRING_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
}


def _unquote(token: str) -> str:
    """Decode a quoted SOQL string.

    ``\\%`` and ``\\_`` stay escaped: only LIKE gives them a meaning.
    """
    out: list[str] = []
    body = token[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in _STRING_ESCAPES:
                out.append(_STRING_ESCAPES[nxt])
            elif nxt in "%_":
                out.append("\\" + nxt)
            else:
                raise malformed_query(
                    f"Invalid string literal '{token}'. "
                    f"Illegal character sequence '\\{nxt}' in string literal."
                )
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _parse_datetime(text: str) -> datetime:
    normalised = text.replace("Z", "+00:00")
    # Python wants a colon in the offset ("+0000" appears in Salesforce's own output).
    normalised = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", normalised)
    return datetime.fromisoformat(normalised)


@v_args(inline=True)
class _ToAst(Transformer[Token, Any]):
    """Turns lark's parse tree into the dataclasses above."""

    def start(
        self,
        _select: Token,
        fields: tuple[FieldPath | None, ...],
        _from: Token,
        sobject: Token,
        *clauses: tuple[str, Any],
    ) -> SoqlQuery:
        parts = dict(clauses)
        is_count = any(f is None for f in fields)
        if is_count and len(fields) > 1:
            raise malformed_query("COUNT() cannot be combined with other fields")
        return SoqlQuery(
            sobject=str(sobject),
            fields=tuple(f for f in fields if f is not None),
            is_count=is_count,
            where=parts.get("where"),
            order_by=parts.get("order", ()),
            limit=parts.get("limit"),
            offset=parts.get("offset"),
        )

    def select_list(self, *items: FieldPath | None) -> tuple[FieldPath | None, ...]:
        return items

    def count_all(self, _count: Token) -> None:
        return None

    def field_path(self, *names: Token) -> FieldPath:
        return FieldPath(tuple(str(n) for n in names))

    def where_clause(self, _where: Token, condition: Condition) -> tuple[str, Condition]:
        return ("where", condition)

    def and_chain(self, *items: Any) -> BoolOp:
        return BoolOp("AND", tuple(i for i in items if not isinstance(i, Token)))

    def or_chain(self, *items: Any) -> BoolOp:
        return BoolOp("OR", tuple(i for i in items if not isinstance(i, Token)))

    def not_(self, _not: Token, item: Condition) -> Not:
        return Not(item)

    def compare(self, path: FieldPath, op: Token, value: Value) -> Compare:
        return Compare(path, "!=" if str(op) == "<>" else str(op), value)

    def in_(self, path: FieldPath, _in: Token, values: tuple[Value, ...]) -> InList:
        return InList(path, values, negated=False)

    def not_in(self, path: FieldPath, _not: Token, _in: Token, values: tuple[Value, ...]) -> InList:
        return InList(path, values, negated=True)

    def like(self, path: FieldPath, _like: Token, pattern: Token) -> Like:
        return Like(path, _unquote(str(pattern)))

    def includes(self, path: FieldPath, _kw: Token, values: tuple[Value, ...]) -> Includes:
        return Includes(path, values, excludes=False)

    def excludes(self, path: FieldPath, _kw: Token, values: tuple[Value, ...]) -> Includes:
        return Includes(path, values, excludes=True)

    def value_list(self, *values: Value) -> tuple[Value, ...]:
        return values

    def string(self, token: Token) -> Value:
        return Value("string", _unquote(str(token)))

    def number(self, token: Token) -> Value:
        text = str(token)
        is_int = re.fullmatch(r"[+-]?\d+", text) is not None
        return Value("number", int(text) if is_int else float(text))

    def datetime_value(self, token: Token) -> Value:
        try:
            return Value("datetime", _parse_datetime(str(token)))
        except ValueError as exc:
            raise malformed_query(f"line 1:{token.column} invalid datetime: {token}") from exc

    def date_value(self, token: Token) -> Value:
        try:
            return Value("date", date.fromisoformat(str(token)))
        except ValueError as exc:
            raise malformed_query(f"line 1:{token.column} invalid date: {token}") from exc

    def null(self, _token: Token) -> Value:
        return Value("null", None)

    def true(self, _token: Token) -> Value:
        return Value("boolean", True)

    def false(self, _token: Token) -> Value:
        return Value("boolean", False)

    def date_literal(self, token: Token) -> Value:
        name, _, n = str(token).upper().partition(":")
        return Value("date_literal", (name, int(n) if n else None))

    def order_clause(self, _order: Token, _by: Token, *items: OrderItem) -> tuple[str, Any]:
        return ("order", items)

    def order_item(self, path: FieldPath, *modifiers: tuple[str, bool]) -> OrderItem:
        mods = dict(modifiers)
        return OrderItem(path, mods.get("desc", False), mods.get("nulls_last"))

    def direction(self, token: Token) -> tuple[str, bool]:
        return ("desc", str(token).upper() == "DESC")

    def nulls(self, _nulls: Token, which: Token) -> tuple[str, bool]:
        return ("nulls_last", str(which).upper() == "LAST")

    def limit_clause(self, _kw: Token, count: Token) -> tuple[str, int]:
        return ("limit", int(count))

    def offset_clause(self, _kw: Token, count: Token) -> tuple[str, int]:
        return ("offset", int(count))


def parse_soql(text: str) -> SoqlQuery:
    """Parse SOQL text; raise a 400 MALFORMED_QUERY SalesforceApiError when it does not parse."""
    if len(text) > MAX_QUERY_LENGTH:
        raise malformed_query(
            f"SOQL statements cannot be longer than {MAX_QUERY_LENGTH} characters"
        )
    try:
        tree = _PARSER.parse(text)
        _check_nesting(tree)
        return _ToAst().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SalesforceApiError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise _nested_too_deeply() from None
        raise
    except RecursionError:
        # Belt and braces: the depth check should make this unreachable.
        raise _nested_too_deeply() from None
    except UnexpectedCharacters as exc:
        raise malformed_query(
            f"line {exc.line}:{exc.column} no viable alternative at character "
            f"'{text[exc.pos_in_stream]}'"
        ) from None
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        shown = "EOF" if token is None or token.type == "$END" else str(token)
        raise malformed_query(
            f"unexpected token: '{shown}' (line {exc.line}, column {exc.column})"
        ) from None
    except LarkError as exc:
        raise malformed_query(str(exc)) from None


def _nested_too_deeply() -> SalesforceApiError:
    return malformed_query(
        f"The WHERE clause is nested too deeply: at most {MAX_CONDITION_DEPTH} levels of "
        "NOT, AND and OR are allowed"
    )


def _check_nesting(tree: Tree[Token]) -> None:
    """Refuse conditions nested deeper than ``MAX_CONDITION_DEPTH``.

    Walked with an explicit stack: the LALR parse itself is iterative, but the transformer,
    the SQL translation and SQLite's parser all recurse per level.
    """
    pending: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if node.data in _NESTING_RULES:
            depth += 1
            if depth > MAX_CONDITION_DEPTH:
                raise _nested_too_deeply()
        pending.extend((child, depth) for child in node.children if isinstance(child, Tree))


# --- translation into SQL ------------------------------------------------------------------


@dataclass
class _Relationship:
    """One traversed relationship: its describe name and one joined table per target type."""

    name: str
    targets: list[tuple[ObjectDef, str]]
    polymorphic: bool


@dataclass(frozen=True)
class ResolvedField:
    """A field path resolved against the metadata."""

    sql: str
    field: FieldDef
    relationship_path: tuple[str, ...]
    describe_path: tuple[str, ...]


@dataclass
class Projection:
    """How to build a JSON record from a result row.

    A leaf names a result column and its field; a relationship node holds the columns of the
    parent's Id per possible parent type (to decide null vs object, and the parent's type).
    """

    key: str
    column: str | None = None
    field: FieldDef | None = None
    id_columns: list[tuple[ObjectDef, str]] = dataclasses.field(default_factory=list)
    children: list[Projection] = dataclasses.field(default_factory=list)


@dataclass
class CompiledQuery:
    """A SOQL query translated into SQLite pieces with its bound parameters."""

    sobject: ObjectDef
    is_count: bool
    from_sql: str
    where_sql: str
    params: list[Any]
    order_sql: str
    select_sql: str
    projections: list[Projection]
    limit: int | None
    offset: int

    def count_sql(self) -> tuple[str, list[Any]]:
        """SQL and parameters counting the matching rows (before LIMIT/OFFSET)."""
        return f"SELECT COUNT(*) {self.from_sql}{self.where_sql}", list(self.params)

    def ids_sql(self) -> tuple[str, list[Any]]:
        """SQL and parameters listing the matching Ids in query order, LIMIT/OFFSET applied."""
        sql = f'SELECT t0."Id" {self.from_sql}{self.where_sql}{self.order_sql} LIMIT ? OFFSET ?'
        limit = -1 if self.limit is None else self.limit
        return sql, [*self.params, limit, self.offset]

    def rows_for_ids_sql(self) -> str:
        """SQL selecting the query's columns for Ids given as one JSON-array parameter.

        Pages fetch records by Id from the list taken when the query ran, so that records
        changing between pages cannot shift, duplicate or drop rows.
        """
        return (
            f'SELECT t0."Id" AS row_id, {self.select_sql} {self.from_sql} '
            'WHERE t0."Id" IN (SELECT value FROM json_each(?))'
        )


class _Compiler:
    """Resolves field paths, builds joins, and translates conditions with bound parameters."""

    def __init__(self, sobject: ObjectDef, now: datetime) -> None:
        self.sobject = sobject
        self.now = now
        self.params: list[Any] = []
        self.joins: list[str] = []
        self.relationships: dict[tuple[str, ...], _Relationship] = {}
        self._alias_count = 0

    # --- field resolution ----------------------------------------------------------------

    def _new_alias(self) -> str:
        self._alias_count += 1
        return f"t{self._alias_count}"

    def _no_such_column(self, name: str, obj: ObjectDef) -> SalesforceApiError:
        return invalid_field(
            f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names."
        )

    def resolve(self, path: FieldPath) -> ResolvedField:
        """Resolve ``path`` to a column expression, joining parents as needed."""
        parts = path.parts
        if (
            len(parts) > 1
            and parts[0].lower() == self.sobject.name.lower()
            and self.sobject.relationship(parts[0]) is None
        ):
            parts = parts[1:]  # "Lead.Email" in a query on Lead
        targets: list[tuple[ObjectDef, str]] = [(self.sobject, "t0")]
        rel_key: tuple[str, ...] = ()
        describe_path: list[str] = []
        for name in parts[:-1]:
            if len(targets) > 1:
                raise invalid_field(
                    f"Didn't understand relationship '{name}' in field path. Polymorphic "
                    f"relationship '{describe_path[-1]}' can only be followed by one field."
                )
            obj, alias = targets[0]
            ref = obj.relationship(name)
            if ref is None:
                raise invalid_field(
                    f"Didn't understand relationship '{name}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' "
                    "after the custom relationship name. Please reference your WSDL or the "
                    "describe call for the appropriate names."
                )
            assert ref.relationship_name is not None
            rel_key = (*rel_key, ref.relationship_name)
            describe_path.append(ref.relationship_name)
            relationship = self.relationships.get(rel_key)
            if relationship is None:
                relationship = self._join(alias, ref, rel_key)
            targets = relationship.targets
        leaf = parts[-1]
        matches = [(obj, alias, obj.field(leaf)) for obj, alias in targets]
        found = [(obj, alias, f) for obj, alias, f in matches if f is not None]
        if not found:
            raise self._no_such_column(leaf, targets[0][0])
        columns = [f'{alias}."{f.name}"' for _, alias, f in found]
        sql = columns[0] if len(columns) == 1 else f"COALESCE({', '.join(columns)})"
        field_def = found[0][2]
        return ResolvedField(sql, field_def, rel_key, (*describe_path, field_def.name))

    def _join(self, parent_alias: str, ref: FieldDef, rel_key: tuple[str, ...]) -> _Relationship:
        assert ref.relationship_name is not None
        targets = []
        for target_name in ref.reference_to:
            target = get_object(target_name)
            assert target is not None, f"reference to unknown object {target_name}"
            alias = self._new_alias()
            self.joins.append(
                f"LEFT JOIN {store.quote_ident(target.name)} AS {alias} "
                f'ON {alias}."Id" = {parent_alias}."{ref.name}"'
            )
            targets.append((target, alias))
        relationship = _Relationship(ref.relationship_name, targets, len(targets) > 1)
        self.relationships[rel_key] = relationship
        return relationship

    # --- conditions ------------------------------------------------------------------------

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def visible_rows(self, *, include_deleted: bool) -> str:
        """The rows a query sees: live ones; for queryAll also those deleted in the last
        ``RECYCLE_BIN_RETENTION`` (older deletions have left the Recycle Bin, even where the
        sandbox has not purged them yet). A deleted row's SystemModstamp is its deletion time:
        deleting sets it, and nothing changes a deleted record afterwards.
        """
        if not include_deleted:
            return 't0."IsDeleted" = 0'
        cutoff = store.to_storage_datetime(self.now - deletion_log.RECYCLE_BIN_RETENTION)
        return f'(t0."IsDeleted" = 0 OR t0."SystemModstamp" >= {self._bind(cutoff)})'

    def condition(self, cond: Condition) -> str:
        """SQL for a WHERE condition."""
        if isinstance(cond, BoolOp):
            return _chain([self.condition(i) for i in cond.items], cond.op)
        if isinstance(cond, Not):
            return f"(NOT {self.condition(cond.item)})"
        if isinstance(cond, Compare):
            return self._compare(cond)
        if isinstance(cond, InList):
            return self._in_list(cond)
        if isinstance(cond, Like):
            return self._like(cond)
        return self._includes(cond)

    def _type_error(self, f: FieldDef, value: Value) -> SalesforceApiError:
        expected = {
            FieldType.DATETIME: "dateTime and should not be enclosed in quotes",
            FieldType.DATE: "date and should not be enclosed in quotes",
            FieldType.BOOLEAN: "boolean and should not be enclosed in quotes",
            FieldType.INT: "int and should not be enclosed in quotes",
            FieldType.DOUBLE: "double and should not be enclosed in quotes",
            FieldType.CURRENCY: "currency and should not be enclosed in quotes",
        }.get(f.type, "string and should be enclosed in quotes")
        return invalid_field(
            f"value of filter criterion for field '{f.name}' must be of type {expected}",
            [f.name],
        )

    def _scalar(self, f: FieldDef, value: Value) -> Any:
        """The stored form of a literal compared with ``f``; raise when the types differ."""
        kind = value.kind
        if f.is_text and kind == "string":
            text = value.value
            if f.type in (FieldType.ID, FieldType.REFERENCE) and text:
                if not is_valid_id(text):
                    raise SalesforceApiError(
                        400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}"
                    )
                return to_18(text)
            if f.type is FieldType.MULTIPICKLIST:
                return _normalise_multipicklist(f, text)
            return text
        if f.is_number and kind == "number":
            return value.value
        if f.type is FieldType.BOOLEAN and kind == "boolean":
            return int(value.value)
        if f.type is FieldType.DATE and kind == "date":
            return value.value.isoformat()
        if f.type is FieldType.DATETIME and kind == "datetime":
            return store.to_storage_datetime(value.value)
        raise self._type_error(f, value)

    def _collate(self, f: FieldDef) -> str:
        # Ids are case-sensitive; every other text compares case-insensitively in SOQL.
        if f.is_text and f.type not in (FieldType.ID, FieldType.REFERENCE):
            return f" COLLATE {CI_COLLATION}"
        return ""

    def _compare(self, cond: Compare) -> str:
        resolved = self.resolve(cond.field)
        f, expr, op = resolved.field, resolved.sql, cond.op
        if cond.value.kind == "null":
            if op == "=":
                return f"{expr} IS NULL"
            if op == "!=":
                return f"{expr} IS NOT NULL"
            raise malformed_query(f"invalid operator on null: {op} (field {cond.field.text})")
        if cond.value.kind == "date_literal":
            return self._date_range(f, expr, op, cond.value)
        if f.type is FieldType.BOOLEAN and op not in ("=", "!="):
            raise malformed_query(f"invalid operator on boolean field {f.name}: {op}")
        if f.type is FieldType.TEXTAREA and f.length > 255:
            # Long text areas cannot be filtered in Salesforce either.
            raise invalid_field(f"field '{f.name}' can not be filtered in a query call", [f.name])
        bound = self._bind(self._scalar(f, cond.value))
        comparison = f"{expr} {op} {bound}{self._collate(f)}"
        if op == "!=":
            return f"({expr} IS NULL OR {comparison})"
        return comparison

    def _date_range(self, f: FieldDef, expr: str, op: str, value: Value) -> str:
        if f.type not in (FieldType.DATE, FieldType.DATETIME):
            raise self._type_error(f, value)
        name, n = value.value
        start, end = _date_literal_range(name, n, self.now.date())

        def edge(day: date) -> str:
            if f.type is FieldType.DATE:
                return self._bind(day.isoformat())
            return self._bind(store.to_storage_datetime(datetime.combine(day, time(), UTC)))

        if op == "=":
            return f"({expr} >= {edge(start)} AND {expr} < {edge(end)})"
        if op == "!=":
            return f"({expr} IS NULL OR {expr} < {edge(start)} OR {expr} >= {edge(end)})"
        if op == "<":
            return f"{expr} < {edge(start)}"
        if op == "<=":
            return f"{expr} < {edge(end)}"
        if op == ">":
            return f"{expr} >= {edge(end)}"
        return f"{expr} >= {edge(start)}"

    def _in_list(self, cond: InList) -> str:
        resolved = self.resolve(cond.field)
        f, expr = resolved.field, resolved.sql
        if any(v.kind == "date_literal" for v in cond.values):
            raise malformed_query("date literals are not supported in IN lists")
        has_null = any(v.kind == "null" for v in cond.values)
        scalars = [self._scalar(f, v) for v in cond.values if v.kind != "null"]
        parts = []
        if scalars:
            marks = ", ".join(self._bind(s) for s in scalars)
            keyword = "NOT IN" if cond.negated else "IN"
            parts.append(f"{expr}{self._collate(f)} {keyword} ({marks})")
        if cond.negated:
            null_part = f"{expr} IS NOT NULL" if has_null else None
            inner = " AND ".join(p for p in (*parts, null_part) if p) or "1"
            # NOT IN matches nulls unless null itself is listed.
            return inner if has_null else f"({expr} IS NULL OR {inner})"
        if has_null:
            parts.append(f"{expr} IS NULL")
        return "(" + " OR ".join(parts) + ")" if parts else "0"

    def _like(self, cond: Like) -> str:
        resolved = self.resolve(cond.field)
        if not resolved.field.is_text or resolved.field.type is FieldType.MULTIPICKLIST:
            raise invalid_field(
                f"invalid operator on {resolved.field.type.value} field: LIKE "
                f"({resolved.field.name})",
                [resolved.field.name],
            )
        return f"{_LIKE_FN}({resolved.sql}, {self._bind(cond.pattern)})"

    def _includes(self, cond: Includes) -> str:
        resolved = self.resolve(cond.field)
        f = resolved.field
        keyword = "excludes" if cond.excludes else "includes"
        if f.type is not FieldType.MULTIPICKLIST:
            raise invalid_field(
                f"{keyword} or excludes operator only valid on multipicklist field ({f.name})",
                [f.name],
            )
        checks = []
        for value in cond.values:
            if value.kind != "string":
                raise self._type_error(f, value)
            checks.append(f"{_INCLUDES_FN}({resolved.sql}, {self._bind(value.value)})")
        any_match = "(" + " OR ".join(checks) + ")"
        return f"(NOT {any_match})" if cond.excludes else any_match

    # --- ORDER BY and SELECT -----------------------------------------------------------------

    def order_by(self, items: tuple[OrderItem, ...]) -> str:
        """ORDER BY SQL; Id is added as the last key so that pages are stable."""
        terms = []
        ordered_by_id = False
        for item in items:
            resolved = self.resolve(item.field)
            # Ids are unique, so ordering by Id anywhere already makes the order total.
            ordered_by_id = ordered_by_id or resolved.sql == 't0."Id"'
            direction = "DESC" if item.descending else "ASC"
            # Salesforce's defaults: nulls first when ascending, last when descending.
            nulls_last = item.descending if item.nulls_last is None else item.nulls_last
            terms.append(
                f"{resolved.sql}{self._collate(resolved.field)} {direction} "
                f"NULLS {'LAST' if nulls_last else 'FIRST'}"
            )
        if not ordered_by_id:
            terms.append('t0."Id" ASC')
        return " ORDER BY " + ", ".join(terms)

    def projections(self, fields: tuple[FieldPath, ...]) -> tuple[str, list[Projection]]:
        """The SELECT column list and the matching projection tree."""
        columns: list[str] = []
        roots: list[Projection] = []
        nodes: dict[tuple[str, ...], Projection] = {}
        seen: set[tuple[str, ...]] = set()
        for path in fields:
            resolved = self.resolve(path)
            key = tuple(p.lower() for p in resolved.describe_path)
            if key in seen:
                raise malformed_query(f"duplicate field selected: {path.text}")
            seen.add(key)
            siblings = roots
            for depth in range(1, len(resolved.relationship_path) + 1):
                rel_key = resolved.relationship_path[:depth]
                node = nodes.get(rel_key)
                if node is None:
                    relationship = self.relationships[rel_key]
                    id_columns = []
                    for obj, alias in relationship.targets:
                        column = f"c{len(columns)}"
                        columns.append(f'{alias}."Id" AS {column}')
                        id_columns.append((obj, column))
                    node = Projection(key=relationship.name, id_columns=id_columns)
                    nodes[rel_key] = node
                    siblings.append(node)
                siblings = node.children
            column = f"c{len(columns)}"
            columns.append(f"{resolved.sql} AS {column}")
            siblings.append(
                Projection(key=resolved.field.name, column=column, field=resolved.field)
            )
        return ", ".join(columns), roots


def _chain(terms: list[str], op: str) -> str:
    """``terms`` joined by ``op``, in groups of ``_CHAIN_GROUP``.

    SQLite nests a chain of N terms N deep and refuses expressions deeper than 1,000, while
    Salesforce takes chains as long as its 100,000-character limit allows; grouping keeps any
    chain that fits in a query (about 10,000 terms) at most 200 deep.
    """
    while len(terms) > _CHAIN_GROUP:
        terms = [
            "(" + f" {op} ".join(terms[i : i + _CHAIN_GROUP]) + ")"
            for i in range(0, len(terms), _CHAIN_GROUP)
        ]
    return "(" + f" {op} ".join(terms) + ")"


def _normalise_multipicklist(f: FieldDef, text: str) -> str:
    """Order ``a;b`` values as the picklist does, which is how they are stored."""
    values = [v.strip() for v in text.split(";") if v.strip()]
    order = {v.lower(): i for i, v in enumerate(f.picklist_values)}
    return ";".join(sorted(values, key=lambda v: (order.get(v.lower(), len(order)), v)))


def _date_literal_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """The [start, end) days a date literal covers (the org's time zone is UTC)."""
    day = timedelta(days=1)
    if name == "TODAY":
        return today, today + day
    if name == "YESTERDAY":
        return today - day, today
    if name == "TOMORROW":
        return today + day, today + 2 * day
    assert n is not None
    if name == "LAST_N_DAYS":
        return today - n * day, today + day
    if name == "NEXT_N_DAYS":
        return today + day, today + (n + 1) * day
    return today - n * day, today - (n - 1) * day  # N_DAYS_AGO


def compile_soql(query: SoqlQuery, *, include_deleted: bool, now: datetime) -> CompiledQuery:
    """Translate a parsed query into SQLite for the object metadata.

    ``include_deleted`` is queryAll; ``now`` anchors date literals such as TODAY.
    """
    sobject = get_object(query.sobject)
    if sobject is None:
        raise SalesforceApiError(
            400,
            "INVALID_TYPE",
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
            "custom object, be sure to append the '__c' after the entity name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
        )
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SalesforceApiError(
            400,
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"Maximum SOQL offset allowed is {MAX_OFFSET}",
        )
    compiler = _Compiler(sobject, now)
    select_sql, projections = compiler.projections(query.fields)
    where_terms = []
    if query.where is not None:
        where_terms.append(compiler.condition(query.where))
    if sobject.has_field("IsDeleted"):
        where_terms.append(compiler.visible_rows(include_deleted=include_deleted))
    order_sql = compiler.order_by(query.order_by)
    from_sql = " ".join([f"FROM {store.quote_ident(sobject.name)} AS t0", *compiler.joins])
    where_sql = " WHERE " + " AND ".join(where_terms) if where_terms else ""
    return CompiledQuery(
        sobject=sobject,
        is_count=query.is_count,
        from_sql=from_sql,
        where_sql=where_sql,
        params=compiler.params,
        order_sql=order_sql,
        select_sql=select_sql or 't0."Id" AS c0',
        projections=projections,
        limit=query.limit,
        offset=query.offset or 0,
    )


# --- SQLite helpers the translation relies on ------------------------------------------------


@dataclass(frozen=True)
class LikePattern:
    """A LIKE pattern cut at its ``%`` wildcards into fixed-length segments.

    Each segment (literal characters and ``_``) matches exactly as many characters as it has
    tokens, so a match needs no backtracking: the first segment must match at the start, the
    last at the end, and each one between at its leftmost place after the previous one, which
    is always a correct choice when ``%`` separates them. A segment is found with a regex
    free of repetition, so the whole match is one left-to-right scan of the value per segment.
    """

    segments: tuple[re.Pattern[str], ...]
    lengths: tuple[int, ...]
    # Whether a ``%`` opens or closes the pattern (the first or last segment may float).
    open_start: bool
    open_end: bool

    def matches(self, value: str) -> bool:
        """Whether ``value`` matches, ignoring case as SOQL does."""
        if len(self.segments) == 1 and not (self.open_start or self.open_end):
            return self.segments[0].fullmatch(value) is not None
        position = 0
        last = len(self.segments) - 1
        for index, (segment, length) in enumerate(zip(self.segments, self.lengths, strict=True)):
            if index == 0 and not self.open_start:
                if segment.match(value, 0) is None:
                    return False
                position = length
            elif index == last and not self.open_end:
                start = len(value) - length
                return start >= position and segment.fullmatch(value, start) is not None
            else:
                found = segment.search(value, position)
                if found is None:
                    return False
                position = found.end()
        return True


@lru_cache(maxsize=256)
def like_pattern(pattern: str) -> LikePattern:
    """The matcher of a LIKE pattern as stored after unquoting (``\\%`` and ``\\_`` are literal
    ``%`` and ``_``; a backslash before any other character makes it literal too)."""
    segments: list[list[str]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            segments[-1].append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            segments.append([])
        else:
            segments[-1].append("." if ch == "_" else re.escape(ch))
        i += 1
    wildcard = len(segments) > 1
    open_start, open_end = wildcard and not segments[0], wildcard and not segments[-1]
    # Empty segments (from "%%", or at either end) constrain nothing once the ends are known.
    kept = [tokens for tokens in segments if tokens] or [[]]
    return LikePattern(
        segments=tuple(re.compile("".join(t), re.IGNORECASE | re.DOTALL) for t in kept),
        lengths=tuple(len(t) for t in kept),
        open_start=open_start,
        open_end=open_end,
    )


def _sql_like(value: str | None, pattern: str) -> int:
    return int(value is not None and like_pattern(pattern).matches(value))


def _sql_includes(value: str | None, wanted: str) -> int:
    if value is None:
        return 0
    have = {v.strip().lower() for v in value.split(";")}
    need = {v.strip().lower() for v in wanted.split(";") if v.strip()}
    return int(bool(need) and need <= have)


def _ci_collate(left: str, right: str) -> int:
    a, b = left.casefold(), right.casefold()
    return (a > b) - (a < b)


def install_sql_functions(conn: sqlite3.Connection) -> None:
    """Register the collation and functions compiled queries use on ``conn``."""
    conn.create_collation(CI_COLLATION, _ci_collate)
    conn.create_function(_LIKE_FN, 2, _sql_like, deterministic=True)
    conn.create_function(_INCLUDES_FN, 2, _sql_includes, deterministic=True)
