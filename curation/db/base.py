"""The one declarative base every table derives from, and the column types they share."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Enum, Integer, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column

# Deterministic constraint names: Alembic can then drop and alter constraints by name, which SQLite's
# batch mode (copy-and-move of a table) depends on.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL (generations reach the billions in a busy deployment); SQLite only
# auto-increments a column declared exactly INTEGER PRIMARY KEY, which is 64-bit there anyway.
IdType = BigInteger().with_variant(Integer(), "sqlite")
# none_as_null: Python None is SQL NULL (not the JSON literal null), so `WHERE meta IS NULL` works.
JsonType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def json_dumps(value: Any) -> str:
    """The one JSON encoding of JSON columns (the engines use it, and so do bulk inserts)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


json_loads = orjson.loads


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JsonType,
        list[Any]: JsonType,
    }

    def __repr__(self) -> str:
        # Only the primary key: touching other attributes could trigger a load on an expired
        # instance, which lazy="raise" relationships and closed sessions turn into errors.
        pk = getattr(self, "id", None)
        return f"<{type(self).__name__} id={pk}>"


IdPk = Annotated[int, mapped_column(IdType, primary_key=True, autoincrement=True)]
CreatedAt = Annotated[datetime, mapped_column(default=utc_now, nullable=False)]


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A VARCHAR column with a CHECK constraint listing the enum's values (portable across databases).

    Plain strings keep the tables readable from any SQL client; the CHECK keeps them honest.
    """
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        # Room for values added later without widening the column.
        length=32,
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )
