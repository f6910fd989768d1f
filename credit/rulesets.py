"""Ruleset versions: the four-eyes lifecycle, one published version per product,
and compiled rulesets for live decisions.

``draft -> submitted -> approved -> published -> retired``: the author edits
and submits a draft; a different risk officer approves it (or returns it with
a note); publishing retires the product's previous version in the same
transaction, and re-publishing a retired version is the roll-back. A body is
frozen once submitted, which is what makes a compiled version safe to cache by
id and a stored decision replayable years later. The database backs the one
published version per product with a partial unique index (see the migration),
and on PostgreSQL the product's rows are locked while a version is published,
so two officers publishing at once are serialised rather than racing.

Functions here are called inside the caller's transaction and write their
audit entry in it.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from piccolo.engine.postgres import PostgresEngine

from app import audit
from app.db import engine
from app.errors import Conflict, FieldError, Forbidden, NotFound
from app.security import Principal
from app.tables import Account
from credit.engine.errors import RulesetInvalid
from credit.engine.rules import CompiledRuleset, Ruleset, compile_ruleset, ruleset_from_json, ruleset_to_json
from credit.schemas import RulesetDetail, RulesetSummary, StaffRef, ruleset_status
from credit.tables import RulesetVersion

DRAFT, SUBMITTED, APPROVED, PUBLISHED, RETIRED = "draft", "submitted", "approved", "published", "retired"
SEED_FILE: Final = Path(__file__).resolve().parent / "rulesets" / "ruleset_tax_loan_v1.json"
_CACHE_LIMIT: Final = 256


class RulesetNotFound(NotFound):
    code = "ruleset_not_found"


class RulesetStateConflict(Conflict):
    """The version is not in a state that allows this step."""

    code = "ruleset_state"


class NotAuthor(Forbidden):
    """Only a draft's author edits or submits it: whoever else touched it would
    be an author too, and could no longer approve it."""

    code = "not_author"


class FourEyes(Forbidden):
    """The author (or the submitter) of a version may not approve it."""

    code = "four_eyes"


class VersionTaken(Conflict):
    code = "version_taken"


class NoPublishedRuleset(Conflict):
    """A product without a published version cannot decide anything."""

    code = "no_published_ruleset"


def _now() -> datetime:
    return datetime.now(UTC)


def _state(row: RulesetVersion) -> dict[str, Any]:
    """What the audit log digests: the lifecycle fields and the body."""
    return {"status": row.status, "product": row.product, "version": row.version, "body": _body_text(row)}


def _body_text(row: RulesetVersion) -> str:
    body = row.body
    return body if isinstance(body, str) else msgspec.json.encode(body).decode()


def body_sha256(row: RulesetVersion) -> str:
    """Digest of the stored body: tells a backtest of this exact table from one of an earlier edit."""
    return hashlib.sha256(_body_text(row).encode()).hexdigest()


def body_of(row: RulesetVersion) -> Ruleset:
    """The stored body as a ``Ruleset`` (it was validated when it was written)."""
    return msgspec.json.decode(_body_text(row), type=Ruleset)


async def get_version(version_id: int, *, lock: bool = False) -> RulesetVersion:
    query = RulesetVersion.objects().where(RulesetVersion.id == version_id)
    if lock and isinstance(engine(), PostgresEngine):
        query = query.lock_rows()
    row = await query.first()
    if row is None:
        raise RulesetNotFound("no such ruleset version")
    return row


async def lock_product(product: str) -> None:
    """Serialise lifecycle changes of one product (PostgreSQL; SQLite's
    immediate transactions are serial already)."""
    if isinstance(engine(), PostgresEngine):
        await RulesetVersion.select(RulesetVersion.id).where(RulesetVersion.product == product).lock_rows()


async def _ensure_free(product: str, version: str, *, other_than: int | None = None) -> None:
    query = RulesetVersion.exists().where((RulesetVersion.product == product) & (RulesetVersion.version == version))
    if other_than is not None:
        query = query.where(RulesetVersion.id != other_than)
    if await query:
        raise VersionTaken(
            f"{product} already has a version {version}",
            fields=[FieldError(path="version", message="already taken for this product")],
        )


async def create_draft(principal: Principal, raw: bytes | str) -> RulesetVersion:
    """A new draft from the editor's JSON; every invalid cell is reported at once."""
    ruleset = ruleset_from_json(raw)
    await lock_product(ruleset.product)
    await _ensure_free(ruleset.product, ruleset.version)
    return await _insert_draft(principal.account_id, ruleset, based_on=None)


async def _insert_draft(author: int | None, ruleset: Ruleset, *, based_on: int | None) -> RulesetVersion:
    now = _now()
    row = RulesetVersion(
        product=ruleset.product,
        version=ruleset.version,
        body=ruleset_to_json(ruleset).decode(),
        status=DRAFT,
        based_on=based_on,
        author=author,
        created_at=now,
        updated_at=now,
    )
    await row.save()
    await audit.record("credit.ruleset_drafted", "ruleset_version", row.id, after=_state(row))
    return row


async def copy_version(principal: Principal, version_id: int) -> RulesetVersion:
    """A new draft from any version, numbered after the product's highest version."""
    source = await get_version(version_id)
    ruleset = body_of(source)
    await lock_product(source.product)
    taken = await RulesetVersion.select(RulesetVersion.version).where(RulesetVersion.product == source.product)
    numbers = [int(r["version"]) for r in taken if str(r["version"]).isdigit()]
    version = str(max(numbers, default=0) + 1)
    copy = msgspec.structs.replace(ruleset, version=version)
    return await _insert_draft(principal.account_id, copy, based_on=source.id)


async def update_draft(principal: Principal, version_id: int, raw: bytes | str) -> RulesetVersion:
    row = await get_version(version_id, lock=True)
    require_status(row, DRAFT, "only a draft can be edited")
    if row.author != principal.account_id:
        raise NotAuthor("only the draft's author edits it; copy it into a draft of your own")
    ruleset = ruleset_from_json(raw)
    if ruleset.product != row.product:
        raise RulesetInvalid([FieldError(path="product", message=f"a draft of {row.product} stays {row.product}")])
    await _ensure_free(ruleset.product, ruleset.version, other_than=row.id)
    before = _state(row)
    row.version, row.body, row.updated_at = ruleset.version, ruleset_to_json(ruleset).decode(), _now()
    await row.save([RulesetVersion.version, RulesetVersion.body, RulesetVersion.updated_at])
    await audit.record("credit.ruleset_edited", "ruleset_version", row.id, before=before, after=_state(row))
    return row


async def delete_draft(principal: Principal, version_id: int) -> None:
    """Discard a draft (its author only), with the backtests run on it; a version
    that was ever submitted stays, as the record of what was reviewed."""
    row = await get_version(version_id, lock=True)
    require_status(row, DRAFT, "only a draft can be deleted")
    if row.author != principal.account_id:
        raise NotAuthor("only the draft's author deletes it")
    if row.submitted_at is not None:
        raise RulesetStateConflict("a draft returned by its reviewer stays on record; edit it instead")
    before = _state(row)
    await RulesetVersion.delete().where(RulesetVersion.id == row.id)
    await audit.record("credit.ruleset_deleted", "ruleset_version", row.id, before=before)


def require_status(row: RulesetVersion, status: str | tuple[str, ...], message: str) -> None:
    allowed = (status,) if isinstance(status, str) else status
    if row.status not in allowed:
        raise RulesetStateConflict(f"{message} (this version is {row.status})")


async def submit(principal: Principal, version_id: int) -> RulesetVersion:
    row = await get_version(version_id, lock=True)
    require_status(row, DRAFT, "only a draft can be submitted")
    if row.author != principal.account_id:
        raise NotAuthor("only the draft's author submits it")
    compile_ruleset(body_of(row))  # a stored draft was validated, but the engine may have moved on
    return await _move(row, SUBMITTED, "credit.ruleset_submitted", submitted_by=principal.account_id)


async def approve(principal: Principal, version_id: int, note: str = "") -> RulesetVersion:
    row = await get_version(version_id, lock=True)
    require_status(row, SUBMITTED, "only a submitted version can be approved")
    if principal.account_id in (row.author, row.submitted_by):
        raise FourEyes("four eyes: a version is approved by a risk officer other than its author")
    return await _move(row, APPROVED, "credit.ruleset_approved", approved_by=principal.account_id, note=note)


async def reject(principal: Principal, version_id: int, note: str) -> RulesetVersion:
    """Return a submitted version to its author as a draft, with the reviewer's note."""
    row = await get_version(version_id, lock=True)
    require_status(row, SUBMITTED, "only a submitted version can be returned")
    return await _move(row, DRAFT, "credit.ruleset_returned", note=note, submitted_by=None)


async def publish(principal: Principal, version_id: int) -> RulesetVersion:
    """Publish an approved version, or roll back to a retired one; the product's
    published version retires and its champion/challenger set-up ends."""
    target = await get_version(version_id)
    await lock_product(target.product)
    row = await get_version(version_id, lock=True)
    require_status(row, (APPROVED, RETIRED), "only an approved or retired version can be published")
    rollback = row.status == RETIRED
    now = _now()
    current = (
        await RulesetVersion.objects()
        .where((RulesetVersion.product == row.product) & (RulesetVersion.status == PUBLISHED))
        .first()
    )
    if current is not None:
        # retire first: the partial unique index checks each statement
        await _move(current, RETIRED, "credit.ruleset_retired", retired_at=now)
    from credit.challengers import end_challenger  # challengers build on this module

    await end_challenger(row.product, reason="published")
    action = "credit.ruleset_rolled_back" if rollback else "credit.ruleset_published"
    return await _move(row, PUBLISHED, action, published_by=principal.account_id, published_at=now, retired_at=None)


async def _move(
    row: RulesetVersion, status: str, action: str, *, note: str | None = None, **stamps: Any
) -> RulesetVersion:
    before = _state(row)
    now = _now()
    row.status, row.updated_at = status, now
    columns: list[Any] = [RulesetVersion.status, RulesetVersion.updated_at]
    if status in (SUBMITTED, APPROVED):
        stamp = "submitted_at" if status == SUBMITTED else "approved_at"
        setattr(row, stamp, now)
        columns.append(getattr(RulesetVersion, stamp))
    for name, value in stamps.items():
        setattr(row, name, value)
        columns.append(getattr(RulesetVersion, name))
    if note is not None:
        row.review_note = note
        columns.append(RulesetVersion.review_note)
    await row.save(columns)
    await audit.record(action, "ruleset_version", row.id, before=before, after=_state(row), detail={"status": status})
    return row


async def seed_published_ruleset(path: Path = SEED_FILE) -> RulesetVersion:
    """Publish the committed ruleset file for its product unless that version
    exists already (so ``branchless seed`` can run again). Its review happened
    in git, so the version carries no author or approver, and says so."""
    ruleset = ruleset_from_json(await asyncio.to_thread(path.read_bytes))
    existing = (
        await RulesetVersion.objects()
        .where((RulesetVersion.product == ruleset.product) & (RulesetVersion.version == ruleset.version))
        .first()
    )
    if existing is not None:
        return existing
    await lock_product(ruleset.product)
    if await RulesetVersion.exists().where(
        (RulesetVersion.product == ruleset.product) & (RulesetVersion.status == PUBLISHED)
    ):
        raise RulesetStateConflict(f"{ruleset.product} already has a published version; publish through review")
    now = _now()
    row = RulesetVersion(
        product=ruleset.product,
        version=ruleset.version,
        body=ruleset_to_json(ruleset).decode(),
        status=PUBLISHED,
        author=None,
        review_note=f"seeded from {path.name}, reviewed in git",
        created_at=now,
        updated_at=now,
        published_at=now,
    )
    await row.save()
    await audit.record("credit.ruleset_seeded", "ruleset_version", row.id, after=_state(row))
    return row


# --- reading ----------------------------------------------------------------------------


async def _staff_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await Account.select(Account.id, Account.display_name).where(Account.id.is_in(list(ids)))
    return {r["id"]: r["display_name"] for r in rows}


def _ref(account_id: int | None, names: dict[int, str]) -> StaffRef | None:
    return None if account_id is None else StaffRef(id=account_id, name=names.get(account_id, "?"))


async def list_versions(product: str | None = None, limit: int = 200) -> list[RulesetSummary]:
    query = RulesetVersion.objects().order_by(RulesetVersion.product).order_by(RulesetVersion.id, ascending=False)
    if product:
        query = query.where(RulesetVersion.product == product)
    rows = await query.limit(limit)
    names = await _staff_names({i for r in rows for i in (r.author, r.approved_by) if i is not None})
    out = []
    for r in rows:
        body = body_of(r)
        out.append(
            RulesetSummary(
                id=r.id,
                product=r.product,
                version=r.version,
                status=ruleset_status(r.status),
                description=body.description,
                rows=len(body.rows),
                author=_ref(r.author, names),
                approved_by=_ref(r.approved_by, names),
                created_at=r.created_at,
                updated_at=r.updated_at,
                published_at=r.published_at,
                retired_at=r.retired_at,
            )
        )
    return out


async def detail(row: RulesetVersion) -> RulesetDetail:
    people = {row.author, row.submitted_by, row.approved_by, row.published_by}
    names = await _staff_names({i for i in people if i is not None})
    return RulesetDetail(
        id=row.id,
        product=row.product,
        version=row.version,
        status=ruleset_status(row.status),
        based_on=row.based_on,
        author=_ref(row.author, names),
        submitted_by=_ref(row.submitted_by, names),
        approved_by=_ref(row.approved_by, names),
        published_by=_ref(row.published_by, names),
        review_note=row.review_note,
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_at=row.submitted_at,
        approved_at=row.approved_at,
        published_at=row.published_at,
        retired_at=row.retired_at,
        body=body_of(row),
    )


async def published_version(product: str) -> RulesetVersion | None:
    return (
        await RulesetVersion.objects()
        .where((RulesetVersion.product == product) & (RulesetVersion.status == PUBLISHED))
        .first()
    )


# --- compiled versions for live decisions ------------------------------------------------

_compiled: dict[int, CompiledRuleset] = {}


async def compiled_version(version_id: int) -> CompiledRuleset:
    """The compiled ruleset of a version, compiled once per process once it is
    approved: its body can no longer change, so the id is a safe key."""
    found = _compiled.get(version_id)
    if found is not None:
        return found
    row = await get_version(version_id)
    result = compile_ruleset(body_of(row))
    if row.status in (APPROVED, PUBLISHED, RETIRED):  # a submitted version can still return to draft
        if len(_compiled) >= _CACHE_LIMIT:
            _compiled.clear()
        _compiled[version_id] = result
    return result
