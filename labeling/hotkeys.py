"""The transcription page's keys: Alt plus one key per action, each a person can change.

Keys are named by the physical key (KeyboardEvent.code), so a binding means the same key on
any keyboard layout. The page never takes Ctrl+Alt (AltGr on Windows layouts types ą, ż, ś,
ó...). The defaults leave out the keys whose Alt combinations browsers or systems keep: Alt+D,
E and F (address bar and menus in Chrome and Firefox on Windows and Linux), and on macOS the
Option dead keys E, I, N, U and ` (é, î, ñ, ü, è). Ctrl+Enter (submit), Ctrl+Space (play) and
Alt+1..4 (flags) stay as they are.
"""

from django.core.exceptions import ValidationError

from labeling.models import KeyBindings

# (action, what it does, default key): the order of the help dialog
ACTIONS = [
    ("replay", "replay from the start", "KeyR"),
    ("slower", "slower", "Comma"),
    ("faster", "faster", "Period"),
    ("skip", "skip this clip (never again for you)", "KeyS"),
    ("later", "later: it comes back to you in 30 minutes, with your text", "KeyL"),
    ("undo", "undo your last submission", "KeyZ"),
    ("older", "back to your earlier transcripts, one by one, to edit them", "BracketLeft"),
    ("newer", "forward again, then new clips", "BracketRight"),
    ("start_earlier", "clip starts 0.1 s earlier", "KeyQ"),
    ("start_later", "clip starts 0.1 s later", "KeyW"),
    ("end_earlier", "clip ends 0.1 s earlier", "KeyO"),
    ("end_later", "clip ends 0.1 s later", "KeyP"),
    ("split", "split the clip at the play position", "KeyX"),
    ("merge", "merge with the next clip", "KeyM"),
    ("zoom_in", "zoom the waveform in", "Equal"),
    ("zoom_out", "zoom the waveform out", "Minus"),
    ("spectrogram", "spectrogram on or off", "KeyG"),
    ("help", "this list, to change the keys", "KeyH"),
    ("answer_key", "demo projects only: put the answer key in the box", "KeyK"),
]
DEFAULTS = {action: code for action, _, code in ACTIONS}
LABELS = {action: label for action, label, _ in ACTIONS}

_PUNCTUATION = {
    "Comma": ",",
    "Period": ".",
    "Slash": "/",
    "Semicolon": ";",
    "Quote": "'",
    "BracketLeft": "[",
    "BracketRight": "]",
    "Backslash": "\\",
    "Minus": "-",
    "Equal": "=",
    "Backquote": "`",
}
KEYS = {
    **{f"Key{letter}": letter for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{f"Digit{digit}": digit for digit in "567890"},  # 1-4 flag the clip
    **_PUNCTUATION,
}


def bindings_for(user) -> dict[str, str]:
    """action -> key code: the user's own, else the default."""
    saved = KeyBindings.objects.filter(user=user).values_list("codes", flat=True).first() or {}
    return {action: saved.get(action, default) for action, default in DEFAULTS.items()}


def bindings_save(*, user, codes: dict[str, str]) -> dict[str, str]:
    """Store the user's keys; refused with the reason if a key is unknown or taken twice."""
    unknown = [code for code in codes.values() if code not in KEYS]
    if unknown or set(codes) - set(DEFAULTS):
        raise ValidationError("Choose each key from the list.")
    merged = {**bindings_for(user), **codes}
    taken: dict[str, str] = {}
    for action, code in merged.items():
        if code in taken:
            raise ValidationError(
                f"Alt+{KEYS[code]} is chosen twice: for “{LABELS[taken[code]]}” and for "
                f"“{LABELS[action]}”."
            )
        taken[code] = action
    changed = {action: code for action, code in merged.items() if code != DEFAULTS[action]}
    KeyBindings.objects.update_or_create(user=user, defaults={"codes": changed})
    return merged


def bindings_table(bindings: dict[str, str]) -> list[dict]:
    """Rows for the help dialog: action, label, key code, what the key shows."""
    return [
        {"action": action, "label": label, "code": bindings[action], "key": KEYS[bindings[action]]}
        for action, label, _ in ACTIONS
    ]
