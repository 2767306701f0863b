"""Texts the help desk sees when a desk action is refused. One place for all of them."""

OWN_ACCOUNT = "Nobody acts on their own account at the desk. Ask a colleague."
NO_CURRENT_CHECK = "Record how you checked the caller's identity first: a check is valid for {minutes} minutes."
CHECK_NOT_YOURS = "That identity check was recorded by another agent or for another person."
ACTION_DOES_NOT_APPLY = "This action does not apply to this person now."
APPROVER_IS_PARTY = "A second agent approves: not the one who asked, and not the person it is for."
REQUEST_CLOSED = "This request was already decided or has expired."
REASON_REQUIRED = "Say why, in a few words."
NOT_THEIR_DEVICE = "Choose one of this person's devices."
EMAIL_INVALID = "Enter a valid email address."
DETAILS_FROM_DIRECTORY = (
    "This person's names, email and department come from the institution's directory: change them there, and the "
    "next sync brings them here."
)
NOTHING_CHANGED = "Nothing was changed: the new values are the same as the old ones."
CASE_NOT_THEIRS = "That case belongs to another person."
NOTE_EMPTY = "Write the note first."
IDENTITY_CHECK_METHOD = (
    "Choose how the person's identity was checked, from the list. Knowledge questions alone are not enough."
)
IDENTITY_CHECK_REFERENCE = "Give the ticket or case reference for the identity check."
STAFF_ONLY_LINK = "Only help-desk staff can send a recovery link."
STAFF_ONLY_KEY = "Only help-desk staff can register a key for someone at the desk."
RECOVERY_NEEDS_APPROVER = (
    "A recovery link to a staff account, or to an email changed in the last day, needs a second staff member's "
    "approval."
)
CALLER_CHECK_STALE = (
    "This action is read out to the caller: it needs an identity check of them from the last {minutes} minutes. "
    "Check who is calling again, then finish it."
)
NOT_READY = "This request is not approved and waiting for you to finish it, or its day is over."
ONLY_REQUESTER_FINISHES = "Only the agent who asked, with the caller on the line, finishes an approved request."
NAMED_APPROVER_REFUSED = (
    "The second agent named may not approve this: they need permission to run this action and to approve "
    "requests, and may be neither the one asking nor the person it is for."
)
MAY_NOT_DECIDE = (
    "You may not decide this request: a second agent who may run this action and approve requests decides it."
)
DECISION_MISSING = "Nothing was decided: press Approve or Decline."
MAY_NOT_RUN = "You may not run this action at the desk: ask an agent who may to file it again."
KEY_NEEDS_APPROVAL_FIRST = (
    "This is a staff account: a second agent approves registering a key for them first. Ask for approval on this "
    "page; once it is approved, register the key here with them at the desk."
)
KEY_AT_THE_DESK = "Register the key from the person's page, with them at the desk and their key in this computer."
ACTED_SINCE = (
    "Nothing was done now: {what} for this person at {when}, by {who}, after this page was opened (a reload, or "
    "the same form sent twice). Look at the person's page before you start again."
)
CASE_OPENED_SINCE = (
    "Nothing was opened now: case {case} was opened for this person at {when}, by {who}, after this page was opened "
    "(a reload, or the same form sent twice). Look at the person's cases before you open another."
)
CODES_SHOWN_ONCE = "Bypass codes are shown once, when they are issued, and never again."
