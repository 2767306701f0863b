"""The directory's own records (sync runs, SCIM clients)."""
