"""``branchless keys rotate`` re-encrypts personal data under the active key."""

from __future__ import annotations

import base64
import json
import os
import subprocess

from app.crypto import KeyRing
from app.secrets import load_secrets
from app.settings import get_settings
from app.tables import Customer
from tests.helpers import make_customer


async def test_rotation_moves_every_value_to_the_new_key(cli_env: dict[str, str]) -> None:
    me = await make_customer()
    current = load_secrets(get_settings())
    new_key = base64.b64encode(os.urandom(32)).decode()
    env = {
        **cli_env,
        "BRANCHLESS_ENCRYPTION_KEYS": f"k2:{new_key},{current.encryption_keys}",
        "BRANCHLESS_BLIND_INDEX_KEY": current.blind_index_key,
        "BRANCHLESS_SECRET_KEY": current.secret_key,
    }
    before = await Customer.select().where(Customer.id == me.customer_id).first()
    run = subprocess.run(
        [".venv/bin/branchless", "keys", "rotate"], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout)["reencrypted"]
    assert counts["customer.phone"] >= 1
    after = await Customer.select().where(Customer.id == me.customer_id).first()
    ring = KeyRing.parse(env["BRANCHLESS_ENCRYPTION_KEYS"], current.blind_index_key)
    for column, context in (("phone_enc", "customer.phone"), ("id_number_enc", "customer.id_number")):
        assert ring.key_id(after[column]) == "k2"
        assert ring.decrypt(after[column], context=context) == ring.decrypt(before[column], context=context)
    # the lookup hashes do not change: values stay findable during and after rotation
    assert after["id_number_hash"] == before["id_number_hash"]
    # a second run has nothing left to do for this customer
    again = subprocess.run(
        [".venv/bin/branchless", "keys", "rotate"], env=env, capture_output=True, text=True, check=False
    )
    assert json.loads(again.stdout)["reencrypted"]["customer.phone"] == 0
    # put the data back under the suite's key for the tests that follow
    back = {**env, "BRANCHLESS_ENCRYPTION_KEYS": f"{current.encryption_keys},k2:{new_key}"}
    subprocess.run([".venv/bin/branchless", "keys", "rotate"], env=back, capture_output=True, check=True)
