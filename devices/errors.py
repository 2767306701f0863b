"""Texts people see when a device operation is refused. One place for all of them."""

KIND_NOT_AVAILABLE = "That kind of device cannot be set up here yet. Choose another, or contact the help desk."
NOT_PENDING = "This setup is already finished or was cancelled. Start a new one from My devices."
PENDING_EXPIRED = "This setup has expired. Please start again; it only takes a minute."
SETUP_DONE_PHONE_CHANGE_UNDER_WAY = (
    "This device is set up already, and its app is moving to a new phone. Finish the move here."
)
SETUP_DONE_DEVICE_REMOVED = "{device} was set up once and has since been removed. It can no longer be used to sign in."
NO_PHONE_FOR_KIND = "This kind of device has no phone number."
NO_APP_FOR_KIND = "This kind of device does not use an authenticator app."
STEP_OUT_OF_ORDER = "Please finish the earlier steps first."
WRONG_CODE = "That code is not right, or it was already used. Wait for the next code in the app and try again."
NO_EMAIL = "We have no email address for you. Scan the QR code instead, or ask the help desk to add your email."
LINK_RESEND_TOO_SOON = "We just sent you a link. Wait a minute before asking for another one."
LINK_NOT_VALID = "This activation link is not valid any more: it was used, replaced or has expired. Ask for a new one."
LINK_WRONG_PASSWORD = "That password is not right."
LINK_TOO_MANY_PASSWORDS = "Too many wrong passwords: this link no longer works. Ask for a new one from the setup page."
REAUTH_REQUIRED = "For your security, confirm it is you with a code from one of your devices first."
LAST_DEVICE = (
    "This is your only working device. Add another device first, so you can still sign in after removing this one."
)
NOT_ACTIVE = "Only an active device can be changed."
LABEL_INVALID = "Give the device a name of 1 to 64 characters."
PHONE_INVALID = "That does not look like a valid phone number. Check the digits and the country code."
PHONE_COUNTRY_NOT_ALLOWED = "We can only text or call numbers in the countries the institution supports."
PHONE_ON_RECORD_UNREACHABLE = (
    "This number is already on record here, so we would need to check it with a text or call, and we can only "
    "text or call numbers in the countries the institution supports. Use another number, or ask the help desk."
)
PHONE_TYPE_REFUSED = "We cannot text or call a {kind} number. Use a personal mobile or desk phone number."
PHONE_RESEND_TOO_SOON = "We just sent a code. Wait {seconds} seconds before asking for another one."
PHONE_TOO_MANY_SENDS = "Too many codes were sent to this number in the last few minutes. Wait 10 minutes and try again."
PHONE_DAILY_CAP = "Too many codes today for this number or account. Try tomorrow, or use another device."
PHONE_WRONG_CODE = "That code is not right. Check the newest text or call and try again."
PHONE_NO_OPEN_CODE = "This code has expired, was replaced by a newer one, or was tried too often. Ask for a new code."
PHONE_CHANNEL_NOT_ALLOWED = "We can only call this number; landlines cannot receive texts."
PHONE_SEND_DELAYED = "We could not send the code just now. Try again in a minute, or use another way to sign in."
PHONE_ALREADY_VERIFIED = "This number is already verified."
KEY_LABEL_INVALID = "Give the key a name of 1 to 64 characters, so you can tell your keys apart."
KEY_NO_RESPONSE = (
    "We did not get an answer from a security key. Use a browser that supports security keys, with JavaScript on, "
    "and touch the key when it blinks."
)
KEY_CHALLENGE_INVALID = "This request to your security key has expired or was already used. Please try again."
KEY_REGISTRATION_FAILED = "We could not register this security key. Please try again, or use another key."
KEY_ALREADY_REGISTERED = "This security key is already registered. Use another key, or remove the old entry first."
KEY_STAFF_NEEDS_KEY = (
    "To add a security key or passkey to a staff account that has one already, sign in with the one you have first."
)
KEY_NONE = "You have no security key set up. Use another device."
# Said after removing the device a session was verified with, when only security keys and passkeys are left.
SIGN_IN_AGAIN_WITH_KEY = "Sign in again with your security key or passkey."
PASSKEY_REGISTRATION_FAILED = (
    "We could not register this passkey. It must be unlocked with your face, fingerprint or screen lock (PIN) "
    "while you register it. Please try again, or choose another kind of device."
)
PASSKEY_ALREADY_REGISTERED = "This passkey is already registered. Use it to sign in, or remove the old entry first."
# The same words for a wrong, unknown or removed passkey and one that did not check who you are (WA-03).
PASSKEY_NOT_ACCEPTED = (
    "We could not sign you in with that passkey. Try again, or sign in with your ID and password instead."
)
KEY_REFUSED = "That security key was not accepted. Use a key registered to your account, or another device."
NOT_REACTIVATING = "There is no new phone waiting to be confirmed for this device. Start again from My devices."
REACTIVATION_WRONG_CODE = (
    "That code does not match the new key. Scan the QR code on this page with the app on your new phone and type "
    "the code shown for the account it adds. Codes from your old phone do not work here."
)
APP_REPLACED = (
    "That code is not right. If it came from your old {noun}: this {noun}'s app was replaced on {date} by the app "
    "on your new {noun}, and only the new {noun}'s codes work now."
)
REACTIVATION_EXPIRED = "This phone change has expired. Your old phone still works; start again from My devices."
# The old phone's app was switched off when the change began (the phone was reported lost): say what still works.
REACTIVATION_EXPIRED_OLD_APP_OFF = "This phone change has expired. {old_phone}"
OLD_PHONE_WORKS = "Your old phone still works."
OLD_APP_STOPPED = "The app on your old phone no longer gives working codes."
OLD_APP_OFF_TEXTS_WORK = (
    "The app on your old phone stays switched off, as you reported the phone lost; codes by text and call to "
    "{number} still work. Start again from My devices."
)
OLD_APP_OFF = (
    "The app on your old phone stays switched off, as you reported the phone lost, so {device} no longer signs you "
    "in. Add a device from My devices to set up the new phone."
)
RECOVERY_OVER = (
    "The phone change you were finishing here is over: it was finished, cancelled or started again elsewhere, or "
    "it expired. Sign in to go on; if you cannot, ask the help desk for a new link."
)
BACKUP_CODES_ALREADY_MADE = (
    "This form was already sent: a new set of backup codes was made a moment ago, so nothing more was done, and the "
    "codes shown then are the ones that work. If you did not save them, make a new set."
)
NOT_ON_OWN_ACCOUNT = "Help-desk actions cannot be taken on your own account. Ask a colleague."
ACCOUNT_LOCKED_FOR_RECOVERY = (
    "This account is locked after too many wrong codes. Unlock it first (an audited step), then send the link."
)
ACCOUNT_INACTIVE_FOR_RECOVERY = (
    "This account is not active (the person left, or the directory disabled them): a link could never be used."
)
ALREADY_BOUND = "This device was just set up by another request. Nothing more to do here."
NO_EMAIL_FOR_RECOVERY = "This person has no email address on record, so no link can be sent. Add one first."
NO_APP_TO_RECOVER = "This person has no phone or tablet with an authenticator app to set up again."
SETUP_HELD = (
    "Your last device was reported lost, so a new one can only be set up after a call to the help desk, who will "
    "check it is you."
)


def platform_choice(kind) -> str:
    """ "Choose iPad, Android tablet or Other." in the kind's words."""
    labels = [platform.label for platform in kind.platforms]
    return f"Choose {', '.join(labels[:-1])} or {labels[-1]}."


BYPASS_COUNT = "Issue between 1 and 10 bypass codes."
BYPASS_LIFETIME = "Bypass codes are valid for 15, 30 or 60 minutes."

# Codes (``ValidationError.code``) of the refusals that pages branch on; the services raise them with the texts above.
CODE_ALREADY_BOUND = "already_bound"  # a concurrent request already bound this very device
CODE_EXPIRED = "expired"  # the setup or the phone change ran out of time
CODE_LINK_INVALID = "invalid"  # the link was used, replaced, revoked or has expired
CODE_LINK_REVOKED = "revoked"  # too many wrong passwords: the link was revoked now
CODE_NOT_REACTIVATING = "not_reactivating"  # no phone change is under way (any more)
