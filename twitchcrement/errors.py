"""The one base class of the errors a user fixes from the message alone (a config value, an unreachable service, a
file in an unknown format): command lines show them as one line (twitchcrement.cli), never as a traceback."""


class UserError(Exception):
    """Its message says what is wrong and where, in words a user acts on."""
