"""Test helpers shared by every layer: the system harness, observers, broker and database checks."""
