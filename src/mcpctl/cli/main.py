def main() -> None:  # placeholder until the CLI lands
    raise SystemExit("mcpctl: not built yet")
