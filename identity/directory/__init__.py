"""Where people come from: the institution's directory.

An app of its own (label ``directory``) inside ``identity``: the LDAP/Active Directory password backend, the sync
(joiners, movers, leavers and its guards) and SCIM 2.0 provisioning. Like the rest of ``identity`` it imports no
other app of ours; what a leaver loses in ``devices`` is done through the seam in ``identity.directory.hooks``.
"""
