def main() -> None:  # placeholder until mcpd lands
    raise SystemExit("mcpd: not built yet")
