"""SCIM 2.0 provisioning (RFC 7643/7644) for cloud directories: Entra ID, Okta, Google.

``resources`` maps a person to a SCIM User and a SCIM request back to a ``DirectoryRecord`` (on scim2-models);
``provisioning`` hands every change to ``identity.directory.people``, the LDAP sync's one door; ``views`` are thin.
"""
