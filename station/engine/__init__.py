"""The provisioning engine: slots, the per-device pipeline, events and commands. UI-agnostic:
the headless runner, the operator UI and the audit writer consume the same events."""
