"""An audit event appended in one statement: the chain's lock, its last row, the hash and the insert.

Every append holds the chain's advisory lock from the read of the last row to the commit, so nothing else can append
meanwhile. Reading the head in one round trip and inserting in another kept the lock across a round trip and the
client's hashing; here PostgreSQL computes the same SHA-256 over the same text (``identity.audit`` sends the canonical
form around the sequence number, which only the function knows), so the lock is held for one statement and the commit.
As in 0007, a VOLATILE function gives each statement a fresh snapshot: the read after the lock sees the row the
previous holder committed. 0007's head-only function goes. The hash is what ``identity.audit.compute_hash``
computes, and ``verify_chain`` checks it.
"""

from importlib import import_module

from django.db import migrations

# The step that runs a statement on PostgreSQL only (SQLite has no functions), as 0007 defines it.
_0007 = import_module("identity.migrations.0007_audit_chain_head")
on_postgresql = _0007.on_postgresql

CREATE = """
CREATE OR REPLACE FUNCTION identity_audit_append(
    p_created_at timestamptz, p_actor_id bigint, p_subject_id bigint, p_action varchar, p_details jsonb,
    p_ip inet, p_canonical_head text, p_canonical_tail text,
    OUT event_id bigint, OUT event_sequence bigint, OUT event_prev_hash varchar, OUT event_hash varchar
) AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1096107081);  -- 0x41554449, the chain's lock since 0003
    SELECT e.sequence + 1, e.hash INTO event_sequence, event_prev_hash
        FROM identity_auditevent e ORDER BY e.sequence DESC LIMIT 1;
    IF NOT FOUND THEN
        event_sequence := 1;
        event_prev_hash := repeat('0', 64);
    END IF;
    -- The canonical form is ASCII (JSON with every other character escaped), so its UTF-8 bytes are Python's.
    event_hash := encode(sha256(convert_to(
        event_prev_hash || p_canonical_head || event_sequence::text || p_canonical_tail, 'UTF8')), 'hex');
    INSERT INTO identity_auditevent (sequence, created_at, actor_id, subject_id, action, details, ip, prev_hash, hash)
        VALUES (event_sequence, p_created_at, p_actor_id, p_subject_id, p_action, p_details, p_ip,
                event_prev_hash, event_hash)
        RETURNING id INTO event_id;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

DROP = "DROP FUNCTION IF EXISTS identity_audit_append(timestamptz, bigint, bigint, varchar, jsonb, inet, text, text)"


class Migration(migrations.Migration):
    dependencies = [("identity", "0007_audit_chain_head")]

    operations = [
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP)),
        # 0007's head-only read: every append now goes through the function above.
        migrations.RunPython(on_postgresql(_0007.DROP), on_postgresql(_0007.CREATE)),
    ]
