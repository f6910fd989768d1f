"""Tables of kyc/: consents, identity documents, face templates, cases and evidence.

Biometric data is stored encrypted: templates in ``vector_enc`` (AES-GCM over the
float32 bytes), images in the encrypted blob store. Rows keep only ids and digests.
"""

from __future__ import annotations

from piccolo.columns import JSON, Boolean, Float, ForeignKey, Serial, Text, Timestamptz, Varchar
from piccolo.table import Table

from app.tables import Account, Customer


class FaceConsent(Table, tablename="kyc_face_consent"):
    """The customer's separate consent to processing their face (biometric data)."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    text_version = Varchar(length=32)
    granted_at = Timestamptz()
    withdrawn_at = Timestamptz(null=True, default=None)
    ip = Varchar(length=64, default="")


class IdentityDocument(Table, tablename="kyc_identity_document"):
    """An identity document and its portrait. ``kind`` leaves room for passports."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    kind = Varchar(length=32)
    number_enc = Text()
    number_hash = Varchar(length=64, index=True)
    full_name = Varchar(length=200)
    birth_date = Varchar(length=10, default="")
    portrait_blob = Varchar(length=64, null=True, default=None)
    portrait_sha256 = Varchar(length=64, default="")
    created_at = Timestamptz()
    erased_at = Timestamptz(null=True, default=None)


class FaceTemplate(Table, tablename="kyc_face_template"):
    """One face embedding, with the engine and model version that made it."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    document = ForeignKey(references=IdentityDocument, null=True, default=None)
    engine = Varchar(length=32, index=True)
    model_version = Varchar(length=64)
    vector_enc = Text()
    created_at = Timestamptz()
    expires_at = Timestamptz(index=True)


class KycCase(Table, tablename="kyc_case"):
    """One identity-proofing attempt; ``state`` follows ``kyc.states``."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    state = Varchar(length=16, index=True)
    document = ForeignKey(references=IdentityDocument, null=True, default=None)
    challenges = JSON(default="[]")
    """The active liveness challenges drawn for this case, in order."""
    challenge_results = JSON(default="[]")
    best_distance = Float(null=True, default=None)
    threshold = Float(null=True, default=None)
    frames_matched = Float(default=0)
    live = Boolean(null=True, default=None)
    liveness_reason = Varchar(length=200, default="")
    duplicate_customer = ForeignKey(references=Customer, null=True, default=None)
    flag_reason = Varchar(length=200, default="")
    reviewer = ForeignKey(references=Account, null=True, default=None)
    review_reason = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    expires_at = Timestamptz(index=True)
    verified_until = Timestamptz(null=True, default=None)


class KycEvidence(Table, tablename="kyc_evidence"):
    """A piece of evidence of a case: a sampled frame, a still, a portrait."""

    id = Serial(primary_key=True)
    case = ForeignKey(references=KycCase, index=True)
    kind = Varchar(length=16)
    blob_id = Varchar(length=64, null=True, default=None)
    sha256 = Varchar(length=64)
    captured_at = Timestamptz()
    distance = Float(null=True, default=None)
    detail = JSON(default="{}")
    erased_at = Timestamptz(null=True, default=None)


class SignedDocument(Table, tablename="kyc_signed_document"):
    """A document going through the signing ceremony: the customer signs first (bound
    to a fresh face check), then a member of staff countersigns; each signature is an
    incremental PAdES revision of the stored PDF."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    kind = Varchar(length=32)
    title = Varchar(length=200)
    state = Varchar(length=24, index=True)
    countersigner_role = Varchar(length=32, default="")
    original_sha256 = Varchar(length=64)
    current_blob = Varchar(length=64)
    current_sha256 = Varchar(length=64)
    signers = JSON(default="[]")
    created_by = ForeignKey(references=Account, null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    completed_at = Timestamptz(null=True, default=None)
