"""Column lineage for personal data: what a segment reads and outputs, through refs and renames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segsql.cli.main import cli
from segsql.compile.lineage import segment_lineage
from segsql.privacy.masking import scrub
from segsql.privacy.pii import pii_columns

CONFIG = """\
sources:
  users:
    table: users
    columns: {user_id: BIGINT, email: VARCHAR, phone: VARCHAR, gender: VARCHAR, country: VARCHAR}
    pii: {email: email, phone: phone}
    sensitive: {gender: gender}
  events:
    table: events
    columns: {user_id: BIGINT, kind: VARCHAR}
entities:
  user: {key: user_id, source: users}
"""
SEGMENTS = {
    "contacts": "{{ config(entity='user') }}\nSELECT u.user_id, lower(u.email) AS contact, u.country "
                "FROM {{ source('users') }} AS u WHERE u.phone IS NOT NULL",
    "engaged_contacts": "{{ config(entity='user') }}\nSELECT c.user_id, c.contact AS address, COUNT(*) AS events "
                        "FROM {{ ref('contacts') }} AS c JOIN {{ source('events') }} AS e ON e.user_id = c.user_id "
                        "GROUP BY c.user_id, c.contact",
    "plain": "{{ config(entity='user') }}\nSELECT e.user_id FROM {{ source('events') }} AS e GROUP BY e.user_id",
}


def test_lineage_follows_refs_and_renames(make_project: Any) -> None:
    project = make_project(SEGMENTS, config=CONFIG)
    lineage = segment_lineage(project.compiler, "engaged_contacts")
    assert lineage.reads == {"events": ["user_id"],
                             "users": ["country", "email", "phone", "user_id"]}
    assert lineage.outputs["address"] == ["users.email"]
    assert lineage.pii_read(project) == {"users.email": "email", "users.phone": "phone"}
    assert lineage.pii_output(project) == {"address": "email"}
    assert pii_columns(project.compiler, "engaged_contacts") == {"address": "email"}  # masked although renamed
    assert segment_lineage(project.compiler, "plain").pii_read(project.compiler) == {}


def test_validate_prints_personal_data_lineage(make_project: Any, runner: Any, tmp_path: Path) -> None:
    make_project(SEGMENTS, config=CONFIG)
    result = runner.invoke(cli, ["validate", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "personal data (column lineage):" in result.output
    assert "  contacts: reads users.email (email), users.phone (phone); outputs contact (email)" in result.output
    assert "  engaged_contacts: reads users.email (email), users.phone (phone); outputs address (email)" in result.output
    assert "plain:" not in result.output


def test_scrub_masks_emails_and_international_phones_only() -> None:
    text = "could not convert 'anna.k+x@mail.example.de' near +49 170 1234567 at 2026-11-23 21:44:10, 1,906 rows"
    scrubbed = scrub(text)
    assert "anna" not in scrubbed and "1234567" not in scrubbed
    assert "2026-11-23 21:44:10" in scrubbed and "1,906 rows" in scrubbed
    assert scrub(text) == scrubbed  # deterministic
    assert "LIKE '%@gmail.com'" in scrub("WHERE u.email LIKE '%@gmail.com'")  # a pattern is not an address
