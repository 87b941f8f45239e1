"""Deterministic sample data for a fresh Cliniko sandbox: a few patients, N attachments among them.

Names and bytes come from ``seed.sample_files`` (non-ASCII names, an empty file, text and binary), so
the same seed gives the same account. The patients' names are awkward on purpose (accents, an
apostrophe, a slash that must not become a path separator); one patient has no attachments.
"""

from __future__ import annotations

import random

from daemon.sandbox.cliniko_backend import ClinikoBackend
from daemon.sandbox.seed import sample_files

PATIENTS: list[tuple[str, str]] = [
    ("Jürgen", "Müller"),
    ("Siobhán", "O'Brien"),
    ("An", "Nguyen"),
    ("Ana/Maria", "Smith-Jones"),
    ("Empty", "Nobody"),  # never gets attachments: no folder for it
]


def seed_account(backend: ClinikoBackend, count: int, seed: int) -> None:
    """Create the sample patients and ``count`` processed attachments spread over the first four."""
    rng = random.Random(seed)
    with backend.db.batch():
        patients = [backend.add_patient(first, last) for first, last in PATIENTS]
        holders = patients[:-1]
        for index, (_folder, name, data) in enumerate(sample_files(count, seed)):
            patient = holders[index % len(holders)] if index < len(holders) else rng.choice(holders)
            backend.add_attachment(patient.id, name, data)
