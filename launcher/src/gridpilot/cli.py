"""The gridpilot command."""


def main() -> None:
    raise SystemExit("not yet")
