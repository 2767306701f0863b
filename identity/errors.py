"""The texts people see when identity operations refuse something. One place, so they stay consistent."""

SIGN_IN_FAILED = "That institution ID and password do not match. Check both and try again."
SIGN_IN_EXPIRED = "Your sign-in took too long and has expired. Please enter your ID and password again."
LAST_FACTOR_LOST = (
    "Your last sign-in device was reported lost, so a password alone cannot set up a new one. "
    "Contact {help_desk}: after checking who you are they will reopen the setup for you."
)
ACCOUNT_LOCKED = "This account is locked after too many wrong codes. Contact {help_desk} to unlock it."
WRONG_CODE = (
    "That code is not right, or it was already used. Check it and try again: an app shows a new code every "
    "30 seconds, and each backup code works once."
)
CODE_THROTTLED = "Too many wrong codes in a row. Wait {seconds} seconds before trying again."
NO_SUCH_DEVICE = "Choose one of your devices."
SIGN_IN_THROTTLED = "Too many sign-in attempts. Wait {wait}, then try again, or contact the help desk."
