"""Test helpers shared by every layer: bus fixtures, recorders, broker checks."""
