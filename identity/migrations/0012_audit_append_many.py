"""Many audit events appended in one statement, hashed by PostgreSQL as one append hashes each.

``identity_audit_hash`` is the chain's hash in SQL, written once: ``identity_audit_append`` (0008, re-created here
with the same signature and behaviour) and ``identity_audit_append_many`` both call it, so PostgreSQL is the one
writer of the chain on PostgreSQL. The bulk function takes the chain's lock once (held to the commit, as 0008's),
reads the head once, hashes each event in order and inserts them all with one ``INSERT ... SELECT FROM unnest``.
Its arrays are parallel, one element per event; it returns how many it appended. ``identity.audit.compute_hash``
computes the same hash in Python for ``verify_chain`` and for SQLite, which has no functions.
"""

from importlib import import_module

from django.db import migrations

# The step that runs a statement on PostgreSQL only (SQLite has no functions), as 0007 defines it.
_0007 = import_module("identity.migrations.0007_audit_chain_head")
_0008 = import_module("identity.migrations.0008_audit_append")
on_postgresql = _0007.on_postgresql

CREATE_HASH = """
CREATE OR REPLACE FUNCTION identity_audit_hash(
    p_prev_hash text, p_canonical_head text, p_sequence bigint, p_canonical_tail text
) RETURNS varchar AS $$
    -- The canonical form is ASCII (JSON with every other character escaped), so its UTF-8 bytes are Python's.
    SELECT encode(sha256(convert_to(p_prev_hash || p_canonical_head || p_sequence::text || p_canonical_tail, 'UTF8')),
                  'hex')::varchar
$$ LANGUAGE sql STABLE PARALLEL SAFE;  -- STABLE as convert_to is, so callers can inline it
"""

# 0008's function as it was, but for its hash: the shared function's.
_HASH_0008 = """encode(sha256(convert_to(
        event_prev_hash || p_canonical_head || event_sequence::text || p_canonical_tail, 'UTF8')), 'hex')"""
assert _HASH_0008 in _0008.CREATE
CREATE_APPEND = _0008.CREATE.replace(
    _HASH_0008, "identity_audit_hash(event_prev_hash, p_canonical_head, event_sequence, p_canonical_tail)"
)

CREATE_APPEND_MANY = """
CREATE OR REPLACE FUNCTION identity_audit_append_many(
    p_created_at timestamptz[], p_actor_id bigint[], p_subject_id bigint[], p_action varchar[], p_details jsonb[],
    p_ip inet[], p_canonical_head text[], p_canonical_tail text[]
) RETURNS integer AS $$
DECLARE
    n integer := coalesce(array_length(p_created_at, 1), 0);
    last_sequence bigint;
    last_hash varchar;
    sequences bigint[] := '{}';
    prev_hashes varchar[] := '{}';
    hashes varchar[] := '{}';
BEGIN
    IF n = 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(1096107081);  -- 0x41554449, the chain's lock since 0003
    -- A fresh snapshot for this statement (VOLATILE): it sees the row the lock's previous holder committed.
    SELECT e.sequence, e.hash INTO last_sequence, last_hash
        FROM identity_auditevent e ORDER BY e.sequence DESC LIMIT 1;
    IF NOT FOUND THEN
        last_sequence := 0;
        last_hash := repeat('0', 64);
    END IF;
    FOR i IN 1..n LOOP
        last_sequence := last_sequence + 1;
        sequences[i] := last_sequence;
        prev_hashes[i] := last_hash;
        last_hash := identity_audit_hash(last_hash, p_canonical_head[i], last_sequence, p_canonical_tail[i]);
        hashes[i] := last_hash;
    END LOOP;
    INSERT INTO identity_auditevent (sequence, created_at, actor_id, subject_id, action, details, ip, prev_hash, hash)
        SELECT * FROM unnest(sequences, p_created_at, p_actor_id, p_subject_id, p_action, p_details, p_ip,
                             prev_hashes, hashes);
    RETURN n;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

DROP_APPEND_MANY = (
    "DROP FUNCTION IF EXISTS identity_audit_append_many(timestamptz[], bigint[], bigint[], varchar[], jsonb[], "
    "inet[], text[], text[])"
)
DROP_HASH = "DROP FUNCTION IF EXISTS identity_audit_hash(text, text, bigint, text)"


class Migration(migrations.Migration):
    dependencies = [("identity", "0011_directory_external_id")]

    operations = [
        migrations.RunPython(on_postgresql(CREATE_HASH), on_postgresql(DROP_HASH)),
        # Back to 0008's own text on the way down, before the hash function goes.
        migrations.RunPython(on_postgresql(CREATE_APPEND), on_postgresql(_0008.CREATE)),
        migrations.RunPython(on_postgresql(CREATE_APPEND_MANY), on_postgresql(DROP_APPEND_MANY)),
    ]
