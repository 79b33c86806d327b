"""One handler per resource kind: how a validated spec becomes rows, and rows become objects.

The handlers, in the API's order: `kinds.handlers.HANDLERS`."""
