"""The official MCP conformance suite against the fixture server, directly and through the gateway
(`make conformance`; see conformance/README.md)."""
